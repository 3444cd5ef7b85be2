package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/verify/archivetest"
)

func inspectArchive(t testing.TB, data []byte, opts Options) Report {
	t.Helper()
	rep, err := InspectArchive(context.Background(), bytes.NewReader(data), int64(len(data)), opts)
	require.NoError(t, err)
	return rep
}

func TestInspectArchiveValid(t *testing.T) {
	text := bytes.Repeat([]byte("id,label\n1,cat\n"), 100)
	img := pngBytes(t)
	plainTar := archivetest.Tar(t,
		archivetest.TarEntry{Name: "data/", Type: tar.TypeDir},
		archivetest.TarEntry{Name: "data/labels.csv", Body: text},
		archivetest.TarEntry{Name: "data/cat.png", Body: img},
	)
	for name, data := range map[string][]byte{"tar": plainTar, "tar.gz": archivetest.Gzip(t, plainTar)} {
		t.Run(name, func(t *testing.T) {
			rep := inspectArchive(t, data, Options{})
			require.Equal(t, Valid, rep.Verdict, "%+v", rep.Findings)
			require.Equal(t, &ArchiveStats{Entries: 3, Files: 2, UncompressedBytes: int64(len(text) + len(img))}, rep.Archive)
		})
	}
	t.Run("plain gzip", func(t *testing.T) {
		rep := inspectArchive(t, archivetest.Gzip(t, text), Options{})
		require.Equal(t, Valid, rep.Verdict, "%+v", rep.Findings)
		require.Equal(t, &ArchiveStats{Files: 1, UncompressedBytes: int64(len(text))}, rep.Archive)
	})
	t.Run("links inside the archive when links are allowed", func(t *testing.T) {
		data := archivetest.Tar(t,
			archivetest.TarEntry{Name: "a/b.csv", Body: text},
			archivetest.TarEntry{Name: "a/link.csv", Type: tar.TypeSymlink, Link: "b.csv"},
			archivetest.TarEntry{Name: "a/c/up.csv", Type: tar.TypeSymlink, Link: "../b.csv"},
			archivetest.TarEntry{Name: "hard.csv", Type: tar.TypeLink, Link: "a/b.csv"},
		)
		require.Equal(t, Valid, inspectArchive(t, data, Options{AllowZipSymlinks: true}).Verdict)
		rep := inspectArchive(t, data, Options{})
		require.Equal(t, []Code{CodeZipSpecialFile}, codes(rep), "links are refused by default, as in ZIP archives")
		require.Contains(t, rep.Message(), `entry 2 "a/link.csv" (symbolic link to "b.csv")`)
		require.Contains(t, rep.Message(), `entry 4 "hard.csv" (hard link to "a/b.csv")`)
	})
	t.Run("not an archive", func(t *testing.T) {
		rep := inspectArchive(t, text, Options{})
		require.Equal(t, Valid, rep.Verdict)
		require.Nil(t, rep.Archive)
	})
}

func TestInspectArchiveTarUnsafeEntries(t *testing.T) {
	ok := archivetest.TarEntry{Name: "ok.csv", Body: []byte("a,b\n")}
	tests := []struct {
		name  string
		entry archivetest.TarEntry
		opts  Options
		code  Code
		msg   string
	}{
		{"parent traversal", archivetest.TarEntry{Name: "../../etc/passwd", Body: []byte("root:x:0:0")}, Options{}, CodeZipUnsafePath,
			`entry 2 "../../etc/passwd" (".." component)`},
		{"absolute path", archivetest.TarEntry{Name: "/etc/cron.d/x", Body: []byte("x")}, Options{}, CodeZipUnsafePath,
			`entry 2 "/etc/cron.d/x" (absolute path)`},
		{"backslash traversal", archivetest.TarEntry{Name: `..\..\evil.txt`, Body: []byte("x")}, Options{}, CodeZipUnsafePath, `(".." component)`},
		{"symlink out of the archive", archivetest.TarEntry{Name: "passwd", Type: tar.TypeSymlink, Link: "/etc/passwd"}, Options{AllowZipSymlinks: true},
			CodeZipSpecialFile, `entry 2 "passwd" (symbolic link to "/etc/passwd", outside the archive)`},
		{"symlink climbing out", archivetest.TarEntry{Name: "a/b/up", Type: tar.TypeSymlink, Link: "../../../x"}, Options{AllowZipSymlinks: true},
			CodeZipSpecialFile, `(symbolic link to "../../../x", outside the archive)`},
		{"hard link out of the archive", archivetest.TarEntry{Name: "h", Type: tar.TypeLink, Link: "../h"}, Options{AllowZipSymlinks: true},
			CodeZipSpecialFile, `entry 2 "h" (hard link to "../h", outside the archive)`},
		{"character device", archivetest.TarEntry{Name: "tty", Type: tar.TypeChar}, Options{}, CodeZipSpecialFile, `entry 2 "tty" (device)`},
		{"block device", archivetest.TarEntry{Name: "sda", Type: tar.TypeBlock}, Options{}, CodeZipSpecialFile, `entry 2 "sda" (device)`},
		{"named pipe", archivetest.TarEntry{Name: "fifo", Type: tar.TypeFifo}, Options{}, CodeZipSpecialFile, `entry 2 "fifo" (named pipe)`},
	}
	for _, tt := range tests {
		plain := archivetest.Tar(t, ok, tt.entry)
		for kind, data := range map[string][]byte{"tar": plain, "tar.gz": archivetest.Gzip(t, plain)} {
			t.Run(kind+" "+tt.name, func(t *testing.T) {
				rep := inspectArchive(t, data, tt.opts)
				require.Equal(t, Rejected, rep.Verdict, "%+v", rep.Findings)
				require.Equal(t, []Code{tt.code}, codes(rep))
				require.Contains(t, rep.Message(), tt.msg)
				require.Equal(t, 1, rep.Archive.Files, "the entries before the bad one were read, nothing after it")
			})
		}
	}
	t.Run("an unsafe name stops content checks but not the listing", func(t *testing.T) {
		rep := inspectArchive(t, archivetest.Tar(t,
			archivetest.TarEntry{Name: "../a", Body: []byte("x")}, archivetest.TarEntry{Name: "tools/run", Body: elfBytes()}, archivetest.TarEntry{Name: "../b", Body: []byte("x")},
		), Options{})
		require.Equal(t, []Code{CodeZipUnsafePath}, codes(rep))
		require.Contains(t, rep.Message(), `entry 1 "../a" (".." component), entry 3 "../b" (".." component)`)
	})
}

func TestInspectArchiveTarLimitsAndDamage(t *testing.T) {
	var many []archivetest.TarEntry
	for i := range 6 {
		many = append(many, archivetest.TarEntry{Name: string(rune('a'+i)) + ".txt", Body: []byte("x")})
	}
	t.Run("too many entries", func(t *testing.T) {
		require.Equal(t, Valid, inspectArchive(t, archivetest.Tar(t, many[:5]...), Options{MaxZipEntries: 5}).Verdict)
		rep := inspectArchive(t, archivetest.Tar(t, many...), Options{MaxZipEntries: 5})
		require.Equal(t, []Code{CodeZipTooManyEntries}, codes(rep))
		require.Contains(t, rep.Message(), "archive has more than 5 entries, the limit")
	})
	t.Run("total expanded size", func(t *testing.T) {
		rep := inspectArchive(t, archivetest.Gzip(t, archivetest.Tar(t, archivetest.TarEntry{Name: "big.bin", Body: randomBytes(3000, 1)})), Options{MaxZipUncompressed: 1000})
		require.Equal(t, []Code{CodeZipTooLarge}, codes(rep))
		require.Contains(t, rep.Message(), "more than the 1,000 bytes limit")
	})
	t.Run("executable inside", func(t *testing.T) {
		rep := inspectArchive(t, archivetest.Gzip(t, archivetest.Tar(t, archivetest.TarEntry{Name: "a.txt", Body: []byte("a")}, archivetest.TarEntry{Name: "tools/run", Body: elfBytes()})), Options{})
		require.Equal(t, []Code{CodeZipBlockedEntry}, codes(rep))
		require.Contains(t, rep.Message(), `entry "tools/run" is application/x-executable`)
	})
	t.Run("empty", func(t *testing.T) {
		data := archivetest.Tar(t, archivetest.TarEntry{Name: "only-a-folder/", Type: tar.TypeDir})
		require.Equal(t, []Code{CodeEmpty}, codes(inspectArchive(t, data, Options{})))
		require.Equal(t, Valid, inspectArchive(t, data, Options{AllowEmpty: true}).Verdict)
	})
	t.Run("truncated in the middle of an entry", func(t *testing.T) {
		data := archivetest.Tar(t, archivetest.TarEntry{Name: "a.bin", Body: randomBytes(5000, 2)})
		rep := inspectArchive(t, data[:2000], Options{})
		require.Equal(t, []Code{CodeArchiveDamaged}, codes(rep))
		require.Equal(t, Corrupt, rep.Verdict)
		require.Contains(t, rep.Message(), "tar archive is damaged or truncated")
	})
	t.Run("damaged gzip", func(t *testing.T) {
		data := archivetest.Gzip(t, archivetest.Tar(t, archivetest.TarEntry{Name: "a.csv", Body: bytes.Repeat([]byte("a,b,c\n"), 500)}))
		data[len(data)-6] ^= 0xff // in the CRC-32 trailer
		rep := inspectArchive(t, data, Options{})
		require.Equal(t, Corrupt, rep.Verdict, "%+v", rep.Findings)
		require.Equal(t, []Code{CodeArchiveDamaged}, codes(rep))
	})
	t.Run("data hidden after the end of the tar", func(t *testing.T) {
		data := append(archivetest.Tar(t, many[0]), buildZip(t, zipEntry{name: "hidden.txt", data: []byte("x")})...)
		rep := inspectArchive(t, data, Options{})
		require.Equal(t, []Code{CodePolyglot}, codes(rep))
		require.Contains(t, rep.Message(), "data after its end marker")
		// Zero padding after the end marker is what tar writes itself.
		require.Equal(t, Valid, inspectArchive(t, append(archivetest.Tar(t, many[0]), make([]byte, 10240)...), Options{}).Verdict)
	})
}

// A gzip of 10 GiB of zeros (10 MB compressed) is stopped at the ratio limit,
// after reading a little of it, in constant memory and well under a second.
func TestInspectArchiveGzipBomb(t *testing.T) {
	bomb := archivetest.GzipZeros(t, 10<<30)
	require.Less(t, len(bomb), 12<<20)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	rep := inspectArchive(t, bomb, Options{})
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)

	require.Equal(t, []Code{CodeZipBomb}, codes(rep))
	require.Contains(t, rep.Message(), "gzip stream expands more than 100 times")
	require.Contains(t, rep.Message(), "compression bomb")
	require.Less(t, rep.Archive.UncompressedBytes, int64(64<<20), "reading stops near the ratio limit")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
	require.Less(t, elapsed, 5*time.Second)

	t.Run("without a ratio limit the size limit stops it", func(t *testing.T) {
		rep := inspectArchive(t, archivetest.GzipZeros(t, 128<<20), Options{MaxZipRatio: -1, MaxZipUncompressed: 64 << 20})
		require.Equal(t, []Code{CodeZipTooLarge}, codes(rep))
		require.Contains(t, rep.Message(), "more than the 64 MiB limit")
	})
	t.Run("inside a tar.gz", func(t *testing.T) {
		rep := inspectArchive(t, archivetest.Gzip(t, archivetest.Tar(t, archivetest.TarEntry{Name: "zeros.csv", Body: make([]byte, 16<<20)})), Options{})
		require.Equal(t, []Code{CodeZipBomb}, codes(rep))
		require.Contains(t, rep.Message(), "gzip stream expands more than 100 times")
	})
}

func TestInspectArchiveNested(t *testing.T) {
	csv := bytes.Repeat([]byte("id,label\n1,cat\n"), 20)
	inner := buildZip(t, zipEntry{name: "deep.csv", data: csv})
	wrap := func(name string, data []byte) []byte { return buildZip(t, zipEntry{name: name, data: data}) }
	depth3 := wrap("l1.zip", wrap("l2.zip", inner))
	depth4 := wrap("l0.zip", depth3)

	t.Run("within the depth limit", func(t *testing.T) {
		rep := inspectArchive(t, depth3, Options{})
		require.Equal(t, Valid, rep.Verdict, "%+v", rep.Findings)
		require.Equal(t, &ArchiveStats{Entries: 3, Files: 3, NestedArchives: 2, UncompressedBytes: int64(len(csv))}, rep.Archive)
	})
	t.Run("deeper than the limit", func(t *testing.T) {
		rep := inspectArchive(t, depth4, Options{})
		require.Equal(t, []Code{CodeArchiveTooDeep}, codes(rep))
		require.Contains(t, rep.Message(), `nested archive depth 4 exceeds the limit of 3: entry "l2.zip" in "l1.zip" in "l0.zip"`)
		require.Equal(t, Valid, inspectArchive(t, depth4, Options{MaxArchiveDepth: 4}).Verdict)
		rep = inspectArchive(t, wrap("one.zip", inner), Options{MaxArchiveDepth: 1})
		require.Equal(t, []Code{CodeArchiveTooDeep}, codes(rep), "depth 1: no archive inside an archive")
	})
	t.Run("a .tar.gz is one level", func(t *testing.T) {
		data := wrap("a.tar.gz", archivetest.Gzip(t, archivetest.Tar(t, archivetest.TarEntry{Name: "b.zip", Body: wrap("c.csv", csv)})))
		rep := inspectArchive(t, data, Options{})
		require.Equal(t, Valid, rep.Verdict, "zip › tar.gz › zip is 3 levels: %+v", rep.Findings)
		require.Equal(t, []Code{CodeArchiveTooDeep}, codes(inspectArchive(t, wrap("x.zip", data), Options{})))

		// A gzip of anything but a tar is a level of its own.
		data = wrap("a.tar.gz", archivetest.Gzip(t, archivetest.Tar(t, archivetest.TarEntry{Name: "b.zip", Body: wrap("c.csv.gz", archivetest.Gzip(t, csv))})))
		rep = inspectArchive(t, data, Options{})
		require.Equal(t, []Code{CodeArchiveTooDeep}, codes(rep))
		require.Contains(t, rep.Message(), `nested archive depth 4 exceeds the limit of 3: entry "c.csv.gz" in "b.zip" in "a.tar.gz"`)
		require.Equal(t, Valid, inspectArchive(t, data, Options{MaxArchiveDepth: 4}).Verdict)
	})
	t.Run("nested zip bomb", func(t *testing.T) {
		// The outer archive stores the inner one: only the inner entry is
		// highly compressed.
		data := buildZip(t, zipEntry{name: "inner.zip", data: zeroBomb(t, "zeros.bin", 8<<20), store: true})
		rep := inspectArchive(t, data, Options{})
		require.Equal(t, []Code{CodeZipBomb}, codes(rep))
		require.Contains(t, rep.Message(), `entry "zeros.bin" in "inner.zip" expands more than 100 times`)
	})
	t.Run("nested zips of small entries hit the ratio of the whole", func(t *testing.T) {
		var es []zipEntry
		for i := range 4 {
			var small []zipEntry
			for j := range 2 {
				small = append(small, zipEntry{name: string(rune('a'+j)) + ".bin", data: make([]byte, 1<<20)})
			}
			es = append(es, zipEntry{name: string(rune('p'+i)) + ".zip", data: buildZip(t, small...)})
		}
		rep := inspectArchive(t, buildZip(t, es...), Options{})
		require.Equal(t, []Code{CodeZipBomb}, codes(rep))
		require.Contains(t, rep.Message(), "times its size")
	})
	t.Run("entry limit counts every level", func(t *testing.T) {
		data := buildZip(t, zipEntry{name: "a.txt", data: []byte("a")},
			zipEntry{name: "in.zip", data: buildZip(t, zipEntry{name: "b", data: []byte("b")}, zipEntry{name: "c", data: []byte("c")})})
		require.Equal(t, Valid, inspectArchive(t, data, Options{MaxZipEntries: 4}).Verdict)
		rep := inspectArchive(t, data, Options{MaxZipEntries: 3})
		require.Equal(t, []Code{CodeZipTooManyEntries}, codes(rep), "%+v", rep.Findings)
	})
	t.Run("tar with ../ inside a zip", func(t *testing.T) {
		data := wrap("inner.tar", archivetest.Tar(t, archivetest.TarEntry{Name: "../../etc/passwd", Body: []byte("root")}))
		rep := inspectArchive(t, data, Options{})
		require.Equal(t, []Code{CodeZipUnsafePath}, codes(rep))
		require.Contains(t, rep.Message(), `archive "inner.tar" has entries that would be written outside`)
		require.Contains(t, rep.Message(), `entry 1 "../../etc/passwd" in "inner.tar" (".." component)`)
	})
	t.Run("zip with ../ inside a tar.gz", func(t *testing.T) {
		data := archivetest.Gzip(t, archivetest.Tar(t, archivetest.TarEntry{Name: "in.zip", Body: buildZip(t, zipEntry{name: "../evil", data: []byte("x")})}))
		rep := inspectArchive(t, data, Options{})
		require.Equal(t, []Code{CodeZipUnsafePath}, codes(rep))
		require.Contains(t, rep.Message(), `"../evil" in "in.zip" (".." component)`)
	})
	t.Run("executable in a gzip in a zip", func(t *testing.T) {
		rep := inspectArchive(t, wrap("tool.gz", archivetest.Gzip(t, elfBytes())), Options{})
		require.Equal(t, []Code{CodeZipBlockedEntry}, codes(rep))
	})
	t.Run("gzip bomb in a zip", func(t *testing.T) {
		rep := inspectArchive(t, buildZip(t, zipEntry{name: "z.gz", data: archivetest.GzipZeros(t, 64<<20), store: true}), Options{})
		require.Equal(t, []Code{CodeZipBomb}, codes(rep))
		require.Contains(t, rep.Message(), `gzip stream "z.gz" expands more than 100 times`)
	})
	t.Run("nested zip too large to hold", func(t *testing.T) {
		data := wrap("big.zip", buildZip(t, zipEntry{name: "r.bin", data: randomBytes(200_000, 3), store: true}))
		rep := inspectArchive(t, data, Options{MaxNestedZipBytes: 100_000})
		require.Equal(t, []Code{CodeNestedArchiveTooBig}, codes(rep))
		require.Contains(t, rep.Message(), `entry "big.zip" is a ZIP archive larger than 100,000 bytes`)
		require.Equal(t, Valid, inspectArchive(t, data, Options{}).Verdict)
	})
	t.Run("damaged nested zip", func(t *testing.T) {
		bad := buildZip(t, zipEntry{name: "a.txt", data: csv, store: true})
		bad[len(bad)/3] ^= 0xff
		rep := inspectArchive(t, wrap("bad.zip", bad), Options{})
		require.Equal(t, Corrupt, rep.Verdict, "%+v", rep.Findings)
		require.Contains(t, rep.Message(), `"a.txt" in "bad.zip"`)
	})
	t.Run("InspectZip opens nested archives too", func(t *testing.T) {
		require.Equal(t, []Code{CodeArchiveTooDeep}, codes(inspect(t, depth4, Options{})))
	})
}

func TestPolyglot(t *testing.T) {
	check := func(t *testing.T, data []byte, declared string) Report {
		t.Helper()
		m, err := Measure(context.Background(), bytes.NewReader(data), Options{})
		require.NoError(t, err)
		return Check(m, References{FileType: FileTypeDataset, DeclaredMIME: declared}, Options{})
	}
	zipped := buildZip(t, zipEntry{name: "payload.html", data: []byte("<script>alert(1)</script>")})

	for _, tt := range []struct {
		name, mime string
		data       []byte
	}{
		{"JPEG", "image/jpeg", jpegBytes(t)},
		{"PNG", "image/png", pngBytes(t)},
		{"PDF", "application/pdf", []byte("%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n")},
		{"gzip", "application/gzip", archivetest.Gzip(t, []byte("hello"))},
	} {
		t.Run(tt.name+" with a ZIP appended", func(t *testing.T) {
			require.Equal(t, Valid, check(t, tt.data, tt.mime).Verdict, "the file alone is fine")
			rep := check(t, append(bytes.Clone(tt.data), zipped...), tt.mime)
			require.Equal(t, []Code{CodePolyglot}, codes(rep))
			require.Contains(t, rep.Message(), tt.mime+" with a ZIP archive appended")
			// Trailing bytes after the archive do not hide it.
			rep = check(t, append(append(bytes.Clone(tt.data), zipped...), "trailing"...), tt.mime)
			require.Equal(t, []Code{CodePolyglot}, codes(rep))
		})
	}
	t.Run("a ZIP appended far into a large file", func(t *testing.T) {
		data := append(append(jpegBytes(t), randomBytes(10<<20, 4)...), zipped...)
		require.Equal(t, []Code{CodePolyglot}, codes(check(t, data, "image/jpeg")))
	})
	t.Run("a signature alone is not an archive", func(t *testing.T) {
		data := append(jpegBytes(t), []byte("PK\x05\x06 not really a zip record")...)
		require.Equal(t, Valid, check(t, data, "image/jpeg").Verdict)
	})
	t.Run("a ZIP is no polyglot, nor a tar ending with one", func(t *testing.T) {
		require.Equal(t, Valid, check(t, zipped, "application/zip").Verdict)
		tarred := archivetest.Tar(t, archivetest.TarEntry{Name: "last.zip", Body: zipped})
		require.Equal(t, Valid, check(t, tarred, "application/x-tar").Verdict)
		require.Equal(t, Valid, inspectArchive(t, tarred, Options{}).Verdict, "the ZIP is opened as a nested archive instead")
	})
}

func TestInspectZipJoinedArchives(t *testing.T) {
	hidden := buildZip(t, zipEntry{name: "notes.txt", data: randomBytes(1000, 11), store: true})
	shown := buildZip(t, zipEntry{name: "labels.csv", data: []byte("id,label\n1,cat\n")})
	rep := inspectArchive(t, append(bytes.Clone(hidden), shown...), Options{})
	require.Equal(t, []Code{CodePolyglot}, codes(rep))
	require.Contains(t, rep.Message(), "two archives are joined in one file")
	require.Equal(t, Valid, inspectArchive(t, shown, Options{}).Verdict)
}

func TestKeepTail(t *testing.T) {
	data := randomBytes(3*TailBytes+17, 5)
	for _, chunk := range []int{7, 4096, TailBytes - 1, TailBytes, TailBytes + 1, 1 << 20} {
		var tail []byte
		for i := 0; i < len(data); i += chunk {
			tail = keepTail(tail, data[i:min(i+chunk, len(data))])
		}
		require.Equal(t, data[len(data)-TailBytes:], tail, "chunk %d", chunk)
	}
	require.Equal(t, []byte("abc"), keepTail(nil, []byte("abc")))
}

// Failures of the reader itself are errors to retry, never a verdict.
func TestInspectArchiveReadFailures(t *testing.T) {
	data := archivetest.Tar(t, archivetest.TarEntry{Name: "a.bin", Body: randomBytes(200_000, 6)})
	boom := errors.New("connection reset by peer")
	_, err := InspectArchive(context.Background(), failingReaderAt{data: data, failAt: 100_000, err: boom}, int64(len(data)), Options{ZipBlockSize: 4096})
	require.ErrorIs(t, err, boom)

	gz := archivetest.Gzip(t, randomBytes(200_000, 7))
	_, err = InspectArchive(context.Background(), failingReaderAt{data: gz, failAt: 100_000, err: boom}, int64(len(gz)), Options{ZipBlockSize: 4096})
	require.ErrorIs(t, err, boom)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = InspectArchive(ctx, bytes.NewReader(data), int64(len(data)), Options{})
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, strings.Contains(err.Error(), "damaged"))
}
