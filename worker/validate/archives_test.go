package validate_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"image"
	"image/jpeg"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/verify"
	"github.com/labelq/labelq/internal/verify/archivetest"
)

// Archives other than a flat ZIP are inspected through the real validate path
// (MinIO, Postgres): tar and tar.gz entries, gzip expansion, nested archives,
// and files with a ZIP appended (issue 13, item 9).
func TestValidateArchives(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)

	okTarGz := archivetest.Gzip(t, archivetest.Tar(t,
		archivetest.TarEntry{Name: "images/", Type: tar.TypeDir},
		archivetest.TarEntry{Name: "images/labels.csv", Body: csvBytes(50)},
		archivetest.TarEntry{Name: "images/more.zip", Body: zipBytes(t, zipEntry{name: "a.csv", body: csvBytes(5), method: zip.Deflate})},
	))
	innermost := zipBytes(t, zipEntry{name: "deep.csv", body: csvBytes(5), method: zip.Deflate})
	level3 := zipBytes(t, zipEntry{name: "l3.zip", body: innermost, method: zip.Store})
	level2 := zipBytes(t, zipEntry{name: "l2.zip", body: level3, method: zip.Store})
	tooDeep := zipBytes(t, zipEntry{name: "l1.zip", body: level2, method: zip.Store}) // four levels

	tests := []struct {
		name   string
		data   []byte
		mime   string
		status db.ValidationStatus
		errHas []string
	}{
		{"valid tar.gz", okTarGz, "application/gzip", db.ValidationStatusValid, nil},
		{"tar with ../", archivetest.Tar(t,
			archivetest.TarEntry{Name: "ok.csv", Body: csvBytes(5)},
			archivetest.TarEntry{Name: "../../etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/bash\n")}),
			"application/x-tar", db.ValidationStatusRejected,
			[]string{`entry 2 "../../etc/passwd" (".." component)`, "outside the folder"}},
		{"tar.gz with a symlink out of the archive", archivetest.Gzip(t, archivetest.Tar(t,
			archivetest.TarEntry{Name: "ok.csv", Body: csvBytes(5)},
			archivetest.TarEntry{Name: "passwd", Type: tar.TypeSymlink, Link: "/etc/passwd"})),
			"application/gzip", db.ValidationStatusRejected, []string{`"passwd" (symbolic link to "/etc/passwd"`}},
		{"gzip bomb", archivetest.GzipZeros(t, 10<<30), "application/gzip", db.ValidationStatusRejected,
			[]string{"expands more than 100 times", "compression bomb"}},
		{"nested zip bomb", zipBytes(t, zipEntry{name: "inner.zip", body: zipBytes(t,
			zipEntry{name: "zeros.csv", body: make([]byte, 8<<20), method: zip.Deflate}), method: zip.Store}),
			"application/zip", db.ValidationStatusRejected, []string{`"zeros.csv" in "inner.zip" expands more than 100 times`}},
		{"archives nested deeper than the limit", tooDeep, "application/zip", db.ValidationStatusRejected,
			[]string{"nested archive depth 4 exceeds the limit of 3"}},
		{"JPEG with a ZIP appended", append(jpegBytes(t), innermost...), "image/jpeg", db.ValidationStatusRejected,
			[]string{"image/jpeg with a ZIP archive appended"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCase(t, hs, validateCase{})
			v := c.upload(t, c.file, tt.data, declared(tt.data, tt.mime), minio.PutObjectOptions{})
			err := hs.process(t, v.ID)
			row := hs.version(t, v.ID)
			require.Equal(t, tt.status, row.ValidationStatus, "error %v, validation_error %v", err, row.ValidationError)
			if tt.status == db.ValidationStatusValid {
				require.NoError(t, err)
				return
			}
			requireResult(t, archived, err)
			require.NotNil(t, row.ValidationError)
			for _, s := range tt.errHas {
				require.Contains(t, *row.ValidationError, s)
			}
		})
	}
}

// The depth limit is the operator's (LABELQ_ARCHIVE_MAX_DEPTH, wired into
// Options.Verify): with 1, any archive inside an archive is rejected.
func TestValidateArchiveDepthOption(t *testing.T) {
	t.Parallel()
	opts := testOptions
	opts.Verify = verify.Options{MaxArchiveDepth: 1}
	hs := newFixture(t, opts)
	data := zipBytes(t, zipEntry{name: "inner.zip", body: zipBytes(t, zipEntry{name: "a.csv", body: csvBytes(5), method: zip.Deflate}), method: zip.Store})
	c := newCase(t, hs, validateCase{})
	v := c.upload(t, c.file, data, declared(data, "application/zip"), minio.PutObjectOptions{})
	requireResult(t, archived, hs.process(t, v.ID))
	row := hs.version(t, v.ID)
	require.Equal(t, db.ValidationStatusRejected, row.ValidationStatus)
	require.Contains(t, *row.ValidationError, `nested archive depth 2 exceeds the limit of 1: entry "inner.zip"`)
}

func jpegBytes(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 16, 16)), nil))
	return b.Bytes()
}
