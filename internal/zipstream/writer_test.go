package zipstream

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

var testModified = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// mixedEntries covers every way a method is chosen, both the buffered and
// the streamed path (SmallEntryMax is 256 KiB in these tests), empty and
// non-ASCII names.
func mixedEntries() []testEntry {
	text := testenv.TextBytes(1, 300<<10)
	rnd := testenv.RandomBytes(2, 300<<10)
	return []testEntry{
		{Entry: Entry{Path: "manifest.json", MIMEType: "application/json"}, data: []byte(`{"a":1}` + "\n"), wantMethod: zip.Deflate},
		{Entry: Entry{Path: "files/notes.txt", MIMEType: "text/plain; charset=utf-8", VersionID: 7}, data: testenv.TextBytes(3, 10<<10), wantMethod: zip.Deflate},
		{Entry: Entry{Path: "files/photo.jpg", MIMEType: "image/jpeg"}, data: testenv.RandomBytes(4, 100<<10), wantMethod: zip.Store},
		{Entry: Entry{Path: "files/blob.bin", MIMEType: "application/octet-stream"}, data: testenv.RandomBytes(5, 90<<10), wantMethod: zip.Store},
		{Entry: Entry{Path: "files/log.bin", MIMEType: "application/octet-stream"}, data: testenv.TextBytes(6, 90<<10), wantMethod: zip.Deflate},
		{Entry: Entry{Path: "files/unknown", MIMEType: ""}, data: testenv.TextBytes(7, 1000), wantMethod: zip.Deflate},
		{Entry: Entry{Path: "files/drawing.svg", MIMEType: "image/svg+xml"}, data: testenv.TextBytes(8, 5000), wantMethod: zip.Deflate},
		{Entry: Entry{Path: "files/archive.zip", MIMEType: "application/zip"}, data: testenv.TextBytes(9, 5000), wantMethod: zip.Store},
		{Entry: Entry{Path: "files/forced.txt", MIMEType: "text/plain", Compress: CompressStore}, data: testenv.TextBytes(10, 5000), wantMethod: zip.Store},
		{Entry: Entry{Path: "files/forced.jpg", MIMEType: "image/jpeg", Compress: CompressDeflate}, data: testenv.TextBytes(11, 5000), wantMethod: zip.Deflate},
		{Entry: Entry{Path: "files/empty.txt", MIMEType: "text/plain"}, data: []byte{}, wantMethod: zip.Store},
		{Entry: Entry{Path: "files/Ünïcødé 名前.txt", MIMEType: "text/plain"}, data: []byte("héllo wörld\n"), wantMethod: zip.Deflate},
		{Entry: Entry{Path: "files/big-text.csv", MIMEType: "text/csv"}, data: text, wantMethod: zip.Deflate},
		{Entry: Entry{Path: "files/big-random.bin", MIMEType: "application/octet-stream"}, data: rnd, wantMethod: zip.Store},
		{Entry: Entry{Path: "files/big-video.mp4", MIMEType: "video/mp4"}, data: testenv.RandomBytes(12, 260<<10), wantMethod: zip.Store},
		{Entry: Entry{Path: "annotations/exactly-threshold.json", MIMEType: "application/json"}, data: testenv.TextBytes(13, 256<<10), wantMethod: zip.Deflate},
		{Entry: Entry{Path: "llm/tail.txt", MIMEType: "text/plain"}, data: []byte("last\n"), wantMethod: zip.Deflate},
	}
}

func TestPackRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"streams above 256KiB", Options{SmallEntryMax: 256 << 10}},
		{"one worker", Options{SmallEntryMax: 256 << 10, Concurrency: 1}},
		// A budget smaller than any entry admits one at a time rather than
		// deadlocking.
		{"tiny budget", Options{SmallEntryMax: 256 << 10, MaxBuffered: 1}},
		{"level 9", Options{Level: 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks := goroutines(t)
			var tr tracker
			tes := mixedEntries()
			for i := range tes {
				if i%2 == 0 { // half checked against a recorded sum
					tes[i].SHA256 = sha256Hex(tes[i].data)
				}
			}
			tc.opts.Modified = testModified
			var buf bytes.Buffer
			hw := NewHashingWriter(&buf)
			res, err := Pack(context.Background(), hw, entriesOf(&tr, tes), tc.opts)
			require.NoError(t, err)

			require.Equal(t, int64(buf.Len()), hw.Size())
			require.Equal(t, sha256Hex(buf.Bytes()), hw.SHA256())
			require.Len(t, res.Entries, len(tes))
			require.Equal(t, len(tes), res.Files)
			var total int64
			for i, r := range res.Entries {
				te := tes[i]
				total += int64(len(te.data))
				require.Equal(t, te.Path, r.Path)
				require.Equal(t, te.VersionID, r.VersionID)
				require.Equal(t, sha256Hex(te.data), r.SHA256, te.Path)
				require.Equal(t, int64(len(te.data)), r.Size)
				require.Equal(t, crc32.ChecksumIEEE(te.data), r.CRC32, te.Path)
				require.Equal(t, te.wantMethod, r.Method, te.Path)
				if r.Method == zip.Store {
					require.Equal(t, r.Size, r.CompressedSize)
				}
			}
			require.Equal(t, total, res.Bytes)
			requireArchive(t, buf.Bytes(), tes, testModified)
			tr.requireBalanced(t)
			require.Equal(t, int64(len(tes)), tr.opens.Load(), "each entry opened once")
			checkLeaks()
		})
	}
}

// Text must actually shrink, random data must not be deflated: guards the
// method choice and the compression level against silent regressions.
func TestPackCompresses(t *testing.T) {
	var tr tracker
	text := testenv.TextBytes(1, 1<<20)
	var buf bytes.Buffer
	res, err := Pack(context.Background(), &buf, []Entry{
		{Path: "a.csv", MIMEType: "text/csv", Size: int64(len(text)), Open: tr.bytes(text)},
	}, Options{})
	require.NoError(t, err)
	require.Less(t, res.CompressedBytes, int64(len(text))/3, "generated text compresses at least 3:1")
	require.Less(t, buf.Len(), len(text)/3)
}

func TestPackDeterministic(t *testing.T) {
	build := func(opts Options, seed uint64) []byte {
		var tr tracker
		tes := mixedEntries()
		es := entriesOf(&tr, tes)
		// Random delays make workers finish out of order; the archive must
		// not notice.
		rng := rand.New(rand.NewPCG(seed, seed))
		var mu sync.Mutex
		for i := range es {
			open := es[i].Open
			es[i].Open = func(ctx context.Context) (io.ReadCloser, error) {
				mu.Lock()
				d := time.Duration(rng.IntN(3000)) * time.Microsecond
				mu.Unlock()
				time.Sleep(d)
				return open(ctx)
			}
		}
		opts.Modified = testModified.In(time.FixedZone("X", 5*3600)) // zone must not matter
		var buf bytes.Buffer
		_, err := Pack(context.Background(), &buf, es, opts)
		require.NoError(t, err)
		return buf.Bytes()
	}
	first := build(Options{SmallEntryMax: 256 << 10}, 1)
	for i, opts := range []Options{
		{SmallEntryMax: 256 << 10},
		{SmallEntryMax: 256 << 10, Concurrency: 8},
		{SmallEntryMax: 256 << 10, Concurrency: 1, MaxBuffered: 1},
	} {
		again := build(opts, uint64(i+2))
		require.Equal(t, sha256Hex(first), sha256Hex(again), "run %d differs", i)
	}
}

func TestPackIntegrityErrors(t *testing.T) {
	data := testenv.TextBytes(1, 100<<10)
	good := sha256Hex(data)
	bad := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name     string
		smallMax int64
		size     int64
		sha      string
		check    func(t *testing.T, err error)
	}{
		{name: "checksum buffered", size: int64(len(data)), sha: bad, check: wantChecksum(bad, good)},
		{name: "checksum streamed", smallMax: 1 << 10, size: int64(len(data)), sha: bad, check: wantChecksum(bad, good)},
		{name: "checksum upper-case hex accepted", size: int64(len(data)), sha: strings.ToUpper(good)},
		{name: "object shorter buffered", size: int64(len(data)) + 10, check: wantSize(int64(len(data))+10, int64(len(data)))},
		{name: "object shorter streamed", smallMax: 1 << 10, size: int64(len(data)) + 10, check: wantSize(int64(len(data))+10, int64(len(data)))},
		{name: "object longer buffered", size: int64(len(data)) - 10, check: wantSize(int64(len(data))-10, int64(len(data))-9)},
		{name: "object longer streamed", smallMax: 1 << 10, size: int64(len(data)) - 10, check: wantSize(int64(len(data))-10, int64(len(data))-9)},
		{name: "object longer than a zero size", size: 0, check: wantSize(0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks := goroutines(t)
			var tr tracker
			es := []Entry{
				BytesEntry("manifest.json", "application/json", []byte("{}")),
				{Path: "files/x.txt", VersionID: 42, MIMEType: "text/plain", Size: tc.size, SHA256: tc.sha, Open: tr.bytes(data)},
				{Path: "files/after.txt", MIMEType: "text/plain", Size: 3, Open: tr.bytes([]byte("abc"))},
			}
			w := NewWriter(io.Discard, Options{SmallEntryMax: tc.smallMax})
			res, err := w.Pack(context.Background(), es)
			if tc.check == nil {
				require.NoError(t, err)
				require.NoError(t, w.Close())
				return
			}
			require.Error(t, err)
			tc.check(t, err)
			require.Len(t, res, 1, "entries before the bad one were written")
			// The archive is broken: the writer must refuse to finish it.
			require.ErrorIs(t, w.Close(), err)
			_, err2 := w.Pack(context.Background(), es[2:])
			require.ErrorIs(t, err2, err)
			tr.requireBalanced(t)
			checkLeaks()
		})
	}
}

func wantChecksum(expected, got string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		var ce *ChecksumMismatchError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "files/x.txt", ce.Path)
		require.Equal(t, int64(42), ce.VersionID)
		require.Equal(t, expected, ce.Expected)
		require.Equal(t, got, ce.Got)
		require.Contains(t, err.Error(), "files/x.txt")
	}
}

func wantSize(expected, got int64) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		var se *SizeMismatchError
		require.ErrorAs(t, err, &se)
		require.Equal(t, "files/x.txt", se.Path)
		require.Equal(t, int64(42), se.VersionID)
		require.Equal(t, expected, se.Expected)
		require.Equal(t, got, se.Got)
		require.Contains(t, err.Error(), "files/x.txt")
	}
}

// failingReader returns some bytes, then an error.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errBoom
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

func TestPackOpenAndReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		smallMax int64
		open     func(tr *tracker) Opener
		op       string
	}{
		{"open buffered", 0, func(tr *tracker) Opener {
			return tr.open(func(context.Context) (io.Reader, error) { return nil, errBoom })
		}, "open"},
		{"open streamed", 1, func(tr *tracker) Opener {
			return tr.open(func(context.Context) (io.Reader, error) { return nil, errBoom })
		}, "open"},
		{"read buffered", 0, func(tr *tracker) Opener {
			return tr.open(func(context.Context) (io.Reader, error) { return &failingReader{n: 100 << 10}, nil })
		}, "read"},
		{"read streamed", 1, func(tr *tracker) Opener {
			return tr.open(func(context.Context) (io.Reader, error) { return &failingReader{n: 100 << 10}, nil })
		}, "read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks := goroutines(t)
			var tr tracker
			es := make([]Entry, 20)
			for i := range es {
				es[i] = Entry{Path: pathf("files/%02d.txt", i), MIMEType: "text/plain", Size: 1 << 20, Open: tr.bytes(make([]byte, 1<<20))}
			}
			es[7].VersionID = 99
			es[7].Open = tc.open(&tr)
			_, err := Pack(context.Background(), io.Discard, es, Options{SmallEntryMax: tc.smallMax})
			var ee *EntryError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, "files/07.txt", ee.Path)
			require.Equal(t, int64(99), ee.VersionID)
			require.Equal(t, tc.op, ee.Op)
			require.ErrorIs(t, err, errBoom)
			require.Contains(t, err.Error(), "files/07.txt")
			tr.requireBalanced(t)
			checkLeaks()
		})
	}
}

func TestPackRejectsInvalidEntries(t *testing.T) {
	ok := func(path string) Entry {
		return Entry{Path: path, Size: 1, Open: func(context.Context) (io.ReadCloser, error) {
			t.Fatal("nothing may be opened when the batch is invalid")
			return nil, nil
		}}
	}
	for _, tc := range []struct {
		name    string
		entries []Entry
	}{
		{"traversal", []Entry{ok("a.txt"), ok("../etc/passwd")}},
		{"inner traversal", []Entry{ok("a/../../b")}},
		{"absolute", []Entry{ok("/abs/path")}},
		{"backslash", []Entry{ok(`C:\Windows\x`)}},
		{"control char", []Entry{ok("a\x00b")}},
		{"newline", []Entry{ok("a\nb")}},
		{"empty", []Entry{ok("")}},
		{"empty component", []Entry{ok("a//b")}},
		{"trailing slash", []Entry{ok("dir/")}},
		{"invalid utf-8", []Entry{ok("a\xffb")}},
		{"too long", []Entry{ok(strings.Repeat("a/", MaxPathBytes))}},
		{"duplicate", []Entry{ok("a.txt"), ok("b.txt"), ok("a.txt")}},
		{"case duplicate", []Entry{ok("files/A.txt"), ok("files/a.TXT")}},
		{"file is a directory", []Entry{ok("files/x"), ok("files/x/y")}},
		{"directory is a file", []Entry{ok("files/x/y"), ok("files/X")}},
		{"folded directory is a file", []Entry{ok("files/\u212a\u017f"), ok("files/ks/y")}},
		{"file is a folded directory", []Entry{ok("files/\u212a\u017f/y"), ok("files/KS")}},
		{"negative size", []Entry{{Path: "a", Size: -1, Open: ok("a").Open}}},
		{"no opener", []Entry{{Path: "a", Size: 1}}},
		{"bad sha", []Entry{{Path: "a", Size: 1, SHA256: "abc", Open: ok("a").Open}}},
		{"non-hex sha", []Entry{{Path: "a", Size: 1, SHA256: strings.Repeat("g", 64), Open: ok("a").Open}}},
		{"bad compression", []Entry{{Path: "a", Size: 1, Compress: 9, Open: ok("a").Open}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf, Options{})
			_, err := w.Pack(context.Background(), tc.entries)
			require.ErrorIs(t, err, ErrInvalidEntry)
			require.Zero(t, buf.Len(), "nothing written for an invalid batch")
			// A rejected batch leaves the writer usable.
			_, err = w.Pack(context.Background(), []Entry{BytesEntry("ok.txt", "text/plain", []byte("ok"))})
			require.NoError(t, err)
			require.NoError(t, w.Close())
		})
	}
	t.Run("duplicate across batches", func(t *testing.T) {
		w := NewWriter(io.Discard, Options{})
		_, err := w.Pack(context.Background(), []Entry{BytesEntry("files/a.txt", "text/plain", nil)})
		require.NoError(t, err)
		_, err = w.Pack(context.Background(), []Entry{BytesEntry("FILES/A.txt", "text/plain", nil)})
		require.ErrorIs(t, err, ErrInvalidEntry)
	})
	t.Run("opener returns nil reader", func(t *testing.T) {
		_, err := Pack(context.Background(), io.Discard, []Entry{{Path: "a", Size: 1,
			Open: func(context.Context) (io.ReadCloser, error) { return nil, nil }}}, Options{})
		var ee *EntryError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, "a", ee.Path)
	})
	t.Run("bad level", func(t *testing.T) {
		_, err := Pack(context.Background(), io.Discard, nil, Options{Level: 11})
		require.ErrorContains(t, err, "level")
	})
}

// blockingReader hands out data until it has served block bytes, then
// waits for the context like a network read stalled on a slow object store.
type blockingReader struct {
	ctx   context.Context
	block int
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.block > 0 {
		k := min(len(p), r.block)
		clear(p[:k])
		r.block -= k
		return k, nil
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

// endlessReader never ends and ignores contexts: Pack itself must notice
// cancellation between reads.
type endlessReader struct{}

func (endlessReader) Read(p []byte) (int, error) {
	time.Sleep(100 * time.Microsecond)
	clear(p)
	return len(p), nil
}

func TestPackCancel(t *testing.T) {
	data := testenv.RandomBytes(1, 64<<10)
	for _, tc := range []struct {
		name string
		// entry 30 is special; cancel is called once something is under way
		special func(tr *tracker) Entry
		trigger string // "progress": cancel after 10 files; "timer": after 100 ms
	}{
		{"between entries", nil, "progress"},
		{"buffered entry blocked in read", func(tr *tracker) Entry {
			return Entry{Path: "files/30.txt", Size: 1 << 20, Open: tr.open(func(ctx context.Context) (io.Reader, error) {
				return &blockingReader{ctx: ctx, block: 100 << 10}, nil
			})}
		}, "timer"},
		{"streamed entry blocked in read", func(tr *tracker) Entry {
			return Entry{Path: "files/30.txt", Size: 1 << 40, Open: tr.open(func(ctx context.Context) (io.Reader, error) {
				return &blockingReader{ctx: ctx, block: 1 << 20}, nil
			})}
		}, "timer"},
		{"streamed entry reading forever", func(tr *tracker) Entry {
			return Entry{Path: "files/30.txt", Size: 1 << 40, MIMEType: "video/mp4", Open: tr.open(func(context.Context) (io.Reader, error) {
				return endlessReader{}, nil
			})}
		}, "timer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reps := 1
			if tc.trigger == "progress" {
				// Without the check the writer would proceed only when a
				// select picks randomly, so give it many chances to fail.
				reps = 20
			}
			for range reps {
				cancelMidArchive(t, data, tc.special, tc.trigger)
			}
		})
	}
	t.Run("deadline", func(t *testing.T) {
		checkLeaks := goroutines(t)
		var tr tracker
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := Pack(ctx, io.Discard, []Entry{{Path: "x", Size: 1 << 40, Open: tr.open(func(ctx context.Context) (io.Reader, error) {
			return &blockingReader{ctx: ctx}, nil
		})}}, Options{})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		tr.requireBalanced(t)
		checkLeaks()
	})
	t.Run("already cancelled", func(t *testing.T) {
		var tr tracker
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Pack(ctx, io.Discard, []Entry{{Path: "x", Size: 1, Open: tr.bytes([]byte("x"))}}, Options{})
		require.ErrorIs(t, err, context.Canceled)
		tr.requireBalanced(t)
	})
}

func TestPackProgress(t *testing.T) {
	var tr tracker
	tes := mixedEntries()
	var got []Progress
	w := NewWriter(io.Discard, Options{SmallEntryMax: 256 << 10, Progress: func(p Progress) { got = append(got, p) }})
	_, err := w.Pack(context.Background(), entriesOf(&tr, tes))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	var total int64
	for _, te := range tes {
		total += int64(len(te.data))
	}
	// One per entry, one when Pack returns, one after Close.
	require.Len(t, got, len(tes)+2)
	for i := 1; i < len(got); i++ {
		require.GreaterOrEqual(t, got[i].FilesDone, got[i-1].FilesDone)
		require.GreaterOrEqual(t, got[i].BytesDone, got[i-1].BytesDone)
		require.GreaterOrEqual(t, got[i].ArchiveBytes, got[i-1].ArchiveBytes)
	}
	last := got[len(got)-1]
	require.Equal(t, Progress{FilesDone: len(tes), FilesTotal: len(tes), BytesDone: total, BytesTotal: total, ArchiveBytes: last.ArchiveBytes}, last)
	require.Greater(t, last.ArchiveBytes, got[len(got)-2].ArchiveBytes, "Close adds the central directory")

	t.Run("throttled", func(t *testing.T) {
		var n int
		var last Progress
		_, err := Pack(context.Background(), io.Discard, entriesOf(&tr, tes), Options{
			ProgressInterval: time.Hour,
			Progress:         func(p Progress) { n++; last = p },
		})
		require.NoError(t, err)
		require.Equal(t, 3, n, "first entry, end of Pack, Close")
		require.Equal(t, len(tes), last.FilesDone)
	})
}

// TestWriterManifestLast shows the second way to place the manifest: after
// the files, built from the sums computed while packing.
func TestWriterManifestLast(t *testing.T) {
	var tr tracker
	tes := mixedEntries()[1:] // without the fixed manifest
	var buf bytes.Buffer
	w := NewWriter(&buf, Options{Modified: testModified})
	res, err := w.Pack(context.Background(), entriesOf(&tr, tes))
	require.NoError(t, err)

	m := Manifest{ExportID: 1, ProjectID: 2, ProjectName: "p", CreatedAt: testModified, LabelqVersion: "test"}
	for _, r := range res {
		m.Entries = append(m.Entries, ManifestEntry{Path: r.Path, VersionID: r.VersionID, SHA256: r.SHA256, Size: r.Size})
	}
	mb, err := m.Marshal()
	require.NoError(t, err)
	_, err = w.Pack(context.Background(), []Entry{BytesEntry(ManifestPath, ManifestMIME, mb)})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Len(t, w.Result().Entries, len(tes)+1)

	all := append(slices.Clone(tes), testEntry{Entry: Entry{Path: ManifestPath}, data: mb, wantMethod: zip.Deflate})
	requireArchive(t, buf.Bytes(), all, testModified)

	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	rc, err := zr.Open(ManifestPath)
	require.NoError(t, err)
	var back Manifest
	require.NoError(t, json.NewDecoder(rc).Decode(&back))
	for i, e := range back.Entries {
		require.Equal(t, sha256Hex(tes[i].data), e.SHA256)
	}
}

func TestHashingWriter(t *testing.T) {
	var buf bytes.Buffer
	hw := NewHashingWriter(&buf)
	data := testenv.RandomBytes(1, 100_000)
	for b := data; len(b) > 0; b = b[min(len(b), 777):] {
		_, err := hw.Write(b[:min(len(b), 777)])
		require.NoError(t, err)
	}
	require.Equal(t, int64(len(data)), hw.Size())
	require.Equal(t, sha256Hex(data), hw.SHA256())
	require.Equal(t, data, buf.Bytes())

	// Only what the destination accepted counts.
	short := NewHashingWriter(&limitedWriter{n: 10})
	n, err := short.Write([]byte("0123456789abcdef"))
	require.Error(t, err)
	require.Equal(t, 10, n)
	require.Equal(t, int64(10), short.Size())
	require.Equal(t, sha256Hex([]byte("0123456789")), short.SHA256())
}

type limitedWriter struct{ n int }

func (w *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestChooseMethodByMIME(t *testing.T) {
	text := testenv.TextBytes(1, 64<<10)
	rnd := testenv.RandomBytes(1, 64<<10)
	for _, tc := range []struct {
		mime   string
		sample []byte
		want   uint16
	}{
		{"image/png", text, zip.Store},
		{"IMAGE/JPEG", text, zip.Store},
		{"video/mp4", text, zip.Store},
		{"audio/mpeg", text, zip.Store},
		{"application/zip", text, zip.Store},
		{"application/gzip", text, zip.Store},
		{"application/x-7z-compressed", text, zip.Store},
		{"application/vnd.rar", text, zip.Store},
		{"application/zstd", text, zip.Store},
		{"application/pdf", text, zip.Store},
		{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", text, zip.Store},
		{"image/svg+xml", rnd, zip.Deflate},
		{"image/bmp", rnd, zip.Deflate},
		{"text/plain; charset=utf-8", rnd, zip.Deflate},
		{"application/json", rnd, zip.Deflate},
		{"application/geo+json", rnd, zip.Deflate},
		{"application/octet-stream", rnd, zip.Store},
		{"application/octet-stream", text, zip.Deflate},
		{"", rnd, zip.Store},
		{"", text, zip.Deflate},
		{"garbage;;;", text, zip.Deflate},
		{"application/x-unknown", rnd, zip.Store},
	} {
		e := Entry{MIMEType: tc.mime, Size: int64(len(tc.sample))}
		require.Equal(t, tc.want, chooseMethod(&e, tc.sample), "%q", tc.mime)
	}
}

// cancelMidArchive packs 200 entries and cancels once something is under
// way (trigger "progress": after 10 files; "timer": after 100 ms).
func cancelMidArchive(t *testing.T, data []byte, special func(tr *tracker) Entry, trigger string) {
	t.Helper()
	checkLeaks := goroutines(t)
	var tr tracker
	es := make([]Entry, 200)
	for i := range es {
		// Stored fillers: cheap under the race detector; the special
		// entries exercise the deflate path.
		es[i] = Entry{Path: pathf("files/%02d.txt", i), MIMEType: "image/png", Size: int64(len(data)), Open: tr.bytes(data)}
	}
	if special != nil {
		es[30] = special(&tr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := Options{}
	var cancelledAt time.Time
	switch trigger {
	case "progress":
		opts.Progress = func(p Progress) {
			if p.FilesDone == 10 {
				cancelledAt = time.Now()
				cancel()
			}
		}
	case "timer":
		time.AfterFunc(100*time.Millisecond, func() { cancel() })
	}
	start := time.Now()
	res, err := NewWriter(io.Discard, opts).Pack(ctx, es)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, len(res), 200)
	if trigger == "progress" {
		require.Len(t, res, 10, "nothing written after cancellation is seen")
		require.Less(t, time.Since(cancelledAt), 2*time.Second)
	} else {
		require.Less(t, len(res), 31, "stopped at or before the stuck entry")
		require.Less(t, elapsed, 3*time.Second, "cancellation must be prompt")
	}
	tr.requireBalanced(t)
	require.Positive(t, tr.opens.Load())
	checkLeaks()
}
