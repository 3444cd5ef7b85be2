package verify

// File types, as stored in files.file_type. The allow-lists are keyed by them.
const (
	FileTypeDataset           = "dataset"
	FileTypeRequirement       = "requirement"
	FileTypeAnnotationResults = "annotation_results"
	FileTypeLLMOutput         = "llm_output"
)

// Defaults for the zero values of Options.
const (
	DefaultBufferSize         = 4 << 20  // 4 MiB read buffer for Measure
	SmallBufferSize           = 64 << 10 // Measure's buffer for a file known to be smaller than DefaultBufferSize
	DefaultMaxZipEntries      = 10_000   // entries per archive
	DefaultMaxZipUncompressed = 10 << 30 // 10 GiB expanded per archive
	DefaultMaxZipRatio        = 100.0    // expanded ÷ compressed, per entry and overall
	DefaultZipBlockSize       = 4 << 20  // 4 MiB read-ahead for InspectZip
	DefaultMaxArchiveDepth    = 3        // archives within archives, the outermost counting as 1
	DefaultMaxNestedZipBytes  = 64 << 20 // a ZIP inside another archive is held in memory up to this size

	// zipRatioGrace is how much any entry (and the archive as a whole) may
	// expand before the ratio limit applies. Small, very repetitive files (a
	// 100 KiB CSV of zeros compresses 500:1) are ordinary; a bomb needs volume
	// to do harm, so the ratio only matters past this point.
	zipRatioGrace = 1 << 20

	// zipDirBytesPerEntry bounds how many bytes of central directory
	// InspectZip lets archive/zip parse per allowed entry. archive/zip keeps
	// every parsed header in memory, so this is what keeps a hostile table
	// of contents (millions of tiny headers) from costing gigabytes before
	// the entry count can even be checked. Real archives average well under
	// 200 bytes per entry (46 bytes of header plus name and extra fields).
	zipDirBytesPerEntry = 1 << 10
	// zipDirSlack covers the end-of-directory search (up to 64 KiB of
	// comment) and bufio's read-ahead.
	zipDirSlack = 128 << 10
)

// Options tune Measure, Check, InspectArchive and InspectZip. The zero value is ready to use:
// every zero field means the documented default. A worker typically builds one
// Options at start-up, then per version copies it and sets Checksums (from
// Needed) and AllowList (from the project's settings).
type Options struct {
	// Checksums selects the digests Measure computes besides SHA-256, which
	// is always computed. Default: none, because every extra digest is
	// another pass over each buffer; use Needed(refs) to ask for exactly
	// the ones the references can be compared with.
	Checksums Algorithm

	// MaxSize makes Measure stop with ErrTooLarge once more than this many
	// bytes have been read, and Precheck reject an object reported larger.
	// Zero means no limit.
	MaxSize int64

	// Progress, when set, is called by Measure after each buffer with the
	// number of bytes read so far, on Measure's goroutine. Keep it cheap
	// (it runs once per BufferSize bytes).
	Progress func(bytesRead int64)

	// BufferSize is Measure's read size. Default 4 MiB, or SmallBufferSize
	// when SizeHint says the file is smaller than that. Large reads keep
	// per-call overhead invisible next to SHA-256. 4 MiB came out best of the
	// sizes tried with BenchmarkValidate1GiB (worker/validate, make bench),
	// which reads a 1 GiB object from MinIO and reports its rate against
	// in-memory SHA-256: smaller reads were a little slower, and 8 MiB slower
	// again (the buffer no longer fits the core's cache). Both sizes are
	// pooled, so a busy worker does not allocate one per file.
	BufferSize int

	// SizeHint is the size the file is expected to have (storage's
	// Content-Length), used only to pick the buffer: a 2 KiB CSV needs no
	// 4 MiB buffer. Zero: unknown.
	SizeHint int64

	// AllowList maps a file type to the media types allowed for it.
	// Patterns are media types ("text/csv"; aliases such as
	// "application/x-zip-compressed" are understood), "type/*" or "*/*".
	// A file type present in the map (even with an empty list) replaces the
	// default for that type; a file type absent from the map (or a nil map)
	// uses DefaultAllowList(). Blocked types (see BlockedTypes) are rejected
	// whatever the allow-list says.
	AllowList map[string][]string

	// AllowEmpty accepts zero-byte files. Default false: an empty upload is
	// almost always a failed upload, so it is rejected with "file is empty"
	// for every file type. An archive with no entries counts as empty too.
	AllowEmpty bool

	// The archive limits below apply to ZIP, tar, tar.gz and gzip files
	// alike (the names predate tar), and each is counted across the whole
	// tree of a file: the entries and bytes of every archive nested inside
	// it add up against the same limit.

	// MaxZipEntries is the most entries (files and folders) an archive may
	// hold, nested archives' entries included. Default 10,000; negative
	// means no limit.
	MaxZipEntries int

	// MaxZipUncompressed is the most bytes an archive may expand to, counted
	// as they are decompressed, at every level of nesting. Default 10 GiB;
	// negative means no limit.
	MaxZipUncompressed int64

	// MaxZipRatio is the largest expansion ratio (decompressed bytes ÷
	// compressed bytes) allowed for any ZIP entry and any gzip stream past
	// its first MiB, and for the file as a whole (everything decompressed ÷
	// the file's size). Default 100; negative means no limit.
	MaxZipRatio float64

	// AllowZipSymlinks accepts symbolic-link entries in ZIP archives and
	// symbolic and hard links in tar archives. Default false: a link in an
	// archive can point anywhere once extracted. Even when true, a tar link
	// whose target lies outside the archive (absolute, or climbing out with
	// "..") is rejected.
	AllowZipSymlinks bool

	// MaxArchiveDepth is how many levels of archives inside archives are
	// opened, the file itself counting as 1 (a .tar.gz is one level: the
	// gzip of a tar is one archive). A nested archive deeper than this is
	// rejected. Default 3 (zip in zip in zip); 1 rejects every archive
	// inside an archive.
	MaxArchiveDepth int

	// MaxNestedZipBytes is the largest ZIP inside another archive that is
	// inspected: archive/zip needs random access, so a nested ZIP is held in
	// memory while it is read. A larger one is rejected as too large to
	// check (tar and gzip are read as streams and have no such limit).
	// Default 64 MiB.
	MaxNestedZipBytes int64

	// ZipBlockSize is the read-ahead InspectZip uses on the io.ReaderAt.
	// archive/zip reads in 4 KiB pieces and a minio Object turns every
	// ReadAt into a ranged GET, so reads are served from one block of this
	// size. Default 4 MiB.
	ZipBlockSize int
}

func (o Options) withDefaults() Options {
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
		if o.SizeHint > 0 && o.SizeHint < DefaultBufferSize {
			o.BufferSize = SmallBufferSize
		}
	}
	if o.MaxZipEntries == 0 {
		o.MaxZipEntries = DefaultMaxZipEntries
	}
	if o.MaxZipUncompressed == 0 {
		o.MaxZipUncompressed = DefaultMaxZipUncompressed
	}
	if o.MaxZipRatio == 0 {
		o.MaxZipRatio = DefaultMaxZipRatio
	}
	if o.ZipBlockSize <= 0 {
		o.ZipBlockSize = DefaultZipBlockSize
	}
	switch {
	case o.MaxArchiveDepth == 0:
		o.MaxArchiveDepth = DefaultMaxArchiveDepth
	case o.MaxArchiveDepth < 0:
		o.MaxArchiveDepth = 1
	}
	if o.MaxNestedZipBytes <= 0 {
		o.MaxNestedZipBytes = DefaultMaxNestedZipBytes
	}
	return o
}

// allowListFor returns the patterns for a file type and whether the file type
// has a list at all.
func (o Options) allowListFor(fileType string) ([]string, bool) {
	if l, ok := o.AllowList[fileType]; ok {
		return l, true
	}
	l, ok := DefaultAllowList()[fileType]
	return l, ok
}

// DefaultAllowList returns the media types accepted per file type when the
// project does not say otherwise. It returns a fresh map on every call, so
// callers may modify it (for example to merge a project's overrides).
//
// The lists are explicit rather than "image/*" where a wildcard would let in
// types that are risky to show in a browser (image/svg+xml carries script) or
// that nobody annotates. Archives are limited to the kinds InspectArchive
// opens entry by entry: ZIP, tar and gzip (so .tar.gz). HTML is accepted for datasets because web
// pages are a common annotation target; the platform must serve user files
// as attachments or from a sandboxed origin in any case.
func DefaultAllowList() map[string][]string {
	images := []string{
		"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp",
		"image/tiff", "image/heic", "image/heif", "image/avif", "image/jp2",
		"image/jxl", "application/dicom",
	}
	text := []string{
		"text/plain", "text/csv", "text/tab-separated-values", "text/markdown",
		"application/json", "application/x-ndjson", "text/xml", "application/yaml",
	}
	office := []string{
		"application/pdf",
		"application/msword",
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
		"application/vnd.ms-excel",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
		"application/vnd.ms-powerpoint",
		"application/vnd.openxmlformats-officedocument.presentationml.presentation",
		"application/vnd.oasis.opendocument.text",
		"application/vnd.oasis.opendocument.spreadsheet",
		"application/vnd.oasis.opendocument.presentation",
		"text/rtf",
	}
	var dataset []string
	dataset = append(dataset, images...)
	dataset = append(dataset, "audio/*", "video/*")
	dataset = append(dataset, text...)
	dataset = append(dataset, "text/html", "text/vtt", "application/x-subrip",
		"application/vnd.apache.parquet")
	dataset = append(dataset, office...)
	dataset = append(dataset, "application/zip", "application/x-tar", "application/gzip")

	var requirement []string
	requirement = append(requirement, "text/plain", "text/markdown", "text/html",
		"text/csv", "application/json", "application/yaml")
	requirement = append(requirement, office...)
	requirement = append(requirement, "image/jpeg", "image/png", "image/gif", "image/webp")

	return map[string][]string{
		FileTypeDataset:     dataset,
		FileTypeRequirement: requirement,
		// Results come back as JSON/CSV/XML exports, COCO-style zips, or
		// mask images for segmentation.
		FileTypeAnnotationResults: {
			"application/json", "application/x-ndjson", "text/csv",
			"text/tab-separated-values", "text/plain", "text/xml",
			"application/yaml", "application/zip", "image/png", "image/tiff",
		},
		// The model's output is text the worker wrote itself.
		FileTypeLLMOutput: {
			"application/json", "application/x-ndjson", "text/plain",
			"text/markdown", "text/csv",
		},
	}
}

// blockedTypes are rejected for every file type, whatever a project's
// allow-list says, and inside ZIP archives: things that run rather than
// things that are read. A type blocks its whole subtree in mimetype's
// hierarchy (application/x-elf covers executables, shared libraries, objects
// and core dumps).
//
// JAR and APK are blocked although they are ZIP files: they are programs, and
// mimetype only calls a ZIP a JAR when it starts with META-INF/, so a JAR that
// slips through as application/zip still has its .class entries blocked by
// InspectZip. Scripts other than shell are not blocked by type (a code
// dataset may hold Python), but they are not on any default allow-list
// either; shell scripts are blocked because they are the usual dropper.
var blockedTypes = []string{
	"application/x-elf",
	"application/vnd.microsoft.portable-executable",
	"application/x-mach-binary",
	"application/x-ms-installer",
	"application/x-installshield",
	"application/vnd.debian.binary-package",
	"application/x-rpm",
	"application/vnd.android.package-archive",
	"application/java-archive",
	"application/x-java-applet",
	"application/x-bytecode.python",
	"application/wasm",
	"application/x-chrome-extension",
	"application/x-ms-shortcut",
	"text/x-shellscript",
}

// BlockedTypes returns the media types that are never accepted.
func BlockedTypes() []string {
	return append([]string(nil), blockedTypes...)
}
