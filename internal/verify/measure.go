package verify

import (
	"context"
	"crypto/md5" //nolint:gosec // MD5 is only compared with S3 ETags, never trusted alone.
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
	"sync"

	"github.com/gabriel-vasile/mimetype"
)

// Algorithm names a digest. Values are bit flags, so a set of algorithms is
// their bitwise OR: Options{Checksums: verify.MD5 | verify.CRC32C}.
// The names match S3's checksum algorithm names.
type Algorithm uint16

// Digests Measure can compute. SHA256 is always computed.
const (
	SHA256 Algorithm = 1 << iota
	SHA1
	SHA512
	MD5
	CRC32 // IEEE
	CRC32C
	CRC64NVME
)

var algorithmNames = []struct {
	a    Algorithm
	name string
}{
	{SHA256, "SHA256"}, {SHA1, "SHA1"}, {SHA512, "SHA512"}, {MD5, "MD5"},
	{CRC32, "CRC32"}, {CRC32C, "CRC32C"}, {CRC64NVME, "CRC64NVME"},
}

// String returns the S3 name of a single algorithm, or the names of a set
// joined with "|".
func (a Algorithm) String() string {
	var names []string
	for _, n := range algorithmNames {
		if a&n.a != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Has reports whether every algorithm in b is in a.
func (a Algorithm) Has(b Algorithm) bool { return a&b == b }

// ErrTooLarge is what Measure's error matches (errors.Is) when the stream is
// longer than Options.MaxSize. The error's own message names the limit and
// is fit for validation_error; the version is rejected, not retried.
var ErrTooLarge = errors.New("file exceeds the size limit")

type tooLargeError struct{ limit int64 }

func (e tooLargeError) Error() string {
	return "file is larger than the " + formatLimit(e.limit) + " limit; split it or ask an operator to raise the limit"
}

func (e tooLargeError) Is(target error) bool { return target == ErrTooLarge }

// SniffBytes is how much of the start of a file content sniffing looks at:
// mimetype's default read limit. Formats whose signature lies deeper
// (some Office files) sniff as their container, which Check accepts.
const SniffBytes = 4096

// Measurement is what one pass over a file's bytes found.
type Measurement struct {
	// Size is the number of bytes read.
	Size int64
	// ContentType is the sniffed media type, with parameters where the
	// sniffer adds them ("text/plain; charset=utf-8"). Unknown binary
	// content is "application/octet-stream".
	ContentType string
	// Computed is the set of digests below that hold a value. SHA256 is
	// always in it.
	Computed Algorithm

	SHA256    [sha256.Size]byte
	SHA1      [sha1.Size]byte
	SHA512    [sha512.Size]byte
	MD5       [md5.Size]byte
	CRC32     uint32
	CRC32C    uint32
	CRC64NVME uint64

	// Image is what the header of JPEG, PNG, GIF or WebP content says (pixel
	// size and EXIF orientation); nil for other content, and for an image
	// whose header could not be read (Check then rejects it, or notes why
	// nothing was recorded).
	Image *Image

	// image is the header reader's verdict on an image, for Check: a finding
	// when the header is damaged or cut off, notes otherwise.
	imageProblem *Finding
	imageNotes   []string

	// mime is the sniffer's node, kept so Check can walk the type hierarchy
	// without re-parsing ContentType. A Measurement rebuilt from stored
	// values lacks it; mimeNode falls back to a lookup.
	mime *mimetype.MIME
	// tail is the file's last TailBytes (all of it when shorter), where a
	// ZIP's end-of-central-directory record would be: Check looks for one
	// appended to a file of another type. A rebuilt Measurement lacks it.
	tail []byte
}

// TailBytes is how much of the end of a file Measure keeps: a ZIP's
// end-of-central-directory record (22 bytes) followed by the longest
// comment it can carry (65,535 bytes).
const TailBytes = 22 + 65_535

// SHA256Hex is the SHA-256 in lower-case hex, as stored in
// file_versions.checksum.
func (m Measurement) SHA256Hex() string { return hex.EncodeToString(m.SHA256[:]) }

// Sum returns the digest for a single algorithm as the big-endian bytes S3
// base64-encodes, and whether it was computed.
func (m Measurement) Sum(a Algorithm) ([]byte, bool) {
	if !m.Computed.Has(a) {
		return nil, false
	}
	switch a {
	case SHA256:
		return m.SHA256[:], true
	case SHA1:
		return m.SHA1[:], true
	case SHA512:
		return m.SHA512[:], true
	case MD5:
		return m.MD5[:], true
	case CRC32:
		return binary.BigEndian.AppendUint32(nil, m.CRC32), true
	case CRC32C:
		return binary.BigEndian.AppendUint32(nil, m.CRC32C), true
	case CRC64NVME:
		return binary.BigEndian.AppendUint64(nil, m.CRC64NVME), true
	}
	return nil, false
}

// Base64 returns the digest in the form S3 and MinIO report additional
// checksums: standard base64 of the big-endian bytes. It returns "" when the
// digest was not computed.
func (m Measurement) Base64(a Algorithm) string {
	b, ok := m.Sum(a)
	if !ok {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// IsZip reports whether the content sniffed as a ZIP archive or a format built
// on one (docx, xlsx, epub, …): the files InspectZip should look inside.
func (m Measurement) IsZip() bool {
	for n := m.mimeNode(); n != nil; n = n.Parent() {
		if n.Is("application/zip") {
			return true
		}
	}
	return false
}

// IsArchive reports whether the content is a kind InspectArchive opens: a
// ZIP (or a format built on one), a tar archive or a gzip stream (.gz,
// .tar.gz).
func (m Measurement) IsArchive() bool {
	n := m.mimeNode()
	return n != nil && archiveKindOf(fromNode(n)) != ""
}

func (m Measurement) mimeNode() *mimetype.MIME {
	if m.mime != nil {
		return m.mime
	}
	if m.ContentType == "" {
		return nil
	}
	return mimetype.Lookup(m.ContentType)
}

// keepTail appends chunk to tail, keeping only the last TailBytes. With
// Measure's 4 MiB reads that is one 64 KiB copy per read.
func keepTail(tail, chunk []byte) []byte {
	if len(chunk) >= TailBytes {
		return append(tail[:0], chunk[len(chunk)-TailBytes:]...)
	}
	if over := len(tail) + len(chunk) - TailBytes; over > 0 {
		tail = tail[:copy(tail, tail[over:])]
	}
	return append(tail, chunk...)
}

// castagnoliTable is computed once: it is a constant in all but syntax.
var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// bufferPools hold DefaultBufferSize and SmallBufferSize buffers. They are a
// cache, not state: a worker validating files back to back would otherwise
// allocate (and the GC would scan) a fresh buffer per file.
var bufferPools = map[int]*sync.Pool{
	DefaultBufferSize: {New: func() any { b := make([]byte, DefaultBufferSize); return &b }},
	SmallBufferSize:   {New: func() any { b := make([]byte, SmallBufferSize); return &b }},
}

// Measure reads r to the end once, in constant memory, and returns the
// SHA-256, size and sniffed content type of its bytes, plus the digests
// selected by opts.Checksums. The content type is sniffed from the first
// SniffBytes of the first buffer; the rest only streams through the hashes.
// For JPEG, PNG, GIF and WebP content the image's header (pixel size, EXIF
// orientation) is read from the same buffers, usually the first alone, with
// at most ImageHeadBytes copied (see Image); other content pays nothing for it.
//
// The loop is a plain fused loop over one large buffer rather than an
// io.MultiWriter: only the requested digests run, with no interface fan-out
// per write, so with no extras Measure runs at the speed of SHA-256 itself.
//
// ctx is checked between buffers. Errors are the reader's (wrapped with how
// far it got), ctx.Err(), or ErrTooLarge; for any of them the Measurement is
// zero, because a partial digest must never be compared with anything.
func Measure(ctx context.Context, r io.Reader, opts Options) (Measurement, error) {
	opts = opts.withDefaults()
	want := opts.Checksums | SHA256

	var buf []byte
	if pool, ok := bufferPools[opts.BufferSize]; ok {
		p := pool.Get().(*[]byte)
		defer pool.Put(p)
		buf = *p
	} else {
		buf = make([]byte, opts.BufferSize)
	}

	shaH := sha256.New()
	var sha1H, sha512H, md5H hash.Hash
	if want.Has(SHA1) {
		sha1H = sha1.New()
	}
	if want.Has(SHA512) {
		sha512H = sha512.New()
	}
	if want.Has(MD5) {
		md5H = md5.New() //nolint:gosec // see import
	}
	var crcIEEE, crcC uint32
	var crcNVMe uint64

	var m Measurement
	var n int64
	sniffed := false
	var img *imageProbe // reads an image's header as the stream passes; nil for anything else
	defer func() {
		if img != nil {
			img.release() // a pass that failed midway leaves no buffer out of its pool
		}
	}()
	tail := make([]byte, 0, TailBytes)
	for {
		if err := ctx.Err(); err != nil {
			return Measurement{}, fmt.Errorf("measure: stopped after %d bytes: %w", n, err)
		}
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			if opts.MaxSize > 0 && n+int64(k) > opts.MaxSize {
				return Measurement{}, tooLargeError{opts.MaxSize}
			}
			chunk := buf[:k]
			if !sniffed {
				m.mime = mimetype.Detect(chunk[:min(k, SniffBytes)])
				sniffed = true
				img = newImageProbe(m.mime)
			}
			if img != nil {
				img.feed(chunk)
			}
			shaH.Write(chunk)
			if sha1H != nil {
				sha1H.Write(chunk)
			}
			if sha512H != nil {
				sha512H.Write(chunk)
			}
			if md5H != nil {
				md5H.Write(chunk)
			}
			if want.Has(CRC32) {
				crcIEEE = crc32.Update(crcIEEE, crc32.IEEETable, chunk)
			}
			if want.Has(CRC32C) {
				crcC = crc32.Update(crcC, castagnoliTable, chunk)
			}
			if want.Has(CRC64NVME) {
				crcNVMe = crc64NVMEUpdate(crcNVMe, chunk)
			}
			tail = keepTail(tail, chunk)
			n += int64(k)
			if opts.Progress != nil {
				opts.Progress(n)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return Measurement{}, fmt.Errorf("measure: read failed after %d bytes: %w", n, err)
		}
	}
	if !sniffed {
		m.mime = mimetype.Detect(nil)
	}
	if img != nil {
		img.finish()
		m.Image, m.imageProblem, m.imageNotes = img.img, img.problem, img.notes
	}

	m.Size = n
	m.tail = tail
	m.ContentType = m.mime.String()
	m.Computed = want
	shaH.Sum(m.SHA256[:0])
	if sha1H != nil {
		sha1H.Sum(m.SHA1[:0])
	}
	if sha512H != nil {
		sha512H.Sum(m.SHA512[:0])
	}
	if md5H != nil {
		md5H.Sum(m.MD5[:0])
	}
	m.CRC32, m.CRC32C, m.CRC64NVME = crcIEEE, crcC, crcNVMe
	return m, nil
}
