// Package archivetest builds the tar and gzip archives the tests of
// internal/verify and worker/validate feed the archive inspection: entries of
// any kind (including the unsafe ones the inspection must refuse) and gzip
// bombs built in a fraction of a second.
package archivetest

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TarEntry is one entry of Tar.
type TarEntry struct {
	Name string
	Body []byte
	Type byte // tar.TypeReg when zero
	Link string
}

// Tar is a tar archive of entries, in order, as written (no checks: a test may
// ask for "../x", links and devices).
func Tar(t testing.TB, entries ...TarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.Name, Typeflag: typ, Linkname: e.Link, Mode: 0o644, ModTime: time.Unix(1e9, 0)}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		require.NoError(t, tw.WriteHeader(h))
		if typ == tar.TypeReg {
			_, err := tw.Write(e.Body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return b.Bytes()
}

// Gzip is data compressed as one gzip stream.
func Gzip(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// GzipZeros is a gzip stream of size zero bytes (a multiple of 8 MiB), built
// in a fraction of a second: one 8 MiB member compressed once, then repeated
// (concatenated members are one valid gzip stream, and compress/gzip reads
// them as one). 10 GiB come to about 10 MB.
func GzipZeros(t testing.TB, size int64) []byte {
	t.Helper()
	const member = 8 << 20
	var m bytes.Buffer
	zw, err := gzip.NewWriterLevel(&m, flate.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(make([]byte, member))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return bytes.Repeat(m.Bytes(), int(size/member))
}
