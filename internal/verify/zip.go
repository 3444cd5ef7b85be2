package verify

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// ArchiveStats describes what InspectArchive or InspectZip found and read,
// across the file and every archive nested in it.
type ArchiveStats struct {
	// Entries is the number of entries (files and folders) listed.
	Entries int
	// Files is the number of non-folder entries read to the end.
	Files int
	// UncompressedBytes counts bytes actually decompressed, not the sizes
	// the headers claim. When a limit stopped the inspection it is where
	// reading stopped.
	UncompressedBytes int64
	// NestedArchives counts entries that are themselves archives: ZIP, tar
	// and gzip ones are opened, other kinds only noted.
	NestedArchives int
}

// errDirBudget stops archive/zip from parsing more central directory than
// the entry limit can justify; see zipDirBytesPerEntry.
var errDirBudget = errors.New("verify: central directory larger than the entry limit allows")

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
//     the headers are never trusted;
//   - an entry that is itself a ZIP, tar or gzip archive is opened and
//     inspected the same way (see InspectArchive), up to MaxArchiveDepth
//     levels, with the limits counted across the whole tree.
//
// The error is non-nil only when reading ra failed or ctx ended: a retry may
// succeed. Everything about the archive itself is in the Report.
func InspectZip(ctx context.Context, ra io.ReaderAt, size int64, opts Options) (Report, error) {
	t := newTree(ctx, ra, size, opts)
	return t.result(t.zip(t.root, size, level{depth: 1}), "inspect zip")
}

// zip inspects the ZIP archive at level l, read through src; it returns an
// error only for I/O and context failures.
func (t *tree) zip(src *blockReaderAt, size int64, l level) error {
	st := t.stats()
	if t.opts.MaxZipEntries > 0 {
		left := max(0, t.opts.MaxZipEntries-st.Entries)
		src.budget = int64(left)*zipDirBytesPerEntry + zipDirSlack
	}
	zr, err := zip.NewReader(src, size)
	src.budget = -1
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if ioErr := t.ioErr(); ioErr != nil {
			return ioErr
		}
		if src.err != nil {
			return src.err
		}
		t.openFailed(src, err, l)
		return nil
	}

	st.Entries += len(zr.File)
	if t.opts.MaxZipEntries > 0 && st.Entries > t.opts.MaxZipEntries {
		if l.depth == 1 {
			t.stop(Rejected, CodeZipTooManyEntries, "archive has %s entries, more than the limit of %s; split it into smaller archives",
				groupThousands(int64(len(zr.File))), groupThousands(int64(t.opts.MaxZipEntries)))
		} else {
			t.stop(Rejected, CodeZipTooManyEntries, "archive has more than %s entries%s, the limit; split it into smaller archives",
				groupThousands(int64(t.opts.MaxZipEntries)), countingNested(l))
		}
		return nil
	}
	if !t.zipHeaders(zr.File, l) {
		return nil
	}
	return t.zipEntries(src, size, zr.File, l)
}

func (t *tree) openFailed(src *blockReaderAt, err error, l level) {
	switch {
	case errors.Is(err, errDirBudget):
		t.stop(Rejected, CodeZipTooManyEntries, "archive%s's table of contents is larger than its limit of %s entries allows; split it into smaller archives",
			l.archive(), groupThousands(int64(t.opts.MaxZipEntries)))
	case looksLikeZip(src):
		t.stop(Corrupt, CodeZipDamaged, "ZIP archive%s is damaged or truncated (%v); upload it again", l.archive(), err)
	case l.depth > 1:
		t.stop(Corrupt, CodeZipDamaged, "ZIP archive%s can't be opened (%v); upload the archive again", l.archive(), err)
	default:
		t.stop(Rejected, CodeZipInvalid, "file is not a ZIP archive; upload a real .zip file or declare the type it has")
	}
}

// looksLikeZip reports whether the file starts like a ZIP: then a failure to
// open it means damage, not a wrong type.
func looksLikeZip(src *blockReaderAt) bool {
	var head [4]byte
	if _, err := src.ReadAt(head[:], 0); err != nil {
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

// zipHeaders applies the rules that need only the central directory. It
// reports whether the archive passed them.
func (t *tree) zipHeaders(files []*zip.File, l level) bool {
	var unsafe, special, encrypted examples
	nonDir := 0
	for _, f := range files {
		if reason := unsafeEntryName(f.Name); reason != "" {
			unsafe.add(l.entry(f.Name) + " (" + reason + ")")
		}
		mode := f.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			if !t.opts.AllowZipSymlinks {
				special.add(l.entry(f.Name) + " (symbolic link)")
			}
		case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
			special.add(l.entry(f.Name) + " (device, pipe or socket)")
		}
		if f.Flags&0x1 != 0 {
			encrypted.add(l.entry(f.Name))
		}
		if !strings.HasSuffix(f.Name, "/") {
			nonDir++
		}
	}
	if unsafe.count > 0 {
		t.stop(Rejected, CodeZipUnsafePath, "archive%s has entries that would be written outside the folder it is extracted to: %s; re-create the archive with relative paths", l.archive(), &unsafe)
	}
	if special.count > 0 {
		t.stop(Rejected, CodeZipSpecialFile, "archive%s has entries that are not regular files: %s; re-create the archive from the files themselves", l.archive(), &special)
	}
	if encrypted.count > 0 {
		t.stop(Rejected, CodeZipEncrypted, "archive%s has password-protected entries, which can't be checked: %s; upload it without a password", l.archive(), &encrypted)
	}
	if nonDir == 0 && !t.opts.AllowEmpty && l.depth == 1 {
		t.stop(Rejected, CodeEmpty, "archive contains no files; upload it again with its content")
	}
	return !t.stopped
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

// zipEntries decompresses every entry of the ZIP at level l. It stops at
// the first finding.
func (t *tree) zipEntries(src *blockReaderAt, size int64, files []*zip.File, l level) error {
	st := t.stats()
	var spans []span
	first, startsWithEntry := firstLocalData(src)
	seenFirst := false
	for _, f := range files {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		isDir := strings.HasSuffix(f.Name, "/")

		off, err := f.DataOffset()
		if err != nil {
			return t.entryFailed(src, f, err, l)
		}
		seenFirst = seenFirst || off == first
		compressed := int64(f.CompressedSize64)
		if f.CompressedSize64 > math.MaxInt64 || off+compressed > size || off+compressed < off {
			t.stop(Corrupt, CodeZipDamaged, "entry %s extends past the end of the archive; the archive is damaged or truncated, upload it again", l.entry(f.Name))
			return nil
		}
		if compressed > 0 {
			if other, ok := insertSpan(&spans, span{off, off + compressed, f.Name}); !ok {
				t.stop(Rejected, CodeZipOverlap, "entries %s and %s share the same compressed data, a construction used by zip bombs; re-create the archive with a standard tool", l.entry(other), l.entry(f.Name))
				return nil
			}
		}

		rc, err := f.Open()
		if err != nil {
			if errors.Is(err, zip.ErrAlgorithm) {
				t.stop(Rejected, CodeZipUnsupported, "entry %s uses compression method %d, which can't be checked; re-create the archive with standard (deflate) compression", l.entry(f.Name), f.Method)
				return nil
			}
			return t.entryFailed(src, f, err, l)
		}
		m := &meter{
			t: t, r: rc, what: "entry " + l.entry(f.Name), compressed: compressed,
			// archive/zip only verifies a CRC it believes was set; a zero
			// CRC on non-empty data is damage, so compute it for those.
			crc: f.CRC32 == 0 && f.Flags&0x8 == 0,
		}
		if isDir {
			err = t.drain(m)
		} else {
			err = t.content(m, nil, f.Name, l)
		}
		// Closing an entry reader only returns the error its Read already
		// returned (archive/zip and compress/flate keep it).
		_ = rc.Close()
		if t.stopped {
			return nil
		}
		if err != nil {
			return t.entryFailed(src, f, err, l)
		}
		if m.crc && m.n > 0 && m.sum != 0 {
			t.stop(Corrupt, CodeZipDamaged, "entry %s has no CRC-32 recorded although it has data; the archive is damaged, upload it again", l.entry(f.Name))
			return nil
		}
		if !isDir {
			st.Files++
		}
	}
	if startsWithEntry && !seenFirst && len(files) > 0 {
		// archive/zip reads the last table of contents in the file; a
		// file that starts with an entry that table does not list holds a
		// second archive (or its remains) that streaming extractors read.
		t.stop(Rejected, CodePolyglot, "ZIP archive%s starts with an entry its table of contents does not list: two archives are joined in one file, and other programs may extract the hidden one; re-create the archive with a standard tool", l.archive())
	}
	return nil
}

// firstLocalData returns where the data of the local file header at the
// start of src begins, when src starts with one.
func firstLocalData(src *blockReaderAt) (int64, bool) {
	var h [30]byte
	if _, err := src.ReadAt(h[:], 0); err != nil || !bytes.Equal(h[:4], []byte("PK\x03\x04")) {
		return 0, false
	}
	le := binary.LittleEndian
	return 30 + int64(le.Uint16(h[26:])) + int64(le.Uint16(h[28:])), true
}

// entryFailed turns an error while reading an entry into a finding, unless
// the cause is reading the object itself, which is returned for a retry.
func (t *tree) entryFailed(src *blockReaderAt, f *zip.File, err error, l level) error {
	if t.stopped || errors.Is(err, errStopped) {
		return nil
	}
	if ioErr := t.ioErr(); ioErr != nil {
		return ioErr
	}
	if src.err != nil {
		return src.err
	}
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, zip.ErrChecksum):
		t.stop(Corrupt, CodeZipDamaged, "entry %s is damaged: its CRC-32 does not match its data; upload the archive again", l.entry(f.Name))
	case errors.As(err, &corrupt):
		t.stop(Corrupt, CodeZipDamaged, "entry %s is damaged: its compressed data is invalid (%v); upload the archive again", l.entry(f.Name), err)
	default:
		t.stop(Corrupt, CodeZipDamaged, "entry %s is damaged or truncated (%v); upload the archive again", l.entry(f.Name), err)
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
