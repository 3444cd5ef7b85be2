package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Verdict is the outcome of validation, spelled as file_versions.validation_status.
type Verdict string

// Verdicts, from best to worst. When findings of both kinds exist the report
// is Corrupt: content rules say little about bytes that are not the ones the
// uploader sent.
const (
	Valid    Verdict = "valid"
	Rejected Verdict = "rejected"
	Corrupt  Verdict = "corrupt"
)

func (v Verdict) rank() int {
	switch v {
	case Corrupt:
		return 2
	case Rejected:
		return 1
	}
	return 0
}

// Code identifies the kind of a finding, for code that needs to tell them
// apart (metrics, tests). Codes are stable; messages may be reworded.
type Code string

// Finding codes.
const (
	CodeObjectSizeMismatch Code = "object_size_mismatch"    // read ≠ storage's reported size
	CodeSizeMismatch       Code = "size_mismatch"           // read ≠ declared size
	CodeSHA256Mismatch     Code = "sha256_mismatch"         // declared SHA-256 ≠ measured
	CodeDeclaredSHA256Bad  Code = "declared_sha256_invalid" // declared SHA-256 unparseable
	CodeStorageChecksum    Code = "storage_checksum_mismatch"
	CodeETagMismatch       Code = "etag_mismatch"
	CodeTooLarge           Code = "too_large"
	CodeEmpty              Code = "empty"
	CodeTypeBlocked        Code = "type_blocked"
	CodeTypeMismatch       Code = "type_mismatch"
	CodeTypeNotAllowed     Code = "type_not_allowed"
	CodeUnknownFileType    Code = "unknown_file_type"
	CodeZipInvalid         Code = "zip_invalid" // not a ZIP at all
	CodeZipDamaged         Code = "zip_damaged" // a ZIP, but damaged or truncated
	CodeZipUnsafePath      Code = "zip_unsafe_path"
	CodeZipSpecialFile     Code = "zip_special_file" // symlink, device, pipe
	CodeZipEncrypted       Code = "zip_encrypted"
	CodeZipUnsupported     Code = "zip_unsupported_method"
	CodeZipTooManyEntries  Code = "zip_too_many_entries"
	CodeZipTooLarge        Code = "zip_too_large"
	CodeZipBomb            Code = "zip_bomb"
	CodeZipOverlap         Code = "zip_overlapping_entries"
	CodeZipBlockedEntry    Code = "zip_blocked_entry"
	// The zip_ codes above are used for tar and gzip files too (unsafe
	// paths, links and devices, entry and size limits, bombs, blocked
	// entries); these are the findings only other archive kinds have.
	CodeArchiveDamaged      Code = "archive_damaged"          // a tar or gzip stream, damaged or truncated
	CodeArchiveTooDeep      Code = "archive_too_deep"         // archives nested deeper than MaxArchiveDepth
	CodeNestedArchiveTooBig Code = "nested_archive_too_large" // a nested ZIP larger than MaxNestedZipBytes
	CodePolyglot            Code = "polyglot"                 // another file hidden after the declared one
	CodeImageHeader         Code = "image_header_invalid"     // an image whose header cannot be read (damaged or cut off)
)

// Finding is one reason a file is not valid.
type Finding struct {
	Verdict Verdict // Corrupt or Rejected
	Code    Code
	// Message says what is wrong and what to do about it, for a person.
	Message string
}

// Report is the result of Precheck, Check or InspectZip. Combine reports
// with Merge.
type Report struct {
	Verdict Verdict
	// Findings are the reasons for a verdict other than Valid, corrupt ones
	// first.
	Findings []Finding
	// Notes record what was deliberately not compared and why (a multipart
	// ETag, a composite checksum, a nested archive), for logs and the event
	// log; they never change the verdict.
	Notes []string
	// ContentType is the media type the file is taken to be, without
	// parameters: the sniffed type, or the declared one where the rules in
	// resolveType prefer it. Set by Check; record it as mime_type.
	ContentType string
	// Archive is set by InspectZip.
	Archive *ArchiveStats
}

// Message joins the findings' messages, for file_versions.validation_error.
// It is empty for a valid report.
func (r Report) Message() string {
	msgs := make([]string, 0, len(r.Findings))
	for _, f := range r.Findings {
		msgs = append(msgs, f.Message)
	}
	return strings.Join(msgs, "; ")
}

// Has reports whether the report has a finding with the code.
func (r Report) Has(c Code) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Code == c })
}

// Merge combines two reports; the worse verdict wins.
func (r Report) Merge(o Report) Report {
	out := Report{
		Findings:    slices.Concat(r.Findings, o.Findings),
		Notes:       slices.Concat(r.Notes, o.Notes),
		ContentType: r.ContentType,
		Archive:     r.Archive,
	}
	if out.ContentType == "" {
		out.ContentType = o.ContentType
	}
	if o.Archive != nil {
		out.Archive = o.Archive
	}
	out.finish()
	return out
}

func (r *Report) add(v Verdict, c Code, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Verdict: v, Code: c, Message: fmt.Sprintf(format, args...)})
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// finish sets the verdict from the findings and puts corrupt findings first.
func (r *Report) finish() {
	slices.SortStableFunc(r.Findings, func(a, b Finding) int { return b.Verdict.rank() - a.Verdict.rank() })
	r.Verdict = Valid
	for _, f := range r.Findings {
		if f.Verdict.rank() > r.Verdict.rank() {
			r.Verdict = f.Verdict
		}
	}
}

// S3Checksum is one additional checksum storage reports for the object
// (StatObject with checksum mode enabled: ObjectInfo.ChecksumCRC32C etc.).
type S3Checksum struct {
	Algorithm Algorithm
	// Value is as S3 reports it: standard base64 of the big-endian digest,
	// possibly with a "-N" part-count suffix for composite checksums.
	Value string
	// Type is S3's checksum type: "FULL_OBJECT", "COMPOSITE" or "" (not
	// reported; then a "-N" suffix is what marks a composite checksum).
	Type string
}

// composite reports whether the checksum is a checksum of part checksums
// rather than of the object's bytes: such values can't be compared with a
// digest of the whole stream.
func (c S3Checksum) composite() bool {
	return strings.EqualFold(c.Type, "COMPOSITE") || partSuffix.MatchString(c.Value)
}

var partSuffix = regexp.MustCompile(`-[0-9]+$`)

// References are everything the bytes are checked against. Zero values mean
// "not known" and are simply not compared.
type References struct {
	// FileType selects the allow-list (FileTypeDataset, …).
	FileType string

	// From registration: what the uploader said it sent.
	DeclaredSHA256 string // hex (or base64); "" when not declared
	DeclaredSize   *int64 // nil when not declared; 0 is a declaration
	DeclaredMIME   string // "" when not declared

	// From storage (StatObject).
	ObjectSize  *int64
	S3Checksums []S3Checksum
	ETag        string
	// ETagNotMD5 says the ETag is not the MD5 of the content even if it
	// looks like one: SSE-KMS and SSE-C objects, MinIO with auto-encryption
	// or compression. Such an ETag is never compared.
	ETagNotMD5 bool
}

var (
	plainETag     = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
	multipartETag = regexp.MustCompile(`^[0-9a-fA-F]{32}-[0-9]+$`)
)

func trimETag(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	return strings.Trim(s, `"`)
}

// usableS3Checksums returns the storage checksums that describe the whole
// object and can be compared.
func (refs References) usableS3Checksums() []S3Checksum {
	var out []S3Checksum
	for _, c := range refs.S3Checksums {
		if c.Value == "" || c.composite() || !knownAlgorithm(c.Algorithm) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func knownAlgorithm(a Algorithm) bool {
	for _, n := range algorithmNames {
		if a == n.a {
			return true
		}
	}
	return false
}

// strongerThanETag reports whether something better than an MD5 ETag is
// available: then the ETag is not compared and MD5 is not computed.
func (refs References) strongerThanETag() bool {
	return strings.TrimSpace(refs.DeclaredSHA256) != "" || len(refs.usableS3Checksums()) > 0
}

// compareETag reports whether the ETag will be compared as an MD5.
func (refs References) compareETag() bool {
	return refs.ETag != "" && !refs.ETagNotMD5 && plainETag.MatchString(trimETag(refs.ETag)) &&
		!refs.strongerThanETag()
}

// Needed returns the extra digests Measure must compute for Check to compare
// every reference: one per full-object storage checksum, and MD5 only when a
// plain, trustworthy ETag is the best reference there is.
func Needed(refs References) Algorithm {
	var a Algorithm
	for _, c := range refs.usableS3Checksums() {
		a |= c.Algorithm
	}
	if refs.compareETag() {
		a |= MD5
	}
	return a &^ SHA256
}

// Precheck applies the rules that need no bytes, only storage's metadata:
// a size that disagrees with the declared size, an object over the size
// limit, an empty object. Run it before Measure to avoid reading a file whose
// fate is already sealed; Check repeats the size rules on the bytes read.
func Precheck(refs References, opts Options) Report {
	var r Report
	if refs.ObjectSize != nil {
		size := *refs.ObjectSize
		if refs.DeclaredSize != nil {
			checkDeclaredSize(&r, size, *refs.DeclaredSize)
		}
		if opts.MaxSize > 0 && size > opts.MaxSize {
			r.add(Rejected, CodeTooLarge, "file is %s, larger than the %s limit; split it or ask an operator to raise the limit",
				formatBytes(size), formatLimit(opts.MaxSize))
		}
		if size == 0 && !opts.AllowEmpty {
			r.add(Rejected, CodeEmpty, emptyMessage)
		}
	}
	r.finish()
	return r
}

const emptyMessage = "file is empty (0 bytes); upload it again with its content"

func checkDeclaredSize(r *Report, actual, declared int64) {
	switch {
	case actual < declared:
		r.add(Corrupt, CodeSizeMismatch, "object is %s but %s were declared; the upload may have been cut off, upload the file again",
			formatBytes(actual), formatCount(declared))
	case actual > declared:
		r.add(Corrupt, CodeSizeMismatch, "object is %s but %s were declared; the stored file is not the one registered, upload it again or correct the declared size",
			formatBytes(actual), formatCount(declared))
	}
}

// Check compares a measurement with the references and applies the content
// rules for the file type. It never does I/O; the same inputs always give
// the same report.
func Check(m Measurement, refs References, opts Options) Report {
	var r Report
	checkIntegrity(&r, m, refs)
	checkContent(&r, m, refs, opts)
	r.finish()
	return r
}

func checkIntegrity(r *Report, m Measurement, refs References) {
	compared := false
	if refs.ObjectSize != nil && *refs.ObjectSize != m.Size {
		r.add(Corrupt, CodeObjectSizeMismatch, "storage reports %s but %s were read; the object changed while it was checked or the read was cut short, run the check again",
			formatBytes(*refs.ObjectSize), formatCount(m.Size))
	}
	if refs.DeclaredSize != nil {
		compared = true
		checkDeclaredSize(r, m.Size, *refs.DeclaredSize)
	}

	if d := strings.TrimSpace(refs.DeclaredSHA256); d != "" {
		compared = true
		want, ok := parseDigest(d, len(m.SHA256))
		switch {
		case !ok:
			r.add(Corrupt, CodeDeclaredSHA256Bad, "declared SHA-256 %q is not a SHA-256 (64 hex characters); correct the declared checksum", d)
		case !bytes.Equal(want, m.SHA256[:]):
			r.add(Corrupt, CodeSHA256Mismatch, "declared SHA-256 %s does not match the stored bytes (measured %s); upload the file again or correct the declared checksum",
				hex.EncodeToString(want), m.SHA256Hex())
		}
	}

	for _, c := range refs.S3Checksums {
		if c.Value == "" {
			continue
		}
		name := c.Algorithm.String()
		switch {
		case !knownAlgorithm(c.Algorithm):
			r.note("storage checksum of type %s is not supported; not compared", name)
			continue
		case c.composite():
			r.note("storage %s checksum %s is a checksum of the upload's part checksums, not of the whole object; not compared", name, c.Value)
			continue
		}
		got, ok := m.Sum(c.Algorithm)
		if !ok {
			r.note("storage %s checksum was not measured (set Options.Checksums from Needed); not compared", name)
			continue
		}
		want, err := base64.StdEncoding.DecodeString(c.Value)
		if err != nil {
			want, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(c.Value, "="))
		}
		if err != nil || len(want) != len(got) {
			r.note("storage %s checksum %q is not valid base64 of the right length; not compared", name, c.Value)
			continue
		}
		compared = true
		if !bytes.Equal(want, got) {
			r.add(Corrupt, CodeStorageChecksum, "storage's %s checksum %s does not match the stored bytes (measured %s); the object was damaged in storage or on its way there, upload the file again",
				name, c.Value, base64.StdEncoding.EncodeToString(got))
		}
	}

	if etag := trimETag(refs.ETag); etag != "" {
		switch {
		case refs.ETagNotMD5:
			r.note("ETag not compared: the object is encrypted or compressed, so its ETag is not an MD5 of the content")
		case multipartETag.MatchString(etag):
			r.note("ETag %s comes from a multipart upload and is not an MD5 of the content; not compared", etag)
		case !plainETag.MatchString(etag):
			r.note("ETag %s is not an MD5; not compared", etag)
		case refs.strongerThanETag():
			// Nothing to say: a checksum that means more was compared.
		case !m.Computed.Has(MD5):
			r.note("ETag is the only reference but MD5 was not measured (set Options.Checksums from Needed); not compared")
		default:
			compared = true
			if !strings.EqualFold(etag, hex.EncodeToString(m.MD5[:])) {
				r.add(Corrupt, CodeETagMismatch, "storage's ETag %s (the MD5 of the uploaded bytes) does not match the stored bytes (measured MD5 %s); upload the file again",
					strings.ToLower(etag), hex.EncodeToString(m.MD5[:]))
			}
		}
	}

	if !compared {
		r.note("no declared size or checksum and no usable storage checksum: the bytes were read but could not be confirmed against anything")
	}
}

// parseDigest accepts hex (any case) or base64, optionally prefixed with
// "sha256:", and returns the digest bytes if they have the expected length.
func parseDigest(s string, size int) ([]byte, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "sha256:")
	if len(s) == 2*size {
		if b, err := hex.DecodeString(s); err == nil {
			return b, true
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == size {
			return b, true
		}
	}
	return nil, false
}

func checkContent(r *Report, m Measurement, refs References, opts Options) {
	if m.Size == 0 {
		if !opts.AllowEmpty {
			r.add(Rejected, CodeEmpty, emptyMessage)
		}
		return
	}

	sniffed := mediaType{name: "application/octet-stream"}
	if n := m.mimeNode(); n != nil {
		sniffed = fromNode(n)
	}
	r.ContentType = sniffed.name

	if b := sniffed.blocked(); b != "" {
		r.add(Rejected, CodeTypeBlocked, "content is %s, a program or installer; such files are never accepted, upload the data itself", sniffed.name)
		return
	}
	if at, ok := appendedZip(m); ok {
		r.add(Rejected, CodePolyglot, "content is %s with a ZIP archive appended (its end record is %s from the end of the file): other programs open such a file as an archive whose contents were never checked; save the file again without the appended data, or upload the archive as a file of its own",
			sniffed.name, formatBytes(at))
		return
	}
	declared, hasDeclared := parseMediaType(refs.DeclaredMIME)
	if refs.DeclaredMIME != "" && !hasDeclared {
		r.note("declared MIME type %q is not a media type; ignored", refs.DeclaredMIME)
	}
	if hasDeclared {
		if b := declared.blocked(); b != "" {
			r.add(Rejected, CodeTypeBlocked, "declared type %s is a program or installer; such files are never accepted, upload the data itself", declared.name)
			return
		}
	}

	res := resolveType(declared, hasDeclared, sniffed)
	if !res.ok {
		what := sniffed.name
		if sniffed.unknown() {
			what = "binary data of an unknown type"
		}
		r.add(Rejected, CodeTypeMismatch, "declared %s but the content is %s; upload a real %s file or declare the type it has",
			declared.name, what, declared.name)
		return
	}
	if res.note != "" {
		r.note("%s", res.note)
	}
	eff := res.effective
	r.ContentType = eff.name

	patterns, ok := opts.allowListFor(refs.FileType)
	if !ok {
		r.add(Rejected, CodeUnknownFileType, "file type %q has no allow-list; this is a bug in the caller, not in the file", refs.FileType)
		return
	}
	if !allowedBy(eff, patterns) {
		what := eff.name
		if eff.unknown() {
			what = "binary data of an unknown type (application/octet-stream)"
		}
		r.add(Rejected, CodeTypeNotAllowed, "%s is not accepted for %s files (accepted: %s); convert the file, or ask a project admin to allow %s",
			what, strings.ReplaceAll(refs.FileType, "_", " "), summarise(patterns, 12), eff.name)
		return
	}
	// An image whose header cannot be read does not display, and has no size
	// to convert an annotation's percentages with.
	if m.imageProblem != nil {
		r.Findings = append(r.Findings, *m.imageProblem)
	}
	r.Notes = append(r.Notes, m.imageNotes...)
}

func summarise(items []string, max int) string {
	if len(items) == 0 {
		return "nothing"
	}
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:max], ", "), len(items)-max)
}
