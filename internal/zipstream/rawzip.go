package zipstream

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/flate"
)

// rawWriter writes the ZIP container the way archive/zip's Writer.CreateRaw
// and Close do, byte for byte, with one difference: archive/zip keeps every
// entry's *FileHeader until Close (a few hundred bytes an entry, the one
// cost of an export that grew with its entries), where rawWriter encodes each
// entry's central directory record as soon as the entry ends and keeps the
// records deflated in pooled chunks. They are small and alike (same times,
// versions and attributes; names that share prefixes), so an entry costs
// about a fifth of its record, and Close inflates them into the archive.
//
// As with archive/zip, the caller may set the header's CRC and sizes after
// createRaw returns, until the next createRaw or close: that is when the
// data descriptor and the record are written.
type rawWriter struct {
	cw     *countWriter
	bw     *bufio.Writer
	last   *rawEntry // the entry whose data is being written
	dir    spillBuf  // deflated central directory records
	dirFW  *flate.Writer
	dirLen int64 // inflated size of the records
	count  uint64
	closed bool
	rec    []byte // scratch for one record
}

type rawEntry struct {
	fh     *zip.FileHeader
	offset uint64
}

// ZIP format constants (APPNOTE.TXT), as archive/zip names them.
const (
	rawFileHeaderSignature      = 0x04034b50
	rawDirectoryHeaderSignature = 0x02014b50
	rawDirectoryEndSignature    = 0x06054b50
	rawDirectory64LocSignature  = 0x07064b50
	rawDirectory64EndSignature  = 0x06064b50
	rawDataDescriptorSignature  = 0x08074b50
	rawFileHeaderLen            = 30
	rawDirectoryHeaderLen       = 46
	rawDirectoryEndLen          = 22
	rawDataDescriptorLen        = 16
	rawDataDescriptor64Len      = 24
	rawDirectory64LocLen        = 20
	rawDirectory64EndLen        = 56
	rawZipVersion45             = 45
	rawZip64ExtraID             = 0x0001
	uint16max                   = 1<<16 - 1
	uint32max                   = 1<<32 - 1
)

// The central directory is deflated at the fastest level: its records are
// repetitive enough that a higher level saves little.
const dirLevel = flate.BestSpeed

func newRawWriter(w io.Writer, pool *chunkPool, sp Spiller, spillAfter int64) *rawWriter {
	bw := bufio.NewWriter(w)
	return &rawWriter{cw: &countWriter{w: bw}, bw: bw, dir: newSpillBuf(pool, sp, spillAfter, "central-directory")}
}

func isZip64(fh *zip.FileHeader) bool {
	return fh.CompressedSize64 >= uint32max || fh.UncompressedSize64 >= uint32max
}

func hasDataDescriptor(fh *zip.FileHeader) bool { return fh.Flags&0x8 != 0 }

// createRaw writes the local header of an entry whose data (already
// compressed as fh.Method says) the caller writes to the returned writer.
func (w *rawWriter) createRaw(fh *zip.FileHeader) (io.Writer, error) {
	if w.closed {
		return nil, errors.New("zip: write after close")
	}
	if err := w.finishLast(); err != nil {
		return nil, err
	}
	if len(fh.Name) > uint16max {
		return nil, errors.New("zip: FileHeader.Name too long")
	}
	if len(fh.Extra) > uint16max {
		return nil, errors.New("zip: FileHeader.Extra too long")
	}
	//nolint:staticcheck // SA1019: the 32-bit fields are the format's.
	fh.CompressedSize = uint32(min(fh.CompressedSize64, uint32max))
	//nolint:staticcheck // SA1019: as above.
	fh.UncompressedSize = uint32(min(fh.UncompressedSize64, uint32max))
	e := &rawEntry{fh: fh, offset: uint64(w.cw.n)}

	var buf [rawFileHeaderLen]byte
	b := buf[:0]
	b = binary.LittleEndian.AppendUint32(b, rawFileHeaderSignature)
	b = binary.LittleEndian.AppendUint16(b, fh.ReaderVersion)
	b = binary.LittleEndian.AppendUint16(b, fh.Flags)
	b = binary.LittleEndian.AppendUint16(b, fh.Method)
	b = binary.LittleEndian.AppendUint16(b, fh.ModifiedTime) //nolint:staticcheck // SA1019: the format's field.
	b = binary.LittleEndian.AppendUint16(b, fh.ModifiedDate) //nolint:staticcheck // SA1019: as above.
	if hasDataDescriptor(fh) {
		b = append(b, make([]byte, 12)...) // CRC and sizes follow the data
	} else {
		b = binary.LittleEndian.AppendUint32(b, fh.CRC32)
		b = binary.LittleEndian.AppendUint32(b, uint32(min(fh.CompressedSize64, uint32max)))
		b = binary.LittleEndian.AppendUint32(b, uint32(min(fh.UncompressedSize64, uint32max)))
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(fh.Name)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(fh.Extra)))
	if _, err := w.cw.Write(b); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w.cw, fh.Name); err != nil {
		return nil, err
	}
	if _, err := w.cw.Write(fh.Extra); err != nil {
		return nil, err
	}
	w.last = e
	if strings.HasSuffix(fh.Name, "/") {
		return dirWriter{}, nil
	}
	return w.cw, nil
}

// finishLast writes the open entry's data descriptor and adds its central
// directory record; the header is not kept.
func (w *rawWriter) finishLast() error {
	e := w.last
	if e == nil {
		return nil
	}
	w.last = nil
	fh := e.fh
	if hasDataDescriptor(fh) && !strings.HasSuffix(fh.Name, "/") {
		var buf [rawDataDescriptor64Len]byte
		b := binary.LittleEndian.AppendUint32(buf[:0], rawDataDescriptorSignature)
		b = binary.LittleEndian.AppendUint32(b, fh.CRC32)
		if isZip64(fh) {
			b = binary.LittleEndian.AppendUint64(b, fh.CompressedSize64)
			b = binary.LittleEndian.AppendUint64(b, fh.UncompressedSize64)
		} else {
			b = binary.LittleEndian.AppendUint32(b, fh.CompressedSize)   //nolint:staticcheck // SA1019: the format's field.
			b = binary.LittleEndian.AppendUint32(b, fh.UncompressedSize) //nolint:staticcheck // SA1019: as above.
		}
		if _, err := w.cw.Write(b); err != nil {
			return err
		}
	}
	return w.addRecord(e)
}

// addRecord encodes e's central directory record as archive/zip's Close
// would and appends it to the deflated directory.
func (w *rawWriter) addRecord(e *rawEntry) error {
	fh := e.fh
	extra := fh.Extra
	zip64 := isZip64(fh) || e.offset >= uint32max
	if zip64 {
		var eb [28]byte
		x := binary.LittleEndian.AppendUint16(eb[:0], rawZip64ExtraID)
		x = binary.LittleEndian.AppendUint16(x, 24)
		x = binary.LittleEndian.AppendUint64(x, fh.UncompressedSize64)
		x = binary.LittleEndian.AppendUint64(x, fh.CompressedSize64)
		x = binary.LittleEndian.AppendUint64(x, e.offset)
		extra = append(append([]byte(nil), extra...), x...)
	}
	if len(extra) > uint16max {
		return errors.New("zip: FileHeader.Extra too long")
	}
	b := w.rec[:0]
	b = binary.LittleEndian.AppendUint32(b, rawDirectoryHeaderSignature)
	b = binary.LittleEndian.AppendUint16(b, fh.CreatorVersion)
	b = binary.LittleEndian.AppendUint16(b, fh.ReaderVersion)
	b = binary.LittleEndian.AppendUint16(b, fh.Flags)
	b = binary.LittleEndian.AppendUint16(b, fh.Method)
	b = binary.LittleEndian.AppendUint16(b, fh.ModifiedTime) //nolint:staticcheck // SA1019: the format's field.
	b = binary.LittleEndian.AppendUint16(b, fh.ModifiedDate) //nolint:staticcheck // SA1019: as above.
	b = binary.LittleEndian.AppendUint32(b, fh.CRC32)
	if zip64 {
		b = binary.LittleEndian.AppendUint32(b, uint32max)
		b = binary.LittleEndian.AppendUint32(b, uint32max)
	} else {
		b = binary.LittleEndian.AppendUint32(b, fh.CompressedSize)   //nolint:staticcheck // SA1019: the format's field.
		b = binary.LittleEndian.AppendUint32(b, fh.UncompressedSize) //nolint:staticcheck // SA1019: as above.
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(fh.Name)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(extra)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(fh.Comment)))
	b = append(b, 0, 0, 0, 0) // disk number start, internal attributes
	b = binary.LittleEndian.AppendUint32(b, fh.ExternalAttrs)
	b = binary.LittleEndian.AppendUint32(b, uint32(min(e.offset, uint32max)))
	b = append(b, fh.Name...)
	b = append(b, extra...)
	b = append(b, fh.Comment...)
	w.rec = b
	if w.dirFW == nil {
		// The level is a constant in range.
		w.dirFW, _ = flate.NewWriter(&w.dir, dirLevel)
	}
	if _, err := w.dirFW.Write(b); err != nil {
		return fmt.Errorf("zip: central directory: %w", err)
	}
	w.dirLen += int64(len(b))
	w.count++
	return nil
}

// close writes the central directory and the end records, and flushes.
func (w *rawWriter) close() error {
	if w.closed {
		return errors.New("zip: writer closed twice")
	}
	if err := w.finishLast(); err != nil {
		return err
	}
	w.closed = true
	defer w.dir.release()
	start := w.cw.n
	if w.dirFW != nil {
		if err := w.dirFW.Close(); err != nil {
			return fmt.Errorf("zip: central directory: %w", err)
		}
		dr := w.dir.reader()
		defer func() { _ = dr.Close() }()
		n, err := io.Copy(w.cw, flate.NewReader(dr))
		if err == nil && n != w.dirLen {
			err = fmt.Errorf("central directory inflated to %d bytes, %d written", n, w.dirLen)
		}
		if err != nil {
			return fmt.Errorf("zip: central directory: %w", err)
		}
	}
	end := w.cw.n
	records, size, offset := w.count, uint64(end-start), uint64(start)
	var buf [rawDirectory64EndLen + rawDirectory64LocLen + rawDirectoryEndLen]byte
	b := buf[:0]
	if records >= uint16max || size >= uint32max || offset >= uint32max {
		b = binary.LittleEndian.AppendUint32(b, rawDirectory64EndSignature)
		b = binary.LittleEndian.AppendUint64(b, rawDirectory64EndLen-12)
		b = binary.LittleEndian.AppendUint16(b, rawZipVersion45)
		b = binary.LittleEndian.AppendUint16(b, rawZipVersion45)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, records)
		b = binary.LittleEndian.AppendUint64(b, records)
		b = binary.LittleEndian.AppendUint64(b, size)
		b = binary.LittleEndian.AppendUint64(b, offset)

		b = binary.LittleEndian.AppendUint32(b, rawDirectory64LocSignature)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, uint64(end))
		b = binary.LittleEndian.AppendUint32(b, 1)
		records, size, offset = uint16max, uint32max, uint32max
	}
	b = binary.LittleEndian.AppendUint32(b, rawDirectoryEndSignature)
	b = append(b, 0, 0, 0, 0) // disk numbers
	b = binary.LittleEndian.AppendUint16(b, uint16(records))
	b = binary.LittleEndian.AppendUint16(b, uint16(records))
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	b = binary.LittleEndian.AppendUint32(b, uint32(offset))
	b = binary.LittleEndian.AppendUint16(b, 0) // comment length
	if _, err := w.cw.Write(b); err != nil {
		return err
	}
	return w.bw.Flush()
}

// dirWriter is the writer of a directory entry, which has no data.
type dirWriter struct{}

func (dirWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return 0, errors.New("zip: write to directory")
}

// reader reads the buffer's bytes from the start.
func (b *chunkBuf) reader() io.Reader {
	rs := make([]io.Reader, 0, len(b.chunks))
	left := b.n
	for _, c := range b.chunks {
		k := min(left, chunkSize)
		rs = append(rs, bytes.NewReader(c[:k]))
		left -= k
	}
	return io.MultiReader(rs...)
}
