package verify

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/gabriel-vasile/mimetype"
)

// ArchiveStats describes what InspectZip found and read.
type ArchiveStats struct {
	// Entries is the number of entries (files and folders) listed.
	Entries int
	// Files is the number of non-folder entries read to the end.
	Files int
	// UncompressedBytes counts bytes actually decompressed, not the sizes
	// the headers claim. When a limit stopped the inspection it is where
	// reading stopped.
	UncompressedBytes int64
	// NestedArchives counts entries that are themselves archives; their
	// contents are not inspected.
	NestedArchives int
}

// errDirBudget stops archive/zip from parsing more central directory than
// the entry limit can justify; see zipDirBytesPerEntry.
var errDirBudget = errors.New("verify: central directory larger than the entry limit allows")

// nestedArchiveTypes are containers InspectZip notes but does not open.
var nestedArchiveTypes = []string{
	"application/zip", "application/gzip", "application/x-tar", "application/x-7z-compressed",
	"application/vnd.rar", "application/x-bzip2", "application/x-xz", "application/zstd",
	"application/lzip", "application/x-cpio",
}

// InspectZip checks a ZIP archive (or a ZIP-based format such as docx)
// entry by entry, reading it through ra, which holds size bytes.
//
// In order, stopping at the first stage that finds something:
//   - the archive must open (a damaged or truncated one is Corrupt, something
//     that is no ZIP at all is Rejected), and its table of contents must fit
//     the entry limit: archive/zip keeps every header in memory, so the bytes
//     it may parse are capped before it parses them;
//   - no more than MaxZipEntries entries, and at least one file unless
//     AllowEmpty;
//   - every name must stay inside the extraction folder (no absolute paths,
//     drive letters, ".." components, also with backslashes as separators),
//     no symlinks (unless AllowZipSymlinks) or device entries, no encrypted
//     entries (their CRC can't be checked);
//   - every entry is then decompressed to io.Discard, in constant memory:
//     its CRC-32 must match (archive/zip checks it at EOF), its data must
//     not overlap another entry's, it must not expand more than MaxZipRatio
//     times past its first MiB, the archive must not expand more than
//     MaxZipRatio times its own size past the first MiB or beyond
//     MaxZipUncompressed in total, and it must not be a blocked type. The
//     limits count bytes as they come out of the decompressor; the sizes in
//     the headers are never trusted.
//
// The error is non-nil only when reading ra failed or ctx ended: a retry may
// succeed. Everything about the archive itself is in the Report.
func InspectZip(ctx context.Context, ra io.ReaderAt, size int64, opts Options) (Report, error) {
	opts = opts.withDefaults()
	src := &blockReaderAt{
		ctx:    ctx,
		src:    ra,
		size:   size,
		block:  make([]byte, max(1, min(int64(opts.ZipBlockSize), size))),
		budget: -1,
	}
	in := &zipInspection{opts: opts, src: src, size: size, rep: Report{Archive: &ArchiveStats{}}}
	err := in.run(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("inspect zip: %w", err)
	}
	in.rep.finish()
	return in.rep, nil
}

type zipInspection struct {
	opts Options
	src  *blockReaderAt
	size int64
	rep  Report
}

func (in *zipInspection) stats() *ArchiveStats { return in.rep.Archive }

// run fills in.rep; it returns an error only for I/O and context failures.
func (in *zipInspection) run(ctx context.Context) error {
	if in.opts.MaxZipEntries > 0 {
		in.src.budget = int64(in.opts.MaxZipEntries)*zipDirBytesPerEntry + zipDirSlack
	}
	zr, err := zip.NewReader(in.src, in.size)
	in.src.budget = -1
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if in.src.err != nil {
			return in.src.err
		}
		in.openFailed(err)
		return nil
	}

	st := in.stats()
	st.Entries = len(zr.File)
	if in.opts.MaxZipEntries > 0 && len(zr.File) > in.opts.MaxZipEntries {
		in.rep.add(Rejected, CodeZipTooManyEntries, "archive has %s entries, more than the limit of %s; split it into smaller archives",
			groupThousands(int64(len(zr.File))), groupThousands(int64(in.opts.MaxZipEntries)))
		return nil
	}
	if !in.checkHeaders(zr.File) {
		return nil
	}
	return in.readEntries(ctx, zr.File)
}

func (in *zipInspection) openFailed(err error) {
	switch {
	case errors.Is(err, errDirBudget):
		in.rep.add(Rejected, CodeZipTooManyEntries, "archive's table of contents is larger than its limit of %s entries allows; split it into smaller archives",
			groupThousands(int64(in.opts.MaxZipEntries)))
	case in.looksLikeZip():
		in.rep.add(Corrupt, CodeZipDamaged, "ZIP archive is damaged or truncated (%v); upload it again", err)
	default:
		in.rep.add(Rejected, CodeZipInvalid, "file is not a ZIP archive; upload a real .zip file or declare the type it has")
	}
}

// looksLikeZip reports whether the file starts like a ZIP: then a failure to
// open it means damage, not a wrong type.
func (in *zipInspection) looksLikeZip() bool {
	var head [4]byte
	if _, err := in.src.ReadAt(head[:], 0); err != nil {
		return false
	}
	return bytes.Equal(head[:], []byte("PK\x03\x04")) || bytes.Equal(head[:], []byte("PK\x05\x06")) ||
		bytes.Equal(head[:], []byte("PK\x07\x08"))
}

// examples collects up to a few offending entry names per finding, so one
// message covers an archive with thousands of bad names.
type examples struct {
	names []string
	count int
}

func (e *examples) add(s string) {
	e.count++
	if len(e.names) < 3 {
		e.names = append(e.names, s)
	}
}

func (e *examples) String() string {
	s := strings.Join(e.names, ", ")
	if e.count > len(e.names) {
		s += fmt.Sprintf(" and %d more", e.count-len(e.names))
	}
	return s
}

// checkHeaders applies the rules that need only the central directory. It
// reports whether the archive passed them.
func (in *zipInspection) checkHeaders(files []*zip.File) bool {
	var unsafe, special, encrypted examples
	nonDir := 0
	for _, f := range files {
		if reason := unsafeEntryName(f.Name); reason != "" {
			unsafe.add(quoteName(f.Name) + " (" + reason + ")")
		}
		mode := f.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			if !in.opts.AllowZipSymlinks {
				special.add(quoteName(f.Name) + " (symbolic link)")
			}
		case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
			special.add(quoteName(f.Name) + " (device, pipe or socket)")
		}
		if f.Flags&0x1 != 0 {
			encrypted.add(quoteName(f.Name))
		}
		if !strings.HasSuffix(f.Name, "/") {
			nonDir++
		}
	}
	if unsafe.count > 0 {
		in.rep.add(Rejected, CodeZipUnsafePath, "archive has entries that would be written outside the folder it is extracted to: %s; re-create the archive with relative paths", &unsafe)
	}
	if special.count > 0 {
		in.rep.add(Rejected, CodeZipSpecialFile, "archive has entries that are not regular files: %s; re-create the archive from the files themselves", &special)
	}
	if encrypted.count > 0 {
		in.rep.add(Rejected, CodeZipEncrypted, "archive has password-protected entries, which can't be checked: %s; upload it without a password", &encrypted)
	}
	if nonDir == 0 && !in.opts.AllowEmpty {
		in.rep.add(Rejected, CodeEmpty, "archive contains no files; upload it again with its content")
	}
	return len(in.rep.Findings) == 0
}

// unsafeEntryName says why a name would escape the extraction folder, or "".
// Backslashes are treated as separators because Windows extractors do.
func unsafeEntryName(name string) string {
	if name == "" {
		return "empty name"
	}
	if strings.ContainsRune(name, 0) {
		return "NUL byte in name"
	}
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") {
		return "absolute path"
	}
	if len(n) >= 2 && n[1] == ':' && (n[0]|0x20 >= 'a' && n[0]|0x20 <= 'z') {
		return "drive letter"
	}
	for seg := range strings.SplitSeq(n, "/") {
		if seg == ".." {
			return `".." component`
		}
	}
	return ""
}

// readEntries decompresses every entry. It stops at the first finding.
func (in *zipInspection) readEntries(ctx context.Context, files []*zip.File) error {
	st := in.stats()
	buf := make([]byte, 256<<10)
	head := make([]byte, SniffBytes)
	var spans []span
	var nested examples

	totalLimit := int64(math.MaxInt64)
	if in.opts.MaxZipUncompressed > 0 {
		totalLimit = in.opts.MaxZipUncompressed
	}
	overallRatioLimit := ratioLimit(in.opts.MaxZipRatio, in.size)

	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		isDir := strings.HasSuffix(f.Name, "/")

		off, err := f.DataOffset()
		if err != nil {
			return in.entryFailed(f, err)
		}
		compressed := int64(f.CompressedSize64)
		if f.CompressedSize64 > math.MaxInt64 || off+compressed > in.size || off+compressed < off {
			in.rep.add(Corrupt, CodeZipDamaged, "entry %s extends past the end of the archive; the archive is damaged or truncated, upload it again", quoteName(f.Name))
			return nil
		}
		if compressed > 0 {
			if other, ok := insertSpan(&spans, span{off, off + compressed, f.Name}); !ok {
				in.rep.add(Rejected, CodeZipOverlap, "entries %s and %s share the same compressed data, a construction used by zip bombs; re-create the archive with a standard tool", quoteName(other), quoteName(f.Name))
				return nil
			}
		}

		rc, err := f.Open()
		if err != nil {
			if errors.Is(err, zip.ErrAlgorithm) {
				in.rep.add(Rejected, CodeZipUnsupported, "entry %s uses compression method %d, which can't be checked; re-create the archive with standard (deflate) compression", quoteName(f.Name), f.Method)
				return nil
			}
			return in.entryFailed(f, err)
		}

		entryLimit := ratioLimit(in.opts.MaxZipRatio, compressed)
		// archive/zip only verifies a CRC it believes was set; a zero CRC
		// on non-empty data is damage, so compute it for those entries.
		checkZeroCRC := f.CRC32 == 0 && f.Flags&0x8 == 0
		var crc uint32
		var n int64
		hn := 0
		var readErr error
		for {
			if err := ctx.Err(); err != nil {
				_ = rc.Close() // read side; the outcome is decided
				return err
			}
			k, err := rc.Read(buf)
			if k > 0 {
				n += int64(k)
				st.UncompressedBytes += int64(k)
				if hn < len(head) {
					hn += copy(head[hn:], buf[:k])
				}
				if checkZeroCRC {
					crc = crc32.Update(crc, crc32.IEEETable, buf[:k])
				}
				if stop := in.overLimit(f, n, entryLimit, compressed, totalLimit, overallRatioLimit); stop {
					_ = rc.Close() // read side; the outcome is decided
					return nil
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				readErr = err
				break
			}
		}
		// Closing an entry reader only returns the error its Read already
		// returned (archive/zip and compress/flate keep it), so readErr has it.
		_ = rc.Close()
		if readErr != nil {
			return in.entryFailed(f, readErr)
		}
		if checkZeroCRC && n > 0 && crc != 0 {
			in.rep.add(Corrupt, CodeZipDamaged, "entry %s has no CRC-32 recorded although it has data; the archive is damaged, upload it again", quoteName(f.Name))
			return nil
		}
		if isDir {
			continue
		}
		st.Files++
		if hn == 0 {
			continue
		}
		t := fromNode(mimetype.Detect(head[:hn]))
		if b := t.blocked(); b != "" {
			in.rep.add(Rejected, CodeZipBlockedEntry, "entry %s is %s, a program or installer; archives may not contain them, remove it and upload the archive again", quoteName(f.Name), t.name)
			return nil
		}
		for _, a := range nestedArchiveTypes {
			if t.within(a) {
				st.NestedArchives++
				nested.add(quoteName(f.Name))
				break
			}
		}
	}
	if nested.count > 0 {
		in.rep.note("archive contains %d nested archive(s) (%s); their contents were not inspected", nested.count, &nested)
	}
	return nil
}

// overLimit records a finding and reports true when reading must stop.
func (in *zipInspection) overLimit(f *zip.File, n, entryLimit, compressed, totalLimit, overallRatioLimit int64) bool {
	st := in.stats()
	switch {
	case n > entryLimit:
		in.rep.add(Rejected, CodeZipBomb, "entry %s expands more than %g times (stopped after %s from %s compressed); the archive looks like a zip bomb and was not unpacked",
			quoteName(f.Name), in.opts.MaxZipRatio, formatBytes(n), formatBytes(compressed))
	case st.UncompressedBytes > totalLimit:
		in.rep.add(Rejected, CodeZipTooLarge, "archive expands to more than the %s limit; split it into smaller archives",
			formatLimit(totalLimit))
	case st.UncompressedBytes > overallRatioLimit:
		in.rep.add(Rejected, CodeZipBomb, "archive expands more than %g times its size (stopped after %s from a %s archive); it looks like a zip bomb and was not unpacked",
			in.opts.MaxZipRatio, formatBytes(st.UncompressedBytes), formatBytes(in.size))
	default:
		return false
	}
	return true
}

// entryFailed turns an error while reading an entry into a finding, unless
// the cause is reading the object itself, which is returned for a retry.
func (in *zipInspection) entryFailed(f *zip.File, err error) error {
	if in.src.err != nil {
		return in.src.err
	}
	if ctxErr := in.src.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, zip.ErrChecksum):
		in.rep.add(Corrupt, CodeZipDamaged, "entry %s is damaged: its CRC-32 does not match its data; upload the archive again", quoteName(f.Name))
	case errors.As(err, &corrupt):
		in.rep.add(Corrupt, CodeZipDamaged, "entry %s is damaged: its compressed data is invalid (%v); upload the archive again", quoteName(f.Name), err)
	default:
		in.rep.add(Corrupt, CodeZipDamaged, "entry %s is damaged or truncated (%v); upload the archive again", quoteName(f.Name), err)
	}
	return nil
}

// ratioLimit is how many bytes something of the given compressed size may
// expand to: ratio × compressed, but never less than the grace allowance.
func ratioLimit(ratio float64, compressed int64) int64 {
	if ratio <= 0 {
		return math.MaxInt64
	}
	l := ratio * float64(compressed)
	if l >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(int64(l), zipRatioGrace)
}

// span is an entry's compressed data, [start, end).
type span struct {
	start, end int64
	name       string
}

// insertSpan adds s to the sorted, non-overlapping spans, or returns the
// name of an entry it overlaps. Entries usually come in file order, so the
// common case appends.
func insertSpan(spans *[]span, s span) (string, bool) {
	ss := *spans
	i, _ := slices.BinarySearchFunc(ss, s.start, func(e span, t int64) int {
		switch {
		case e.start < t:
			return -1
		case e.start > t:
			return 1
		}
		return 0
	})
	if i > 0 && ss[i-1].end > s.start {
		return ss[i-1].name, false
	}
	if i < len(ss) && ss[i].start < s.end {
		return ss[i].name, false
	}
	*spans = slices.Insert(ss, i, s)
	return "", true
}

// blockReaderAt serves ReadAt from one read-ahead block. archive/zip reads
// headers and compressed data in small pieces; against object storage every
// ReadAt would be a ranged GET. It also records the first error of the
// underlying reader, so that a failed read is reported as an I/O error
// (retry) rather than as a damaged archive, and it can cap how many bytes
// callers may request (see errDirBudget). Not safe for concurrent use.
type blockReaderAt struct {
	ctx   context.Context
	src   io.ReaderAt
	size  int64
	block []byte
	start int64 // offset of block[0] in src
	n     int   // valid bytes in block
	err   error // first failure of src or ctx; sticky
	// budget is how many more bytes callers may request; negative: no cap.
	budget int64
}

func (b *blockReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.budget >= 0 {
		if int64(len(p)) > b.budget {
			return 0, errDirBudget
		}
		b.budget -= int64(len(p))
	}
	if off < 0 {
		return 0, errors.New("verify: negative offset")
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		if pos >= b.size {
			return done, io.EOF
		}
		if pos < b.start || pos >= b.start+int64(b.n) {
			if err := b.fill(pos); err != nil {
				return done, err
			}
		}
		done += copy(p[done:], b.block[pos-b.start:b.n])
	}
	return done, nil
}

func (b *blockReaderAt) fill(pos int64) error {
	if err := b.ctx.Err(); err != nil {
		b.err = err
		return err
	}
	want := min(int64(len(b.block)), b.size-pos)
	n, err := b.src.ReadAt(b.block[:want], pos)
	if int64(n) < want {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("object ended at byte %d, before its reported size of %d: %w",
				pos+int64(n), b.size, io.ErrUnexpectedEOF)
		} else {
			err = fmt.Errorf("read at offset %d: %w", pos, err)
		}
		b.err = err
		b.n = 0
		return err
	}
	b.start, b.n = pos, n
	return nil
}

// quoteName puts an entry name in quotes for a message. Names are shown as
// they are (a Windows path keeps its single backslashes) unless they contain
// something unprintable, which is escaped so it cannot garble a log line.
func quoteName(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '"' {
			return strconv.Quote(s)
		}
	}
	return `"` + s + `"`
}
