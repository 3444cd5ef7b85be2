package zipstream

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// TestPackManyEntries crosses the 65,535-entry limit of the classic end of
// central directory record, so the archive needs the ZIP64 one.
func TestPackManyEntries(t *testing.T) {
	const n = 70_000
	entries := make([]Entry, n)
	for i := range entries {
		data := []byte("entry " + strconv.Itoa(i) + "\n")
		entries[i] = BytesEntry("files/"+strconv.Itoa(i/1000)+"/"+strconv.Itoa(i)+".txt", "text/plain", data)
	}
	var buf bytes.Buffer
	start := time.Now()
	res, err := Pack(context.Background(), &buf, entries, Options{Modified: testModified})
	require.NoError(t, err)
	t.Logf("packed %d entries into %d bytes in %v", n, buf.Len(), time.Since(start))
	require.Equal(t, n, res.Files)

	b := buf.Bytes()
	// The ZIP64 end of central directory record and locator must be there,
	// and the classic record must point to them with 0xFFFF.
	require.NotEqual(t, -1, bytes.LastIndex(b, []byte("PK\x06\x06")), "zip64 end record")
	require.NotEqual(t, -1, bytes.LastIndex(b, []byte("PK\x06\x07")), "zip64 locator")
	eocd := b[len(b)-22:]
	require.Equal(t, []byte("PK\x05\x06"), eocd[:4])
	require.Equal(t, []byte{0xff, 0xff}, eocd[10:12], "entry count deferred to zip64 record")

	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	require.Len(t, zr.File, n)
	for i, f := range zr.File {
		require.Equal(t, entries[i].Path, f.Name)
		rc, err := f.Open()
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.Equal(t, "entry "+strconv.Itoa(i)+"\n", string(got))
	}
	requireUnzipTest(t, b)
}

// TestPackHuge writes entries and an archive beyond 4 GiB. It moves ~9 GiB
// through SHA-256, deflate and the disk (about a minute), so it runs in make
// test's pass without the race detector.
func TestPackHuge(t *testing.T) {
	testenv.SkipUnderRace(t)
	const big = 4<<30 + 12345 // over the 32-bit size limit
	block := testenv.RandomBytes(1, 1<<20)
	zeros := make([]byte, 1<<20)
	entries := []Entry{
		BytesEntry("first.txt", "text/plain", []byte("first\n")),
		// Stored: over 4 GiB both compressed and uncompressed, pushes
		// every later offset past 4 GiB.
		{Path: "big/random.bin", MIMEType: "video/mp4", Size: big, SHA256: cyclicSHA(block, 7, big),
			Open: func(context.Context) (io.ReadCloser, error) {
				return io.NopCloser(&cyclicReader{block: block, off: 7, left: big}), nil
			}},
		// Deflated: over 4 GiB uncompressed, a few MiB compressed.
		{Path: "big/zeros.txt", MIMEType: "text/plain", Size: big, SHA256: cyclicSHA(zeros, 0, big),
			Open: func(context.Context) (io.ReadCloser, error) {
				return io.NopCloser(&cyclicReader{block: zeros, left: big}), nil
			}},
		BytesEntry("last.txt", "text/plain", []byte("after 4 GiB\n")),
	}
	path := filepath.Join(t.TempDir(), "huge.zip")
	f, err := os.Create(path)
	require.NoError(t, err)
	hw := NewHashingWriter(f)
	start := time.Now()
	_, err = Pack(context.Background(), hw, entries, Options{Modified: testModified})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	t.Logf("packed %d bytes in %v", hw.Size(), time.Since(start))
	require.Greater(t, hw.Size(), int64(big))

	zf, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer func() { require.NoError(t, zf.Close()) }()
	require.Len(t, zf.File, len(entries))
	for i, f := range zf.File {
		require.Equal(t, entries[i].Path, f.Name)
		require.Equal(t, uint64(entries[i].Size), f.UncompressedSize64)
		rc, err := f.Open()
		require.NoError(t, err)
		h := sha256.New()
		_, err = io.Copy(h, rc) // also checks the CRC-32 at EOF
		require.NoError(t, err, f.Name)
		require.NoError(t, rc.Close())
		require.Equal(t, entries[i].SHA256, hex.EncodeToString(h.Sum(nil)), f.Name)
	}
	requireUnzipTestFile(t, path)
}

// TestPackMemoryBounded packs 200 MiB generated on the fly, buffered and
// streamed entries mixed, and checks the heap never holds much more than
// the buffer budget.
func TestPackMemoryBounded(t *testing.T) {
	rnd := testenv.RandomBytes(1, 1<<20)
	text := testenv.TextBytes(2, 1<<20)
	var entries []Entry
	var total int64
	add := func(path, mime string, block []byte, size int64) {
		off := len(entries) * 4099 % len(block)
		entries = append(entries, Entry{
			Path: path, MIMEType: mime, Size: size, SHA256: cyclicSHA(block, off, size),
			Open: func(context.Context) (io.ReadCloser, error) {
				return io.NopCloser(&cyclicReader{block: block, off: off, left: size}), nil
			},
		})
		total += size
	}
	for i := range 150 {
		if i%8 == 0 {
			add(pathf("files/%03d.csv", i), "text/csv", text, 1<<20)
		} else {
			add(pathf("files/%03d.jpg", i), "image/jpeg", rnd, 1<<20+int64(i))
		}
	}
	add("files/big1.mp4", "video/mp4", rnd, 20<<20) // streamed
	add("files/big2.bin", "application/octet-stream", rnd, 20<<20)
	add("files/big3.txt", "text/plain", text, 10<<20)
	require.Greater(t, total, int64(200<<20))

	// The upload stalls at first, as a multipart upload does while it
	// starts: workers run ahead until the budget stops them. Without the
	// budget they would buffer the whole 200 MiB.
	hw := NewHashingWriter(&stallWriter{stall: 1500 * time.Millisecond})
	// Start from a collected heap: garbage left by earlier tests in this
	// process is not the pack's and would otherwise count until the next GC.
	// Twice, because sync.Pool contents survive one collection.
	runtime.GC()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := heapPeak()
	res, err := Pack(context.Background(), hw, entries, Options{})
	peak := stop()
	require.NoError(t, err)
	require.Equal(t, total, res.Bytes)
	t.Logf("packed %d MiB into %d MiB, HeapInuse %d MiB before, peak %d MiB", total>>20, hw.Size()>>20, before.HeapInuse>>20, peak>>20)
	require.Less(t, peak, uint64(96<<20), "peak heap must stay near the 64 MiB buffer budget")
}

// stallWriter discards, but blocks its first write for a while.
type stallWriter struct {
	stall   time.Duration
	stalled bool
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if !w.stalled {
		w.stalled = true
		time.Sleep(w.stall)
	}
	return len(p), nil
}
