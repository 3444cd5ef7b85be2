package zipstream

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math"
	"mime"
	"strings"
)

// Opener opens one entry's bytes. It is called at most once per entry, from
// a worker goroutine, with a context that is cancelled when the pack stops;
// readers should honour it (minio-go's GetObject does) so that cancellation
// does not wait for a slow read. The returned reader is always closed.
type Opener func(ctx context.Context) (io.ReadCloser, error)

// Compression says how an entry is stored.
type Compression uint8

const (
	// CompressAuto stores already-compressed content types, deflates text and
	// other known-compressible types, and decides the rest (including
	// application/octet-stream and an empty MIME type) from the first 64 KiB.
	CompressAuto Compression = iota
	// CompressStore writes the bytes as they are (method 0).
	CompressStore
	// CompressDeflate deflates the bytes (method 8).
	CompressDeflate
)

// Entry is one file to pack.
type Entry struct {
	// Path is the name inside the archive. It must satisfy [ValidPath] and be
	// unique (case-insensitively) in the archive; use a [Namer] to get one.
	Path string
	// Size is the declared length in bytes; the pack fails if the object's
	// length differs.
	Size int64
	// SHA256 is the recorded checksum in hex. Empty means "not checked"; the
	// computed sum is still returned in [EntryResult].
	SHA256 string
	// MIMEType drives [CompressAuto].
	MIMEType string
	// Compress overrides the automatic choice.
	Compress Compression
	// VersionID identifies the file version in errors and results; zero for
	// entries that are not file versions (manifest, index).
	VersionID int64
	// Open returns the entry's bytes.
	Open Opener
}

// BytesEntry returns an entry whose content is data, with its SHA-256
// recorded so that it is checked like any other entry. It is meant for the
// generated manifest.json and index.csv.
func BytesEntry(path, mimeType string, data []byte) Entry {
	sum := sha256.Sum256(data)
	return Entry{
		Path:     path,
		Size:     int64(len(data)),
		SHA256:   hex.EncodeToString(sum[:]),
		MIMEType: mimeType,
		Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		},
	}
}

// mimeDecision is the outcome of looking at the MIME type alone.
type mimeDecision uint8

const (
	mimeUnknown mimeDecision = iota
	mimeStore
	mimeDeflate
)

// storedTypes are container formats that already carry compressed data;
// deflating them again costs CPU and saves nothing (often it grows them).
var storedTypes = map[string]bool{
	"application/zip":                         true,
	"application/x-zip-compressed":            true,
	"application/gzip":                        true,
	"application/x-gzip":                      true,
	"application/x-7z-compressed":             true,
	"application/x-rar-compressed":            true,
	"application/vnd.rar":                     true,
	"application/zstd":                        true,
	"application/x-zstd":                      true,
	"application/x-xz":                        true,
	"application/x-bzip2":                     true,
	"application/x-lz4":                       true,
	"application/x-lzip":                      true,
	"application/x-compress":                  true,
	"application/x-brotli":                    true,
	"application/java-archive":                true,
	"application/vnd.android.package-archive": true,
	"application/epub+zip":                    true,
	"application/pdf":                         true,
	"application/vnd.apache.parquet":          true,
	"application/x-parquet":                   true,
	"application/x-hdf5":                      true,
	"application/ogg":                         true,
	"font/woff":                               true,
	"font/woff2":                              true,
}

// rawImageTypes are image formats that are usually uncompressed or textual.
var rawImageTypes = map[string]bool{
	"image/svg+xml":            true,
	"image/bmp":                true,
	"image/x-ms-bmp":           true,
	"image/tiff":               true,
	"image/x-icon":             true,
	"image/vnd.microsoft.icon": true,
	"image/x-portable-anymap":  true,
	"image/x-portable-bitmap":  true,
	"image/x-portable-graymap": true,
	"image/x-portable-pixmap":  true,
}

// textTypes are application/* types known to be text.
var textTypes = map[string]bool{
	"application/json":        true,
	"application/ld+json":     true,
	"application/x-ndjson":    true,
	"application/jsonl":       true,
	"application/x-jsonlines": true,
	"application/xml":         true,
	"application/javascript":  true,
	"application/x-yaml":      true,
	"application/yaml":        true,
	"application/toml":        true,
	"application/sql":         true,
	"application/csv":         true,
	"application/x-tar":       true,
	"application/rtf":         true,
	"application/x-subrip":    true,
	"application/x-sh":        true,
	"application/x-tex":       true,
}

func classifyMIME(mimeType string) mimeDecision {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(mimeType))
	}
	switch {
	case mt == "" || mt == "application/octet-stream":
		return mimeUnknown
	case storedTypes[mt]:
		return mimeStore
	case rawImageTypes[mt]:
		return mimeDeflate
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "video/"), strings.HasPrefix(mt, "audio/"):
		return mimeStore
	case strings.HasPrefix(mt, "text/"), textTypes[mt],
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return mimeDeflate
	case strings.HasPrefix(mt, "application/vnd.openxmlformats-officedocument."),
		strings.HasPrefix(mt, "application/vnd.oasis.opendocument."):
		return mimeStore // OOXML and ODF files are ZIP archives
	}
	return mimeUnknown
}

// incompressibleBits is the order-0 entropy (bits per byte) above which a
// sample is treated as already compressed or random. Text sits around 4-5,
// base64 at 6, machine code near 6.5; compressed and encrypted data measure
// 7.99+. A histogram costs about the same on any sample: far less than a
// trial deflate of text, though more than klauspost's deflate spends on
// random bytes, where it skips ahead once it finds no matches
// (BenchmarkSampleEntropy, make bench, measures both). It catches the common
// case (random or compressed blobs labelled octet-stream); data it misjudges
// is merely stored or deflated suboptimally, never corrupted.
const incompressibleBits = 7.8

// chooseMethod decides the ZIP method for an entry given the first bytes of
// its content.
func chooseMethod(e *Entry, sample []byte) uint16 {
	if e.Size == 0 {
		return zip.Store // deflate would turn 0 bytes into 2
	}
	switch e.Compress {
	case CompressStore:
		return zip.Store
	case CompressDeflate:
		return zip.Deflate
	}
	switch classifyMIME(e.MIMEType) {
	case mimeStore:
		return zip.Store
	case mimeDeflate:
		return zip.Deflate
	}
	if entropy(sample) > incompressibleBits {
		return zip.Store
	}
	return zip.Deflate
}

// entropy returns the order-0 Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var hist [256]int
	for _, c := range b {
		hist[c]++
	}
	n := float64(len(b))
	var h float64
	for _, c := range &hist {
		if c == 0 {
			continue
		}
		p := float64(c) / n
		h -= p * math.Log2(p)
	}
	return h
}
