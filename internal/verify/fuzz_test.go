package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/verify/archivetest"
)

// FuzzInspectZip: no input may panic, hang, or be reported as an I/O error
// (the reader here never fails), and the verdict is always one of three.
func FuzzInspectZip(f *testing.F) {
	valid := buildZip(f,
		zipEntry{name: "a.txt", data: []byte("hello hello hello")},
		zipEntry{name: "dir/"},
		zipEntry{name: "b.bin", data: []byte{0, 1, 2, 3}, store: true},
	)
	f.Add(valid)
	f.Add(valid[:len(valid)-10])
	f.Add(valid[len(valid)/2:])
	f.Add(rawZip([]byte("kernel"), "a", "b"))
	f.Add(buildZip(f, zipEntry{name: "../x", data: []byte("x")}))
	f.Add(buildZip(f, zipEntry{name: "z", data: make([]byte, 3<<20)}))
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte{})

	opts := Options{MaxZipEntries: 100, MaxZipUncompressed: 8 << 20, ZipBlockSize: 512}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := InspectZip(context.Background(), bytes.NewReader(data), int64(len(data)), opts)
		require.NoError(t, err)
		require.Contains(t, []Verdict{Valid, Corrupt, Rejected}, rep.Verdict)
		require.Equal(t, rep.Verdict == Valid, len(rep.Findings) == 0)
		require.LessOrEqual(t, rep.Archive.UncompressedBytes, opts.MaxZipUncompressed+256<<10)
	})
}

// FuzzInspectArchive: the same promises for every kind InspectArchive opens
// (tar, tar.gz, gzip, ZIP and archives nested in them), and the limits hold
// across the whole tree.
func FuzzInspectArchive(f *testing.F) {
	plainTar := archivetest.Tar(f,
		archivetest.TarEntry{Name: "dir/", Type: tar.TypeDir},
		archivetest.TarEntry{Name: "dir/a.txt", Body: []byte("hello hello hello")},
		archivetest.TarEntry{Name: "dir/link", Type: tar.TypeSymlink, Link: "a.txt"},
	)
	f.Add(plainTar)
	f.Add(plainTar[:len(plainTar)-600])
	f.Add(archivetest.Gzip(f, plainTar))
	f.Add(archivetest.Tar(f, archivetest.TarEntry{Name: "../x", Body: []byte("x")}))
	f.Add(archivetest.Tar(f, archivetest.TarEntry{Name: "/etc/passwd", Body: []byte("x")}))
	f.Add(archivetest.Tar(f, archivetest.TarEntry{Name: "l", Type: tar.TypeSymlink, Link: "../../etc"}))
	f.Add(archivetest.Tar(f, archivetest.TarEntry{Name: "dev", Type: tar.TypeChar}))
	f.Add(archivetest.Tar(f, archivetest.TarEntry{Name: "in.zip", Body: buildZip(f, zipEntry{name: "a", data: []byte("a")})}))
	f.Add(archivetest.Gzip(f, make([]byte, 3<<20)))
	f.Add(buildZip(f, zipEntry{name: "in.tar.gz", data: archivetest.Gzip(f, plainTar)}))
	f.Add(append(bytes.Clone(plainTar), "PK\x05\x06"...))
	f.Add([]byte("\x1f\x8b"))

	opts := Options{MaxZipEntries: 100, MaxZipUncompressed: 8 << 20, ZipBlockSize: 512, MaxNestedZipBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := InspectArchive(context.Background(), bytes.NewReader(data), int64(len(data)), opts)
		require.NoError(t, err)
		require.Contains(t, []Verdict{Valid, Corrupt, Rejected}, rep.Verdict)
		require.Equal(t, rep.Verdict == Valid, len(rep.Findings) == 0)
		if rep.Archive != nil {
			require.LessOrEqual(t, rep.Archive.UncompressedBytes, opts.MaxZipUncompressed+256<<10)
			require.LessOrEqual(t, rep.Archive.Entries, opts.MaxZipEntries+1)
		}
	})
}

// FuzzMeasure: Measure agrees with crypto/sha256 on any input, and a file
// checked against its own measurement is never corrupt, whatever type,
// ETag or declared MIME type come with it.
func FuzzMeasure(f *testing.F) {
	f.Add([]byte("hello\n"), "text/plain", `"5d41402abc4b2a76b9719d911017c592"`)
	f.Add(elfBytes(), "image/jpeg", "")
	f.Add(pngBytes(f), "image/png", "abc-2")
	f.Add([]byte{}, "", "")
	f.Add(buildZip(f, zipEntry{name: "a", data: []byte("a")}), "application/zip", `"d41d8cd98f00b204e9800998ecf8427e-12"`)
	f.Add(archivetest.Tar(f, archivetest.TarEntry{Name: "a", Body: []byte("a")}), "application/x-tar", "")
	f.Add(append(jpegBytes(f), buildZip(f, zipEntry{name: "a", data: []byte("a")})...), "image/jpeg", "")

	f.Fuzz(func(t *testing.T, data []byte, declaredMIME, etag string) {
		m, err := Measure(context.Background(), bytes.NewReader(data), Options{Checksums: MD5 | CRC32C | CRC64NVME, BufferSize: 64})
		require.NoError(t, err)
		require.Equal(t, sha256.Sum256(data), m.SHA256)
		require.Equal(t, int64(len(data)), m.Size)

		refs := References{
			FileType:       FileTypeDataset,
			DeclaredSHA256: m.SHA256Hex(),
			DeclaredSize:   &m.Size,
			DeclaredMIME:   declaredMIME,
			ObjectSize:     &m.Size,
			ETag:           etag, // never compared: a declared SHA-256 exists
			S3Checksums: []S3Checksum{
				{Algorithm: CRC32C, Value: m.Base64(CRC32C)},
				{Algorithm: CRC64NVME, Value: m.Base64(CRC64NVME)},
			},
		}
		rep := Check(m, refs, Options{})
		require.NotEqual(t, Corrupt, rep.Verdict, "%+v", rep.Findings)
		if m.IsZip() {
			_, err := InspectZip(context.Background(), bytes.NewReader(data), int64(len(data)), Options{})
			require.NoError(t, err)
		}
		if m.IsArchive() {
			_, err := InspectArchive(context.Background(), bytes.NewReader(data), int64(len(data)), Options{})
			require.NoError(t, err)
		}
	})
}
