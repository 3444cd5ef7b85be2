package zipstream_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/labelq/labelq/internal/zipstream"
)

// version stands in for a file-version row read by the export worker.
type version struct {
	FileID, VersionID int64
	VersionNumber     int32
	FileName, MIME    string
	SHA256            string
	Size              int64
	body              string // in production: the object key in MinIO
}

func newVersion(fileID, versionID int64, name, mime, body string) version {
	sum := sha256.Sum256([]byte(body))
	return version{FileID: fileID, VersionID: versionID, VersionNumber: 1, FileName: name, MIME: mime,
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body)), body: body}
}

// Example shows the export worker's use: manifest first (from recorded
// checksums), the files, index.csv last, all in one Pack.
func Example() {
	versions := []version{
		newVersion(1, 10, "scan.txt", "text/plain", "hello\n"),
		newVersion(2, 11, "../../etc/passwd", "text/plain", "not really\n"),
		newVersion(3, 12, "Scan.TXT", "text/plain", "same name, other case\n"),
	}
	createdAt := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	namer := zipstream.NewNamer()
	namer.Name("", zipstream.ManifestPath) // reserve the fixed names first
	namer.Name("", zipstream.IndexPath)
	manifest := zipstream.Manifest{ExportID: 7, ProjectID: 3, ProjectName: "demo", CreatedAt: createdAt, LabelqVersion: "dev"}
	var index []zipstream.IndexRow
	files := make([]zipstream.Entry, 0, len(versions))
	for _, v := range versions {
		path := namer.Name("files/", v.FileName)
		files = append(files, zipstream.Entry{
			Path: path, Size: v.Size, SHA256: v.SHA256, MIMEType: v.MIME, VersionID: v.VersionID,
			Open: func(ctx context.Context) (io.ReadCloser, error) {
				// In production: store.GetObject(ctx, bucket, v.Key, ...)
				return io.NopCloser(strings.NewReader(v.body)), nil
			},
		})
		manifest.Entries = append(manifest.Entries, zipstream.ManifestEntry{Path: path, FileID: v.FileID,
			VersionID: v.VersionID, VersionNumber: v.VersionNumber, SHA256: v.SHA256, Size: v.Size, MIMEType: v.MIME})
		index = append(index, zipstream.IndexRow{Path: path, FileID: v.FileID, FileName: v.FileName,
			VersionID: v.VersionID, VersionNumber: v.VersionNumber, SHA256: v.SHA256, Size: v.Size, MIMEType: v.MIME})
	}
	mb, err := manifest.Marshal()
	if err != nil {
		panic(err)
	}
	ib, err := zipstream.IndexCSV(index)
	if err != nil {
		panic(err)
	}
	entries := append([]zipstream.Entry{zipstream.BytesEntry(zipstream.ManifestPath, zipstream.ManifestMIME, mb)}, files...)
	entries = append(entries, zipstream.BytesEntry(zipstream.IndexPath, zipstream.IndexMIME, ib))

	var upload bytes.Buffer // in production: the pipe into the multipart upload
	hw := zipstream.NewHashingWriter(&upload)
	res, err := zipstream.Pack(context.Background(), hw, entries, zipstream.Options{
		Modified: createdAt,
		Progress: func(p zipstream.Progress) { /* throttle, then ExportLogSetProgress */ },
	})
	var mismatch *zipstream.ChecksumMismatchError
	if errors.As(err, &mismatch) {
		// abort the upload; fail the export naming mismatch.Path / VersionID
		panic(err)
	} else if err != nil {
		panic(err)
	}
	fmt.Println("files:", res.Files, "archive size matches:", hw.Size() == int64(upload.Len()))
	zr, _ := zip.NewReader(bytes.NewReader(upload.Bytes()), int64(upload.Len()))
	for _, f := range zr.File {
		fmt.Println(f.Name)
	}
	// Output:
	// files: 5 archive size matches: true
	// manifest.json
	// files/scan.txt
	// files/etc/passwd
	// files/Scan (2).TXT
	// index.csv
}
