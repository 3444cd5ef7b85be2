package verify

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInspectZipValid(t *testing.T) {
	text := bytes.Repeat([]byte("id,label\n1,cat\n"), 100)
	img := pngBytes(t)
	data := buildZip(t,
		zipEntry{name: "data/"},
		zipEntry{name: "data/labels.csv", data: text},
		zipEntry{name: "data/cat.png", data: img, store: true},
		zipEntry{name: `windows\style\name.txt`, data: []byte("ok")},
		zipEntry{name: "..dots/in..name", data: []byte("ok")},
	)
	for _, block := range []int{0, 7, 4096} { // default, tiny (every read spans blocks), small
		rep := inspect(t, data, Options{ZipBlockSize: block})
		require.Equal(t, Valid, rep.Verdict, "block %d: %+v", block, rep.Findings)
		require.Equal(t, &ArchiveStats{Entries: 5, Files: 4, UncompressedBytes: int64(len(text) + len(img) + 4)}, rep.Archive)
		require.Empty(t, rep.Notes)
	}
}

// flipAt returns a copy of data with one byte of an entry's stored data changed.
func flipEntryByte(t *testing.T, data []byte, name string, at int64) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	for _, f := range zr.File {
		if f.Name == name {
			off, err := f.DataOffset()
			require.NoError(t, err)
			out := bytes.Clone(data)
			out[off+at] ^= 0xff
			return out
		}
	}
	t.Fatalf("no entry %q", name)
	return nil
}

func TestInspectZipDamage(t *testing.T) {
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 200)
	stored := buildZip(t, zipEntry{name: "a.txt", data: text, store: true}, zipEntry{name: "b.txt", data: text})
	deflated := buildZip(t, zipEntry{name: "a.txt", data: text}, zipEntry{name: "b.txt", data: text})

	tests := []struct {
		name    string
		data    []byte
		want    Verdict
		code    Code
		message string
	}{
		{"stored entry with a flipped byte fails its CRC", flipEntryByte(t, stored, "a.txt", 100), Corrupt, CodeZipDamaged,
			`entry "a.txt" is damaged: its CRC-32 does not match its data`},
		{"deflated entry with a flipped byte", flipEntryByte(t, deflated, "b.txt", 20), Corrupt, CodeZipDamaged, `entry "b.txt" is damaged`},
		{"truncated archive", stored[:len(stored)/2], Corrupt, CodeZipDamaged, "ZIP archive is damaged or truncated"},
		{"not a ZIP at all", []byte("id,label\n1,cat\n"), Rejected, CodeZipInvalid, "file is not a ZIP archive"},
		{"empty input", nil, Rejected, CodeZipInvalid, "file is not a ZIP archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := inspect(t, tt.data, Options{})
			require.Equal(t, tt.want, rep.Verdict, "%+v", rep.Findings)
			require.Equal(t, []Code{tt.code}, codes(rep))
			require.Contains(t, rep.Message(), tt.message)
		})
	}
}

func TestInspectZipUnsafeEntries(t *testing.T) {
	tests := []struct {
		name  string
		entry zipEntry
		opts  Options
		want  Verdict
		code  Code
	}{
		{"parent traversal", zipEntry{name: "../../etc/passwd", data: []byte("root:x:0:0")}, Options{}, Rejected, CodeZipUnsafePath},
		{"traversal in the middle", zipEntry{name: "a/../../b.txt", data: []byte("x")}, Options{}, Rejected, CodeZipUnsafePath},
		{"absolute path", zipEntry{name: "/etc/passwd", data: []byte("x")}, Options{}, Rejected, CodeZipUnsafePath},
		{"backslash traversal", zipEntry{name: `..\..\windows\evil.txt`, data: []byte("x")}, Options{}, Rejected, CodeZipUnsafePath},
		{"windows absolute", zipEntry{name: `\\server\share\x.txt`, data: []byte("x")}, Options{}, Rejected, CodeZipUnsafePath},
		{"drive letter", zipEntry{name: `C:\Windows\evil.txt`, data: []byte("x")}, Options{}, Rejected, CodeZipUnsafePath},
		{"symlink", zipEntry{name: "link", data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}, Options{}, Rejected, CodeZipSpecialFile},
		{"symlink when allowed", zipEntry{name: "link", data: []byte("target.txt"), mode: fs.ModeSymlink | 0o777}, Options{AllowZipSymlinks: true}, Valid, ""},
		{"named pipe", zipEntry{name: "fifo", mode: fs.ModeNamedPipe | 0o644}, Options{}, Rejected, CodeZipSpecialFile},
		{"encrypted entry", zipEntry{name: "secret.txt", data: []byte("ciphertext"), flags: 0x1}, Options{}, Rejected, CodeZipEncrypted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := buildZip(t, zipEntry{name: "ok.txt", data: []byte("fine")}, tt.entry)
			rep := inspect(t, data, tt.opts)
			require.Equal(t, tt.want, rep.Verdict, "%+v", rep.Findings)
			if tt.code != "" {
				require.Equal(t, []Code{tt.code}, codes(rep))
				require.Contains(t, rep.Message(), tt.entry.name)
				require.Zero(t, rep.Archive.UncompressedBytes, "nothing is decompressed once the names fail")
			}
		})
	}

	t.Run("many bad names make one finding", func(t *testing.T) {
		var entries []zipEntry
		for i := range 10 {
			entries = append(entries, zipEntry{name: strings.Repeat("../", i+1) + "x", data: []byte("x")})
		}
		rep := inspect(t, buildZip(t, entries...), Options{})
		require.Equal(t, []Code{CodeZipUnsafePath}, codes(rep))
		require.Contains(t, rep.Message(), "and 7 more")
	})
}

func TestInspectZipLimits(t *testing.T) {
	entries := func(n int) []zipEntry {
		var es []zipEntry
		for i := range n {
			es = append(es, zipEntry{name: string(rune('a'+i)) + ".txt", data: []byte("x")})
		}
		return es
	}

	t.Run("entry count at the limit", func(t *testing.T) {
		rep := inspect(t, buildZip(t, entries(5)...), Options{MaxZipEntries: 5})
		require.Equal(t, Valid, rep.Verdict)
	})
	t.Run("too many entries", func(t *testing.T) {
		rep := inspect(t, buildZip(t, entries(6)...), Options{MaxZipEntries: 5})
		require.Equal(t, []Code{CodeZipTooManyEntries}, codes(rep))
		require.Contains(t, rep.Message(), "archive has 6 entries, more than the limit of 5")
	})
	t.Run("table of contents too large for the entry limit", func(t *testing.T) {
		// Five entries, each carrying 60 KiB of extra field in the central
		// directory: 300 KiB to parse for an archive allowed 10 entries.
		var es []zipEntry
		for i := range 5 {
			es = append(es, zipEntry{name: string(rune('a' + i)), data: []byte("x"), extra: extraField(60_000)})
		}
		data := buildZip(t, es...)
		rep := inspect(t, data, Options{MaxZipEntries: 10})
		require.Equal(t, []Code{CodeZipTooManyEntries}, codes(rep))
		require.Contains(t, rep.Message(), "table of contents")
		// Without the entry limit the same archive is fine.
		require.Equal(t, Valid, inspect(t, data, Options{MaxZipEntries: -1}).Verdict)
	})
	t.Run("total expanded size", func(t *testing.T) {
		data := buildZip(t, zipEntry{name: "big.bin", data: randomBytes(2000, 8), store: true})
		rep := inspect(t, data, Options{MaxZipUncompressed: 1000})
		require.Equal(t, []Code{CodeZipTooLarge}, codes(rep))
		require.Contains(t, rep.Message(), "more than the 1,000 bytes limit")
	})
	t.Run("empty archive", func(t *testing.T) {
		data := buildZip(t, zipEntry{name: "only-a-folder/"})
		require.Equal(t, []Code{CodeEmpty}, codes(inspect(t, data, Options{})))
		require.Equal(t, Valid, inspect(t, data, Options{AllowEmpty: true}).Verdict)
	})
	t.Run("highly compressible small files are not bombs", func(t *testing.T) {
		// 512 KiB of zeros deflates to ~500 bytes, 1000:1, but stays within
		// the grace allowance.
		data := buildZip(t, zipEntry{name: "sparse.csv", data: make([]byte, 512<<10)})
		require.Equal(t, Valid, inspect(t, data, Options{}).Verdict)
	})
}

// extraField returns a well-formed extra field block (one private-use record)
// of n bytes.
func extraField(n int) []byte {
	b := make([]byte, n)
	b[0], b[1] = 0xfe, 0xca
	b[2], b[3] = byte(n-4), byte((n-4)>>8)
	return b
}

// zeroBomb deflates size zero bytes into a single-entry archive.
func zeroBomb(t *testing.T, name string, size int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	w, err := zw.Create(name)
	require.NoError(t, err)
	zeros := make([]byte, 1<<20)
	for written := 0; written < size; written += len(zeros) {
		_, err = w.Write(zeros[:min(len(zeros), size-written)])
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return b.Bytes()
}

func TestInspectZipBomb(t *testing.T) {
	const size = 50 << 20
	bomb := zeroBomb(t, "zeros.bin", size)
	require.Less(t, len(bomb), 100<<10, "50 MB of zeros must deflate to under 100 KB")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep := inspect(t, bomb, Options{})
	runtime.ReadMemStats(&after)

	require.Equal(t, Rejected, rep.Verdict)
	require.Equal(t, []Code{CodeZipBomb}, codes(rep))
	require.Contains(t, rep.Message(), `entry "zeros.bin" expands more than 100 times`)
	require.Less(t, rep.Archive.UncompressedBytes, int64(size/5), "reading stops near the ratio limit")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20),
		"inspecting a 50 MB bomb allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
}

// Many entries each under the per-entry grace still hit the archive-wide ratio.
func TestInspectZipBombOfSmallEntries(t *testing.T) {
	var es []zipEntry
	for i := range 20 {
		es = append(es, zipEntry{name: string(rune('a'+i)) + ".bin", data: make([]byte, 1<<20)})
	}
	rep := inspect(t, buildZip(t, es...), Options{})
	require.Equal(t, []Code{CodeZipBomb}, codes(rep))
	require.Contains(t, rep.Message(), "times its size")
}

func TestInspectZipOverlappingEntries(t *testing.T) {
	data := rawZip([]byte("shared kernel"), "a.txt", "b.txt", "c.txt")
	rep := inspect(t, data, Options{})
	require.Equal(t, []Code{CodeZipOverlap}, codes(rep))
	require.Contains(t, rep.Message(), `entries "a.txt" and "b.txt" share the same compressed data`)

	// The hand-written archive is otherwise well-formed.
	require.Equal(t, Valid, inspect(t, rawZip([]byte("one"), "a.txt"), Options{}).Verdict)
}

func TestInspectZipEntryContents(t *testing.T) {
	inner := buildZip(t, zipEntry{name: "inner.txt", data: []byte("x")})

	t.Run("nested archive is opened", func(t *testing.T) {
		rep := inspect(t, buildZip(t, zipEntry{name: "a.txt", data: []byte("a")}, zipEntry{name: "more/inner.zip", data: inner, store: true}), Options{})
		require.Equal(t, Valid, rep.Verdict, "%+v", rep.Findings)
		require.Equal(t, &ArchiveStats{Entries: 3, Files: 3, NestedArchives: 1, UncompressedBytes: 2}, rep.Archive,
			"the inner entry is listed and read; the inner archive's own bytes count once, as what it expands to")
		require.Empty(t, rep.Notes)
	})
	t.Run("nested archive of a kind that is not opened is noted", func(t *testing.T) {
		xz := []byte("\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46\x02\x00\x21\x01\x16\x00\x00\x00")
		rep := inspect(t, buildZip(t, zipEntry{name: "a.txt", data: []byte("a")}, zipEntry{name: "more/data.xz", data: xz, store: true}), Options{})
		require.Equal(t, Valid, rep.Verdict)
		require.Equal(t, 1, rep.Archive.NestedArchives)
		require.Contains(t, strings.Join(rep.Notes, "\n"), `"more/data.xz"`)
	})
	t.Run("executable inside", func(t *testing.T) {
		rep := inspect(t, buildZip(t, zipEntry{name: "a.txt", data: []byte("a")}, zipEntry{name: "tools/run", data: elfBytes()}), Options{})
		require.Equal(t, []Code{CodeZipBlockedEntry}, codes(rep))
		require.Contains(t, rep.Message(), `entry "tools/run" is application/x-executable`)
	})
	t.Run("unsupported compression method", func(t *testing.T) {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "a.bz2data", Method: 12, CompressedSize64: 4, UncompressedSize64: 4, CRC32: 1})
		require.NoError(t, err)
		_, err = w.Write([]byte("BZh9"))
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		rep := inspect(t, b.Bytes(), Options{})
		require.Equal(t, []Code{CodeZipUnsupported}, codes(rep))
		require.Contains(t, rep.Message(), "compression method 12")
	})
	t.Run("CRC missing from a non-empty entry", func(t *testing.T) {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "a.txt", Method: zip.Store, CompressedSize64: 5, UncompressedSize64: 5})
		require.NoError(t, err)
		_, err = w.Write([]byte("hello"))
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		rep := inspect(t, b.Bytes(), Options{})
		require.Equal(t, []Code{CodeZipDamaged}, codes(rep))
		require.Contains(t, rep.Message(), "no CRC-32 recorded")
	})
}

// failingReaderAt fails every read that touches bytes at or past failAt.
type failingReaderAt struct {
	data   []byte
	failAt int64
	err    error
}

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.failAt {
		return 0, f.err
	}
	return copy(p, f.data[off:]), nil
}

// Failures of the reader itself are errors to retry, never a verdict on the file.
func TestInspectZipReadFailures(t *testing.T) {
	data := buildZip(t, zipEntry{name: "a.bin", data: randomBytes(200_000, 9), store: true})
	boom := errors.New("connection reset by peer")

	t.Run("storage fails mid-entry", func(t *testing.T) {
		// Small blocks, so the central directory reads succeed and an entry
		// read hits the failure.
		_, err := InspectZip(context.Background(), failingReaderAt{data: data, failAt: 100_000, err: boom}, int64(len(data)), Options{ZipBlockSize: 4096})
		require.ErrorIs(t, err, boom)
	})
	t.Run("storage fails at once", func(t *testing.T) {
		_, err := InspectZip(context.Background(), failingReaderAt{data: data, failAt: 0, err: boom}, int64(len(data)), Options{})
		require.ErrorIs(t, err, boom)
	})
	t.Run("object shorter than its reported size", func(t *testing.T) {
		_, err := InspectZip(context.Background(), bytes.NewReader(data), int64(len(data))+100, Options{})
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := InspectZip(ctx, bytes.NewReader(data), int64(len(data)), Options{})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestUnsafeEntryName(t *testing.T) {
	for name, want := range map[string]string{
		"a.txt": "", "dir/sub/a.txt": "", `dir\a.txt`: "", "..a": "", "a..": "", "./a": "",
		"": "empty name", "/a": "absolute path", `\a`: "absolute path", "c:a": "drive letter",
		"..": `".." component`, "a/..": `".." component`, `a\..\..\b`: `".." component`, "a\x00b": "NUL byte in name",
	} {
		require.Equal(t, want, unsafeEntryName(name), "%q", name)
	}
}
