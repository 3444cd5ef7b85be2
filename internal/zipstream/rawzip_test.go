package zipstream

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// rawCase is one entry written the same way through both writers.
type rawCase struct {
	name     string
	method   uint16
	data     []byte
	dd       bool   // sizes in a data descriptor, set after the data
	fakeSize uint64 // declared sizes (ZIP64 when ≥ 4 GiB) instead of len(data)
}

// writeRaw writes cases through create (archive/zip's CreateRaw or
// rawWriter's) the way zipstream drives them: the header's CRC and sizes
// are set up front, or after the data when a descriptor follows.
func writeRaw(t *testing.T, w *Writer, cases []rawCase, create func(*zip.FileHeader) (io.Writer, error), closeFn func() error) {
	t.Helper()
	for _, c := range cases {
		fh := w.header(c.name, c.method)
		size := uint64(len(c.data))
		if c.fakeSize > 0 {
			size = c.fakeSize
		}
		if c.dd {
			fh.Flags |= 0x8
		} else {
			fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = 0xdeadbeef, size, size
		}
		zf, err := create(fh)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := zf.Write(c.data); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.dd {
			fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = 0x01020304, size, size+7
			setLegacySizes(fh)
		}
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
}

// TestRawWriterMatchesArchiveZip checks that rawWriter writes the very bytes
// archive/zip's Writer writes for the same CreateRaw calls: plain and
// descriptor entries, stored and deflated, directories, UTF-8 names, ZIP64
// entries, and more than 65,535 entries (the ZIP64 end records).
func TestRawWriterMatchesArchiveZip(t *testing.T) {
	small := []rawCase{
		{name: "manifest.json", method: zip.Deflate, data: []byte("{}\n")},
		{name: "files/", method: zip.Store},
		{name: "files/a.txt", method: zip.Store, data: []byte("hello")},
		{name: "files/b.txt", method: zip.Deflate, data: bytes.Repeat([]byte("x"), 1000), dd: true},
		{name: "files/naïve café.txt", method: zip.Store, data: []byte("é"), dd: true},
		{name: "files/empty", method: zip.Store},
		{name: "files/big.bin", method: zip.Store, data: []byte("not really 5 GiB"), dd: true, fakeSize: 5 << 30},
		{name: "files/big2.bin", method: zip.Store, data: []byte("declared 4 GiB"), fakeSize: 4 << 30},
		{name: "files/after-big.txt", method: zip.Deflate, data: []byte("tail"), dd: true},
	}
	many := make([]rawCase, 0, 70_000)
	for i := range 70_000 {
		many = append(many, rawCase{name: fmt.Sprintf("labels/img_%06d.txt", i), method: zip.Deflate, data: []byte{byte(i)}, dd: i%2 == 0})
	}
	for _, tc := range []struct {
		name  string
		cases []rawCase
	}{{"small", small}, {"70000 entries", many}, {"none", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter(io.Discard, Options{})
			var want, got bytes.Buffer
			zw := zip.NewWriter(&want)
			writeRaw(t, w, tc.cases, zw.CreateRaw, zw.Close)
			rw := newRawWriter(&got, &w.chunks, nil, 0)
			writeRaw(t, w, tc.cases, rw.createRaw, rw.close)
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				i := 0
				for i < min(got.Len(), want.Len()) && got.Bytes()[i] == want.Bytes()[i] {
					i++
				}
				t.Fatalf("rawWriter wrote %d bytes, archive/zip %d; first difference at byte %d", got.Len(), want.Len(), i)
			}
			if _, err := rw.createRaw(w.header("late", zip.Store)); err == nil {
				t.Error("createRaw after close succeeded")
			}
			if err := rw.close(); err == nil {
				t.Error("second close succeeded")
			}
		})
	}
}

// TestRawWriterLimits checks the errors archive/zip gives for fields the
// format cannot hold.
func TestRawWriterLimits(t *testing.T) {
	w := NewWriter(io.Discard, Options{})
	rw := newRawWriter(io.Discard, &w.chunks, nil, 0)
	if _, err := rw.createRaw(&zip.FileHeader{Name: string(make([]byte, 1<<16))}); err == nil {
		t.Error("a 64 KiB name was accepted")
	}
	if _, err := rw.createRaw(&zip.FileHeader{Name: "x", Extra: make([]byte, 1<<16)}); err == nil {
		t.Error("a 64 KiB extra field was accepted")
	}
	zf, err := rw.createRaw(&zip.FileHeader{Name: "d/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zf.Write([]byte("x")); err == nil {
		t.Error("data written to a directory entry")
	}
}

// TestArchiveMemoryPerEntry measures what a Writer keeps per created entry
// (central directory, name check) and per manifest line (the spool), with
// the manifest written as an export writes it: the heap after 100,000
// entries, less the heap after 10,000, over the 90,000 entries between.
// archive/zip's Writer kept about 310 bytes an entry here; the bound leaves
// room for allocator rounding, not for a header per entry.
func TestArchiveMemoryPerEntry(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // what the first cycle's finalizers and pools let go
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	w := NewWriter(io.Discard, Options{DiscardResults: true})
	sp, err := w.NewSpool(ManifestPath, ManifestMIME)
	if err != nil {
		t.Fatal(err)
	}
	mw, err := NewManifestWriter(sp, Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0 0.512 0.433 0.120 0.080\n"), 10)
	var at10k uint64
	for i := range 100_000 {
		if i == 10_000 {
			at10k = heap()
		}
		p := fmt.Sprintf("labels/task_%07d.txt", i)
		cw, err := w.Create(p, "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.FinishEntry(); err != nil {
			t.Fatal(err)
		}
		// A SHA-256 as random as a real one: hex of a hash of i.
		sum := fmt.Sprintf("%x", sha256.Sum256(binary.LittleEndian.AppendUint64(nil, uint64(i))))
		if err := mw.Add(ManifestEntry{Path: p, SHA256: sum, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(int64(heap())-int64(at10k)) / 90_000
	t.Logf("%.1f bytes per entry (central directory %d bytes deflated, manifest spool %d)", per, w.zw.dir.size(), sp.buf.size())
	if per > 150 {
		t.Errorf("%.1f bytes kept per entry, want at most 150", per)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddSpool(sp); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
