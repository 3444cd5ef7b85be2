package verify

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"path"
	"strings"

	"github.com/gabriel-vasile/mimetype"
)

// The archive kinds InspectArchive opens.
const (
	kindZip  = "zip"
	kindTar  = "tar"
	kindGzip = "gzip"
)

// archiveKindOf says which kind of archive t is, or "" for anything else.
func archiveKindOf(t mediaType) string {
	switch {
	case t.within("application/zip"):
		return kindZip
	case t.within("application/x-tar"):
		return kindTar
	case t.within("application/gzip"):
		return kindGzip
	}
	return ""
}

// unopenedArchiveTypes are containers InspectArchive recognises inside an
// archive but can't open; they are noted, not inspected.
var unopenedArchiveTypes = []string{
	"application/x-7z-compressed", "application/vnd.rar", "application/x-bzip2", "application/x-xz",
	"application/zstd", "application/lzip", "application/x-cpio",
}

// errStopped is what a meter returns once a finding has decided the file:
// whoever reads it stops at once and adds nothing.
var errStopped = errors.New("verify: inspection stopped by a finding")

// InspectArchive checks an archive entry by entry, reading it through ra,
// which holds size bytes. The kind is sniffed from the first bytes:
//
//   - a ZIP (or a format built on one) as InspectZip describes;
//   - a tar archive, read as a stream: every entry name must stay inside the
//     extraction folder (no absolute paths, drive letters or ".."
//     components); symbolic and hard links are refused (with
//     AllowZipSymlinks, only those whose target lies outside the archive);
//     device, FIFO and other special entries are refused; the archive must
//     hold files (unless AllowEmpty) and nothing but zero padding may follow
//     its end marker (data hidden there is refused);
//   - a gzip stream, decompressed as a stream with its output counted
//     against MaxZipRatio (output ÷ compressed input, past the first MiB) and
//     MaxZipUncompressed, so a gzip bomb is stopped without being unpacked;
//     a gzip of a tar (.tar.gz) is then inspected as that tar.
//
// Every file inside is sniffed: blocked types are refused, and an archive
// inside is opened in turn, up to MaxArchiveDepth levels (a nested ZIP is
// held in memory for that, up to MaxNestedZipBytes). The entry count, the
// bytes decompressed and the overall expansion ratio are counted across the
// whole tree. Anything else (not an archive) gives a valid report with no
// Archive stats.
//
// The error is non-nil only when reading ra failed or ctx ended: a retry may
// succeed. Everything about the archive itself is in the Report.
func InspectArchive(ctx context.Context, ra io.ReaderAt, size int64, opts Options) (Report, error) {
	t := newTree(ctx, ra, size, opts)
	head := make([]byte, max(0, min(SniffBytes, size)))
	if _, err := t.root.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return Report{}, fmt.Errorf("inspect archive: %w", err)
	}
	var err error
	top := level{depth: 1}
	switch archiveKindOf(fromNode(mimetype.Detect(head))) {
	case kindZip:
		err = t.zip(t.root, size, top)
	case kindTar:
		err = t.tar(io.NewSectionReader(t.root, 0, size), top)
	case kindGzip:
		err = t.gzip(io.NewSectionReader(t.root, 0, size), top)
	default:
		return Report{Verdict: Valid}, nil
	}
	return t.result(err, "inspect archive")
}

// tree is one inspection of a file and every archive nested in it: the
// limits are counted across all of them.
type tree struct {
	ctx  context.Context
	opts Options
	root *blockReaderAt
	size int64 // the file's size
	rep  Report
	// stopped is set with the finding that decided the file.
	stopped bool
	// buf is scratch space for reads whose bytes are only counted.
	buf      []byte
	unopened examples

	totalLimit, overallRatioLimit int64
}

func newTree(ctx context.Context, ra io.ReaderAt, size int64, opts Options) *tree {
	opts = opts.withDefaults()
	t := &tree{
		ctx:  ctx,
		opts: opts,
		root: &blockReaderAt{
			ctx:    ctx,
			src:    ra,
			size:   size,
			block:  make([]byte, max(1, min(int64(opts.ZipBlockSize), size))),
			budget: -1,
		},
		size:              size,
		rep:               Report{Archive: &ArchiveStats{}},
		buf:               make([]byte, 256<<10),
		totalLimit:        math.MaxInt64,
		overallRatioLimit: ratioLimit(opts.MaxZipRatio, size),
	}
	if opts.MaxZipUncompressed > 0 {
		t.totalLimit = opts.MaxZipUncompressed
	}
	return t
}

func (t *tree) result(err error, what string) (Report, error) {
	if err != nil {
		return Report{}, fmt.Errorf("%s: %w", what, err)
	}
	if t.unopened.count > 0 && !t.stopped {
		t.rep.note("archive contains %d nested archive(s) of a kind that is not opened (%s); their contents were not inspected", t.unopened.count, &t.unopened)
	}
	t.rep.finish()
	return t.rep, nil
}

func (t *tree) stats() *ArchiveStats { return t.rep.Archive }

// stop records the finding that decides the file and ends the inspection.
func (t *tree) stop(v Verdict, c Code, format string, args ...any) {
	t.rep.add(v, c, format, args...)
	t.stopped = true
}

// ioErr is the failure of the storage read or the context, if any: then a
// failed read says nothing about the file and is returned for a retry.
func (t *tree) ioErr() error {
	if t.root.err != nil {
		return t.root.err
	}
	return t.ctx.Err()
}

// streamFailed turns an error while reading a tar or gzip stream into a
// finding, unless it is the storage's or the context's (returned) or a
// finding already stopped the inspection.
func (t *tree) streamFailed(err error, what string, l level, after string) error {
	if t.stopped || errors.Is(err, errStopped) {
		return nil
	}
	if ioErr := t.ioErr(); ioErr != nil {
		return ioErr
	}
	t.stop(Corrupt, CodeArchiveDamaged, "%s%s is damaged or truncated%s (%v); upload it again", what, l.archive(), after, err)
	return nil
}

// level is where an archive sits in the tree: its depth (the file itself is
// 1) and the names of the entries that lead to it, outermost first.
type level struct {
	depth int
	names []string
}

func (l level) child(name string) level {
	return level{depth: l.depth + 1, names: append(append([]string(nil), l.names...), name)}
}

// entry names an entry of this level's archive for a message:
// `"x.csv"`, or `"x.csv" in "inner.zip" in "outer.tar"` when nested.
func (l level) entry(name string) string {
	s := quoteName(name)
	for i := len(l.names) - 1; i >= 0; i-- {
		s += " in " + quoteName(l.names[i])
	}
	return s
}

// archive names this level's archive after a noun ("tar archive"): "" for
// the file itself, ` "inner.tar" in "outer.zip"` for a nested one.
func (l level) archive() string {
	if len(l.names) == 0 {
		return ""
	}
	return " " + level{names: l.names[:len(l.names)-1]}.entry(l.names[len(l.names)-1])
}

// meter counts the bytes that come out of one stream (a ZIP entry, a gzip
// stream, a tar entry) and stops reading with a finding when a limit is
// passed: the stream's own expansion ratio, the tree's total, the tree's
// expansion relative to the file's size.
type meter struct {
	t *tree
	r io.Reader
	n int64 // bytes read through this meter
	// what names the stream in a ratio finding.
	what string
	// compressed is the stream's compressed size when known up front (a
	// ZIP entry), in the counted compressed input so far (gzip), or
	// neither: no ratio of its own (tar entries are stored as they are).
	compressed int64
	in         *countingReader
	// uncounted stops the bytes from adding to the tree's total while a
	// nested archive reads them: what that archive's entries yield counts.
	uncounted bool
	// crc, when set, keeps the CRC-32 of the bytes in sum.
	crc bool
	sum uint32
}

func (m *meter) Read(p []byte) (int, error) {
	if m.t.stopped {
		return 0, errStopped
	}
	k, err := m.r.Read(p)
	if k > 0 {
		m.n += int64(k)
		if !m.uncounted {
			m.t.stats().UncompressedBytes += int64(k)
		}
		if m.crc {
			m.sum = crc32.Update(m.sum, crc32.IEEETable, p[:k])
		}
		if m.t.overLimit(m) {
			return k, errStopped
		}
	}
	return k, err
}

// overLimit records a finding and reports true when reading must stop.
func (t *tree) overLimit(m *meter) bool {
	st := t.stats()
	compressed, ratio := int64(-1), false
	switch {
	case m.in != nil:
		compressed, ratio = m.in.n, true
	case m.compressed >= 0:
		compressed, ratio = m.compressed, true
	}
	switch {
	case ratio && m.n > ratioLimit(t.opts.MaxZipRatio, compressed):
		if m.in != nil {
			t.stop(Rejected, CodeZipBomb, "%s expands more than %g times (stopped after %s from %s compressed); it looks like a compression bomb and was not unpacked",
				m.what, t.opts.MaxZipRatio, formatBytes(m.n), formatBytes(compressed))
		} else {
			t.stop(Rejected, CodeZipBomb, "%s expands more than %g times (stopped after %s from %s compressed); the archive looks like a zip bomb and was not unpacked",
				m.what, t.opts.MaxZipRatio, formatBytes(m.n), formatBytes(compressed))
		}
	case st.UncompressedBytes > t.totalLimit:
		t.stop(Rejected, CodeZipTooLarge, "archive expands to more than the %s limit, counting everything inside it; split it into smaller archives",
			formatLimit(t.totalLimit))
	case st.UncompressedBytes > t.overallRatioLimit:
		t.stop(Rejected, CodeZipBomb, "archive expands more than %g times its size (stopped after %s from a %s archive); it looks like a zip bomb and was not unpacked",
			t.opts.MaxZipRatio, formatBytes(st.UncompressedBytes), formatBytes(t.size))
	default:
		return false
	}
	return true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

// content inspects one file inside an archive as its bytes come out of m:
// its type is sniffed (blocked types are refused), an archive is opened one
// level down, and the rest is read to the end so that every limit and
// checksum applies. The error is the stream's own (the caller decides what
// it means); findings stop the inspection.
// br, when not nil, is a reader over m that has already been peeked at.
func (t *tree) content(m *meter, br *bufio.Reader, name string, l level) error {
	if br == nil {
		br = bufio.NewReaderSize(m, SniffBytes)
	}
	head, err := br.Peek(SniffBytes)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(head) > 0 {
		mt := fromNode(mimetype.Detect(head))
		if mt.blocked() != "" {
			t.stop(Rejected, CodeZipBlockedEntry, "entry %s is %s, a program or installer; archives may not contain them, remove it and upload the archive again", l.entry(name), mt.name)
			return nil
		}
		if kind := archiveKindOf(mt); kind != "" {
			// What the nested archive yields counts, not the archive
			// itself, including the bytes just sniffed.
			if !m.uncounted {
				t.stats().UncompressedBytes -= int64(len(head))
			}
			was := m.uncounted
			m.uncounted = true
			err := t.nested(kind, br, name, l)
			m.uncounted = was
			if err != nil || t.stopped {
				return err
			}
		} else {
			for _, a := range unopenedArchiveTypes {
				if mt.within(a) {
					t.stats().NestedArchives++
					t.unopened.add(l.entry(name))
					break
				}
			}
		}
	}
	return t.drain(br)
}

// drain reads r to its end.
func (t *tree) drain(r io.Reader) error {
	for {
		if _, err := r.Read(t.buf); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// nested opens an archive found as entry name of the archive at level l.
func (t *tree) nested(kind string, r io.Reader, name string, l level) error {
	t.stats().NestedArchives++
	child := l.child(name)
	if child.depth > t.opts.MaxArchiveDepth {
		t.stop(Rejected, CodeArchiveTooDeep, "nested archive depth %d exceeds the limit of %d: entry %s is an archive inside %d levels of archives; unpack the inner archives and upload their contents instead",
			child.depth, t.opts.MaxArchiveDepth, l.entry(name), l.depth)
		return nil
	}
	switch kind {
	case kindTar:
		return t.tar(r, child)
	case kindGzip:
		return t.gzip(r, child)
	}
	// A ZIP needs random access: hold it in memory, within bounds.
	var b []byte
	for {
		k, err := r.Read(t.buf)
		b = append(b, t.buf[:k]...)
		if int64(len(b)) > t.opts.MaxNestedZipBytes {
			t.stop(Rejected, CodeNestedArchiveTooBig, "entry %s is a ZIP archive larger than %s, the most that can be checked inside another archive; upload it as a file of its own",
				l.entry(name), formatLimit(t.opts.MaxNestedZipBytes))
			return nil
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	size := int64(len(b))
	src := &blockReaderAt{ctx: t.ctx, src: bytes.NewReader(b), size: size, block: make([]byte, max(1, min(64<<10, size))), budget: -1}
	return t.zip(src, size, child)
}

// tar inspects a tar stream at level l.
func (t *tree) tar(r io.Reader, l level) error {
	st := t.stats()
	tr := tar.NewReader(r)
	var unsafe, special examples
	entries, files := 0, 0
	for {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return t.streamFailed(err, "tar archive", l, fmt.Sprintf(" after %d entries", entries))
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		entries++
		st.Entries++
		if t.opts.MaxZipEntries > 0 && st.Entries > t.opts.MaxZipEntries {
			t.stop(Rejected, CodeZipTooManyEntries, "archive has more than %s entries%s, the limit; split it into smaller archives",
				groupThousands(int64(t.opts.MaxZipEntries)), countingNested(l))
			return nil
		}
		label := fmt.Sprintf("entry %d %s", entries, l.entry(h.Name))
		if reason := unsafeEntryName(h.Name); reason != "" {
			unsafe.add(label + " (" + reason + ")")
		}
		regular := false
		switch h.Typeflag {
		case tar.TypeReg, '\x00', tar.TypeCont, tar.TypeGNUSparse:
			regular = true
		case tar.TypeDir:
		case tar.TypeSymlink, tar.TypeLink:
			what := "symbolic link"
			if h.Typeflag == tar.TypeLink {
				what = "hard link"
			}
			switch {
			case linkEscapes(h):
				special.add(fmt.Sprintf("%s (%s to %s, outside the archive)", label, what, quoteName(h.Linkname)))
			case !t.opts.AllowZipSymlinks:
				special.add(fmt.Sprintf("%s (%s to %s)", label, what, quoteName(h.Linkname)))
			}
		case tar.TypeChar, tar.TypeBlock:
			special.add(label + " (device)")
		case tar.TypeFifo:
			special.add(label + " (named pipe)")
		default:
			special.add(fmt.Sprintf("%s (entry type %q, not a regular file)", label, h.Typeflag))
		}
		if !regular || unsafe.count+special.count > 0 {
			// Once a name has failed, the rest is only listed (Next reads
			// past each entry's data, still through the meters above).
			continue
		}
		m := &meter{t: t, r: tr, compressed: -1}
		if err := t.content(m, nil, h.Name, l); err != nil || t.stopped {
			return t.streamFailed(err, "tar archive", l, fmt.Sprintf(" in entry %d %s", entries, quoteName(h.Name)))
		}
		files++
		st.Files++
	}
	if unsafe.count > 0 {
		t.stop(Rejected, CodeZipUnsafePath, "archive%s has entries that would be written outside the folder it is extracted to: %s; re-create the archive with relative paths", l.archive(), &unsafe)
	}
	if special.count > 0 {
		t.stop(Rejected, CodeZipSpecialFile, "archive%s has entries that are not regular files: %s; re-create the archive from the files themselves", l.archive(), &special)
	}
	if t.stopped {
		return nil
	}
	// tar stops reading at its end marker; anything but padding after it is
	// a second file riding along (a ZIP appended to a tar opens as a ZIP).
	var extra, nonZero int64
	for {
		k, err := r.Read(t.buf)
		extra += int64(k)
		for _, c := range t.buf[:k] {
			if c != 0 {
				nonZero++
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return t.streamFailed(err, "tar archive", l, " after its end marker")
		}
	}
	if nonZero > 0 {
		t.stop(Rejected, CodePolyglot, "tar archive%s has %s of data after its end marker, which tar ignores but other programs may open; re-create the archive with a standard tool",
			l.archive(), formatBytes(extra))
		return nil
	}
	if files == 0 && l.depth == 1 && !t.opts.AllowEmpty {
		t.stop(Rejected, CodeEmpty, "archive contains no files; upload it again with its content")
	}
	return nil
}

// countingNested qualifies an entry count for a nested archive.
func countingNested(l level) string {
	if l.depth > 1 {
		return " counting those of the archives inside it"
	}
	return ""
}

// linkEscapes reports whether a tar link's target lies outside the
// archive: absolute, or climbing above its root. A symbolic link is
// resolved from its own folder, a hard link from the archive's root.
func linkEscapes(h *tar.Header) bool {
	target := strings.ReplaceAll(h.Linkname, `\`, "/")
	if target == "" {
		return false
	}
	switch unsafeEntryName(target) {
	case "absolute path", "drive letter", "NUL byte in name":
		return true
	}
	base := "."
	if h.Typeflag == tar.TypeSymlink {
		base = path.Dir(strings.ReplaceAll(h.Name, `\`, "/"))
	}
	p := path.Join(base, target)
	return p == ".." || strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/")
}

// gzip inspects a gzip stream at level l: its expansion is bounded as it
// is decompressed, a tar inside is inspected at the same level (a .tar.gz
// is one archive), anything else as one file inside an archive.
func (t *tree) gzip(r io.Reader, l level) error {
	in := &countingReader{r: r}
	zr, err := gzip.NewReader(in)
	if err != nil {
		return t.streamFailed(err, "gzip stream", l, "")
	}
	defer func() { _ = zr.Close() }() // read side; closing frees nothing that matters
	what := "gzip stream"
	if len(l.names) > 0 {
		what = "gzip stream " + level{names: l.names[:len(l.names)-1]}.entry(l.names[len(l.names)-1])
	}
	m := &meter{t: t, r: zr, in: in, what: what}
	br := bufio.NewReaderSize(m, SniffBytes)
	head, err := br.Peek(SniffBytes)
	if err != nil && !errors.Is(err, io.EOF) {
		return t.streamFailed(err, "gzip stream", l, "")
	}
	if len(head) == 0 {
		if l.depth == 1 && !t.opts.AllowEmpty {
			t.stop(Rejected, CodeEmpty, "compressed file contains no data; upload it again with its content")
		}
		return nil
	}
	if archiveKindOf(fromNode(mimetype.Detect(head))) == kindTar {
		// The tar's entries count, not the tar stream (headers, padding).
		t.stats().UncompressedBytes -= int64(len(head))
		m.uncounted = true
		return t.tar(br, l)
	}
	name := zr.Name
	if name == "" {
		name = "(compressed content)"
	}
	if err := t.content(m, br, name, l); err != nil {
		return t.streamFailed(err, "gzip stream", l, "")
	}
	if !t.stopped {
		t.stats().Files++
	}
	return nil
}

// appendedZip reports whether m's content, a type other than ZIP or tar,
// ends with a ZIP archive, and how far from the end of the file that
// archive's end-of-central-directory record starts. A ZIP reader looks for
// that record in the last TailBytes of a file whatever comes before it, so
// such a file opens as an archive (a "polyglot"). Tar is left to
// InspectArchive: a ZIP may be a tar's last entry, and data after the tar's
// end is refused there.
func appendedZip(m Measurement) (int64, bool) {
	tail := m.tail
	if len(tail) < directoryEndLen || m.IsZip() {
		return 0, false
	}
	if n := m.mimeNode(); n != nil && fromNode(n).within("application/x-tar") {
		return 0, false
	}
	tailStart := m.Size - int64(len(tail))
	sig := []byte("PK\x05\x06")
	for end := len(tail); end >= len(sig); {
		i := bytes.LastIndex(tail[:end], sig)
		if i < 0 {
			break
		}
		if plausibleDirectoryEnd(tail, i, tailStart) {
			return int64(len(tail) - i), true
		}
		end = i + len(sig) - 1
	}
	return 0, false
}

const directoryEndLen = 22

// plausibleDirectoryEnd checks that the signature at tail[i] starts a
// record a ZIP reader would accept: it fits before the end with its
// comment, describes a single-disk archive with entries, and its central
// directory (which sits just before it in an appended archive) starts with
// a central directory header when that lies within the tail. Random bytes
// in compressed image data pass these checks about never.
func plausibleDirectoryEnd(tail []byte, i int, tailStart int64) bool {
	rec := tail[i:]
	if len(rec) < directoryEndLen {
		return false
	}
	le := binary.LittleEndian
	if directoryEndLen+int(le.Uint16(rec[20:])) > len(rec) {
		return false
	}
	disk, dirDisk := le.Uint16(rec[4:]), le.Uint16(rec[6:])
	onDisk, entries := le.Uint16(rec[8:]), le.Uint16(rec[10:])
	dirSize, dirOffset := le.Uint32(rec[12:]), le.Uint32(rec[16:])
	if entries == 0xffff || dirSize == 0xffffffff || dirOffset == 0xffffffff {
		return true // ZIP64: the real values are in the ZIP64 record before it
	}
	if disk != 0 || dirDisk != 0 || onDisk != entries || entries == 0 {
		return false
	}
	if int64(dirSize) < 46*int64(entries) {
		return false
	}
	dirStart := tailStart + int64(i) - int64(dirSize)
	if dirStart < 0 {
		return false
	}
	if dirStart >= tailStart {
		j := dirStart - tailStart
		return bytes.HasPrefix(tail[j:], []byte("PK\x01\x02"))
	}
	return true
}
