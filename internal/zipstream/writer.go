package zipstream

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/maphash"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"
)

// Defaults for [Options]. The level was tuned on generated CSV text with
// BenchmarkPack2000x512KiB (make bench; run it with DefaultLevel changed to
// compare levels), which packs against Info-ZIP "zip -6" over the same files
// in the same run. klauspost level 6 compresses the text almost as well as
// level 7 at a fraction of its time and only slightly worse than Info-ZIP,
// which keeps whole archives within 2% of "zip -6" in size (the benchmark's
// size_ratio). klauspost rather than compress/flate for speed; zlib is not
// in the benchmark.
const (
	DefaultConcurrency   = 4
	DefaultSmallEntryMax = 8 << 20
	DefaultMaxBuffered   = 64 << 20
	DefaultLevel         = 6
)

// Options configure a [Writer]. The zero value is usable.
type Options struct {
	// Modified is the timestamp stored for every entry (use the export's
	// creation time). Entries all share it so that identical inputs give
	// identical archives. Zero, or anything before 1980 (the MS-DOS epoch),
	// means 1980-01-01 00:00:00 UTC.
	Modified time.Time
	// Concurrency is how many entries are fetched, hashed and compressed at
	// once. Default DefaultConcurrency.
	Concurrency int
	// SmallEntryMax is the largest entry that is buffered by a worker;
	// larger entries stream through the writing goroutine in their turn.
	// Default DefaultSmallEntryMax.
	SmallEntryMax int64
	// MaxBuffered bounds the bytes of entry data held in memory at once
	// (compressed data waiting for its turn). Default DefaultMaxBuffered.
	MaxBuffered int64
	// Level is the deflate level, 1 (fastest) to 9. Default DefaultLevel.
	Level int
	// Progress, if set, is called from the goroutine that called Pack or
	// Close after entries are written, at most once per ProgressInterval,
	// and always once when Pack or Close returns. It must be quick: the
	// archive does not advance while it runs.
	Progress func(Progress)
	// ProgressInterval throttles Progress; zero reports every entry.
	ProgressInterval time.Duration
	// OnEntry, if set, is called with each entry's result as soon as the
	// entry is in the archive, from the goroutine that called Pack, Create,
	// AddSpool or Close: for a manifest written entry by entry
	// ([ManifestWriter]) rather than from [Writer.Result] at the end.
	OnEntry func(EntryResult)
	// DiscardResults keeps no per-entry results: Pack still returns its own,
	// but [Writer.Result] has the totals only. For archives of very many
	// entries whose caller takes the results through OnEntry.
	DiscardResults bool
	// Spiller, if set, takes the central directory and spooled entries
	// (kept deflated until the end) past SpillAfter bytes of each, so that
	// memory stays flat in the number of entries; see [Spiller]. Without
	// one they stay in memory: about 50 bytes an entry with its manifest
	// line.
	Spiller Spiller
	// SpillAfter is how many deflated bytes of each such stream are held
	// before they are spilled. Default DefaultSpillAfter.
	SpillAfter int64
}

// Progress is a snapshot of a Writer's work.
type Progress struct {
	FilesDone  int
	FilesTotal int // entries passed to Pack so far
	BytesDone  int64
	BytesTotal int64 // sum of declared sizes passed to Pack so far
	// ArchiveBytes is what has reached the destination writer (up to 4 KiB
	// may still sit in the archive's write buffer until Close).
	ArchiveBytes int64
}

// EntryResult describes one packed entry.
type EntryResult struct {
	Path           string
	VersionID      int64
	SHA256         string // hex, computed from the bytes packed
	Size           int64
	CompressedSize int64
	CRC32          uint32
	Method         uint16 // zip.Store or zip.Deflate
}

// Result describes everything a Writer packed.
type Result struct {
	Entries         []EntryResult
	Files           int
	Bytes           int64 // uncompressed
	CompressedBytes int64 // entry data only, without headers
}

// Writer writes one ZIP archive. Pack may be called several times to append
// entries (for example to write the manifest after the files); Close writes
// the central directory. A Writer is not safe for concurrent use. After any
// error from Pack the archive is unusable and every later call returns that
// error.
type Writer struct {
	opts     Options
	dst      *countWriter
	zw       *rawWriter
	dosDate  uint16
	dosTime  uint16
	unixTime uint32

	chunks chunkPool
	flates sync.Pool // *flate.Writer at opts.Level

	// files and dirs hold every path and directory taken, folded, as a
	// 128-bit hash (two seeded 64-bit hashes): 16 bytes a name where the
	// strings cost a hundred. A new name is refused only when both hashes
	// equal an earlier name's, which for distinct names has a chance of
	// about n²/2¹²⁹ (1e-29 at 100,000 names).
	files, dirs  map[nameKey]struct{}
	seedA, seedB maphash.Seed
	results      []EntryResult
	total        Result // totals of every entry recorded, kept with DiscardResults too
	// open is the entry Create returned until it is finished; createSHA and
	// createFlate are reused from one created entry to the next.
	open        *created
	createSHA   hash.Hash
	createFlate *flate.Writer
	prog        Progress
	lastRep     time.Time
	err         error
	closed      bool
}

// NewWriter returns a Writer that writes an archive to dst.
func NewWriter(dst io.Writer, opts Options) *Writer {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.SmallEntryMax <= 0 {
		opts.SmallEntryMax = DefaultSmallEntryMax
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = DefaultMaxBuffered
	}
	if opts.Level == 0 {
		opts.Level = DefaultLevel
	}
	mod := opts.Modified.UTC().Truncate(time.Second)
	if epoch := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC); mod.Before(epoch) {
		mod = epoch
	}
	cw := &countWriter{w: dst}
	w := &Writer{
		opts: opts,
		dst:  cw,
		// UTC, not the server's zone, so the bytes do not depend on where
		// the worker runs; Info-ZIP and most readers prefer the extended
		// timestamp (exact Unix time) anyway.
		dosDate:  uint16(mod.Day() + int(mod.Month())<<5 + (mod.Year()-1980)<<9),
		dosTime:  uint16(mod.Second()/2 + mod.Minute()<<5 + mod.Hour()<<11),
		unixTime: uint32(mod.Unix()),
		files:    make(map[nameKey]struct{}),
		dirs:     make(map[nameKey]struct{}),
		seedA:    maphash.MakeSeed(),
		seedB:    maphash.MakeSeed(),
	}
	w.zw = newRawWriter(cw, &w.chunks, opts.Spiller, opts.SpillAfter)
	return w
}

// nameKey is a folded name's key in Writer.names.
type nameKey struct{ a, b uint64 }

func (w *Writer) nameKey(folded string) nameKey {
	return nameKey{maphash.String(w.seedA, folded), maphash.String(w.seedB, folded)}
}

// Pack writes entries to the archive, in order, and returns one result per
// entry. Invalid entries are reported before anything is written (errors
// wrap ErrInvalidEntry). Other failures name the entry: *EntryError for
// open and read errors, *ChecksumMismatchError, *SizeMismatchError, or the
// context's error when ctx ends. Pack returns only after every goroutine it
// started has stopped and every reader it opened is closed.
func (w *Writer) Pack(ctx context.Context, entries []Entry) ([]EntryResult, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.closed {
		return nil, errors.New("zipstream: Pack after Close")
	}
	if w.opts.Level < flate.BestSpeed || w.opts.Level > flate.BestCompression {
		return nil, fmt.Errorf("zipstream: deflate level %d out of range 1-9", w.opts.Level)
	}
	if err := w.finishCreated(); err != nil {
		return nil, err
	}
	if err := w.admit(entries); err != nil {
		return nil, err
	}
	for i := range entries {
		w.prog.FilesTotal++
		w.prog.BytesTotal += entries[i].Size
	}
	res, err := w.run(ctx, entries)
	if err != nil {
		w.err = err
	}
	w.report(true)
	return res, err
}

// Close writes the central directory and flushes. It does not close the
// destination.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("zipstream: Close called twice")
	}
	if err := w.finishCreated(); err != nil {
		return err
	}
	w.closed = true
	if err := w.zw.close(); err != nil {
		w.err = fmt.Errorf("zipstream: write central directory: %w", err)
		return w.err
	}
	w.report(true)
	return nil
}

// Result returns every entry packed so far (none with DiscardResults) and the
// totals. An entry Create returned counts once it is finished.
func (w *Writer) Result() Result {
	r := w.total
	r.Entries = append([]EntryResult(nil), w.results...)
	return r
}

// Pack writes a complete archive of entries to dst: NewWriter, Pack, Close.
func Pack(ctx context.Context, dst io.Writer, entries []Entry, opts Options) (Result, error) {
	w := NewWriter(dst, opts)
	if _, err := w.Pack(ctx, entries); err != nil {
		return Result{}, err
	}
	if err := w.Close(); err != nil {
		return Result{}, err
	}
	return w.Result(), nil
}

// admit validates a batch as a whole, so that a bad entry late in the list
// fails the pack before the first byte is written.
func (w *Writer) admit(entries []Entry) error {
	added := make(map[string]bool)
	lookup := func(k string) (isDir, ok bool) {
		if isDir, ok = added[k]; ok {
			return isDir, ok
		}
		hk := w.nameKey(k)
		if _, ok := w.dirs[hk]; ok {
			return true, true
		}
		_, ok = w.files[hk]
		return false, ok
	}
	for i := range entries {
		e := &entries[i]
		bad := func(format string, args ...any) error {
			return fmt.Errorf("zipstream: entry %d %q: %w: %s", i, e.Path, ErrInvalidEntry, fmt.Sprintf(format, args...))
		}
		if err := ValidPath(e.Path); err != nil {
			return fmt.Errorf("zipstream: entry %d: %w", i, err)
		}
		switch {
		case e.Size < 0:
			return bad("negative size %d", e.Size)
		case e.Open == nil:
			return bad("no opener")
		case e.Compress > CompressDeflate:
			return bad("unknown compression %d", e.Compress)
		case e.SHA256 != "" && !isHexSHA256(e.SHA256):
			return bad("recorded sha256 %q is not 64 hex digits", e.SHA256)
		}
		// Reject names that would collide on a case-insensitive file
		// system, and a file where another entry needs a directory.
		key := foldKey(e.Path)
		if isDir, ok := lookup(key); ok {
			if isDir {
				return bad("path is also a directory of another entry")
			}
			return bad("duplicate path (case-insensitive)")
		}
		// Walk the original path, not the key: folding can change byte
		// lengths ("ſ" folds to "S").
		for j := 0; j < len(e.Path); j++ {
			if e.Path[j] != '/' {
				continue
			}
			dir := foldKey(e.Path[:j])
			if isDir, ok := lookup(dir); ok && !isDir {
				return bad("directory %q is also a file entry", e.Path[:j])
			}
			added[dir] = true
		}
		added[key] = false
	}
	for k, isDir := range added {
		if isDir {
			w.dirs[w.nameKey(k)] = struct{}{}
		} else {
			w.files[w.nameKey(k)] = struct{}{}
		}
	}
	return nil
}

func isHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// job is one entry moving through the pipeline. Buffered jobs are filled by
// a worker and handed to the writing goroutine through done; streamed jobs
// only keep their place in the order.
type job struct {
	e       *Entry
	index   int
	reserve int64         // budget bytes held
	done    chan struct{} // nil for streamed entries

	// Set by the worker before done is closed.
	buf    chunkBuf
	method uint16
	st     copyStats
	err    error
}

// pipeline is the state of one run. The dispatcher puts every entry on order,
// in input order, and hands the small ones to the workers through work; the
// goroutine that called Pack takes them off order and writes them.
type pipeline struct {
	w       *Writer
	parent  context.Context // the caller's
	ctx     context.Context // parent, also cancelled when run returns
	entries []Entry
	bud     *budget
	order   chan *job
	work    chan *job
	stream  *packer // for streamed entries, made on first use
}

// run packs entries through the pipeline: fetching, hashing and compressing
// small entries concurrently (startWorkers, dispatch) while writing every
// entry in input order (writeInOrder).
func (w *Writer) run(parent context.Context, entries []Entry) ([]EntryResult, error) {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	// Stop and wait on every return path: workers close their readers on
	// the way out, so after this nothing opened by Pack is left open.
	defer func() {
		cancel()
		wg.Wait()
	}()

	pl := &pipeline{
		w:       w,
		parent:  parent,
		ctx:     ctx,
		entries: entries,
		bud:     newBudget(w.opts.MaxBuffered),
		// order's capacity bounds how far fetching may run ahead of
		// writing in entries, as the budget does in bytes.
		order: make(chan *job, 512),
		work:  make(chan *job),
	}
	defer func() {
		if pl.stream != nil {
			pl.stream.release()
		}
	}()
	pl.startWorkers(&wg)
	wg.Go(pl.dispatch)
	return pl.writeInOrder()
}

// startWorkers starts opts.Concurrency goroutines that read, hash and
// compress the small entries dispatch hands them, each into its job's
// buffer.
func (pl *pipeline) startWorkers(wg *sync.WaitGroup) {
	for range pl.w.opts.Concurrency {
		wg.Go(func() {
			p := pl.w.newPacker()
			defer p.release()
			for j := range pl.work {
				pl.w.bufferEntry(pl.ctx, p, j, pl.bud)
				close(j.done)
			}
		})
	}
}

// dispatch queues every entry on order and passes the small ones, once
// their budget is reserved, to the workers. It stops early only when ctx
// ends; closing the channels tells the workers and writeInOrder.
func (pl *pipeline) dispatch() {
	defer close(pl.work)
	defer close(pl.order)
	for i := range pl.entries {
		j := &job{e: &pl.entries[i], index: i}
		small := j.e.Size <= pl.w.opts.SmallEntryMax
		if small {
			j.reserve = reserveFor(j.e.Size)
			if pl.bud.acquire(pl.ctx, j.reserve) != nil {
				return
			}
			j.buf.pool = &pl.w.chunks
			j.done = make(chan struct{})
		}
		if !pl.send(pl.order, j) {
			return
		}
		if small && !pl.send(pl.work, j) {
			return
		}
	}
}

// send passes j on ch, unless ctx ends first.
func (pl *pipeline) send(ch chan<- *job, j *job) bool {
	select {
	case ch <- j:
		return true
	case <-pl.ctx.Done():
		return false
	}
}

// writeInOrder takes the jobs off order and writes each entry into the
// archive, recording its result, until all are written or one fails.
func (pl *pipeline) writeInOrder() ([]EntryResult, error) {
	results := make([]EntryResult, 0, len(pl.entries))
	for len(results) < len(pl.entries) {
		next := len(results)
		// Checked first: a select with several ready cases picks one at
		// random, and nothing more should be written once ctx has ended.
		if err := pl.ctx.Err(); err != nil {
			return results, pl.stopped(next, err)
		}
		var j *job
		select {
		case j = <-pl.order:
		case <-pl.ctx.Done():
			return results, pl.stopped(next, pl.ctx.Err())
		}
		if j == nil { // dispatcher stopped: only when ctx ended
			return results, pl.stopped(next, pl.ctx.Err())
		}
		res, err := pl.write(j)
		if err != nil {
			return results, pl.stopped(j.index, err)
		}
		results = append(results, res)
		pl.w.record(res)
	}
	return results, nil
}

// write writes one entry into the archive: a buffered one once its worker
// is done with it (then gives back its chunks and budget), a streamed one
// straight from its reader.
func (pl *pipeline) write(j *job) (EntryResult, error) {
	if j.done == nil {
		if pl.stream == nil {
			pl.stream = pl.w.newPacker()
		}
		return pl.w.streamEntry(pl.ctx, pl.stream, j.e)
	}
	select {
	case <-j.done:
	case <-pl.ctx.Done():
		return EntryResult{}, pl.ctx.Err()
	}
	if j.err != nil {
		return EntryResult{}, j.err
	}
	res, err := pl.w.writeBuffered(j)
	j.buf.release()
	pl.bud.release(j.reserve)
	return res, err
}

// stopped is the error run returns when entry i fails with err: when the
// caller's ctx has ended, that, naming where the archive stopped.
func (pl *pipeline) stopped(i int, err error) error {
	if perr := pl.parent.Err(); perr != nil {
		return fmt.Errorf("zipstream: stopped before entry %d %q: %w", i, pl.entries[i].Path, perr)
	}
	return err
}

// record adds a written entry to the Writer's results and progress.
func (w *Writer) record(res EntryResult) {
	if !w.opts.DiscardResults {
		w.results = append(w.results, res)
	}
	w.total.Files++
	w.total.Bytes += res.Size
	w.total.CompressedBytes += res.CompressedSize
	if w.opts.OnEntry != nil {
		w.opts.OnEntry(res)
	}
	w.prog.FilesDone++
	w.prog.BytesDone += res.Size
	w.report(false)
}

// bufferEntry reads, hashes and compresses a small entry into j.buf.
func (w *Writer) bufferEntry(ctx context.Context, p *packer, j *job, bud *budget) {
	if err := ctx.Err(); err != nil {
		j.err = err
		return
	}
	e := j.e
	j.method, j.st, j.err = p.pack(ctx, e, &j.buf, nil)
	if j.err != nil {
		j.buf.release()
	}
	// Give back what the reservation over-estimated (most of it, for text)
	// so the dispatcher can admit more entries while this one waits.
	held := j.buf.capacity()
	bud.release(j.reserve - held)
	j.reserve = held
}

func (w *Writer) writeBuffered(j *job) (EntryResult, error) {
	fh := w.header(j.e.Path, j.method)
	fh.CRC32 = j.st.crc
	fh.CompressedSize64 = uint64(j.st.compressed)
	fh.UncompressedSize64 = uint64(j.st.n)
	zf, err := w.zw.createRaw(fh)
	if err == nil {
		err = j.buf.writeTo(zf)
	}
	if err != nil {
		return EntryResult{}, fmt.Errorf("zipstream: write %s: %w", j.e.Path, err)
	}
	return j.st.result(j.e, j.method), nil
}

// streamEntry copies a large entry straight into the archive. The CRC and
// sizes are only known at the end, so the header announces a data
// descriptor, written (64-bit when needed) from fh when the next entry
// starts or the archive is closed.
func (w *Writer) streamEntry(ctx context.Context, p *packer, e *Entry) (EntryResult, error) {
	var fh *zip.FileHeader
	method, st, err := p.pack(ctx, e, nil, func(method uint16) (io.Writer, error) {
		fh = w.header(e.Path, method)
		fh.Flags |= 0x8
		zf, err := w.zw.createRaw(fh)
		if err != nil {
			return nil, fmt.Errorf("zipstream: write %s: %w", e.Path, err)
		}
		return zf, nil
	})
	if err != nil {
		return EntryResult{}, err
	}
	fh.CRC32 = st.crc
	fh.CompressedSize64 = uint64(st.compressed)
	fh.UncompressedSize64 = uint64(st.n)
	setLegacySizes(fh)
	return st.result(e, method), nil
}

// setLegacySizes fills the 32-bit size fields (and the ZIP64 reader version)
// of a header whose sizes were unknown when CreateRaw wrote it. Deprecated
// for callers of archive/zip's Create, these fields are still what the
// central directory holds for an entry under 4 GiB, and createRaw derives
// them only from the sizes it is given up front.
//
//nolint:staticcheck // SA1019: see above; createRaw needs them.
func setLegacySizes(fh *zip.FileHeader) {
	if fh.CompressedSize64 >= 0xffffffff || fh.UncompressedSize64 >= 0xffffffff {
		fh.CompressedSize = 0xffffffff
		fh.UncompressedSize = 0xffffffff
		fh.ReaderVersion = 45 // ZIP64
	} else {
		fh.CompressedSize = uint32(fh.CompressedSize64)
		fh.UncompressedSize = uint32(fh.UncompressedSize64)
	}
}

// header builds what archive/zip's CreateHeader would, which CreateRaw
// leaves to the caller: version fields, the UTF-8 flag, both timestamps and
// Unix permissions (0644, so extracted files are not executable).
func (w *Writer) header(name string, method uint16) *zip.FileHeader {
	fh := &zip.FileHeader{Name: name, Method: method}
	fh.SetMode(0o644)
	fh.CreatorVersion = fh.CreatorVersion&0xff00 | 20
	fh.ReaderVersion = 20
	for i := 0; i < len(name); i++ {
		// Same rule as archive/zip: only flag names that are not plain
		// CP-437-compatible ASCII, for readers without UTF-8 support.
		if c := name[i]; c >= 0x7e || c < 0x20 || c == '\\' {
			fh.Flags |= 0x800
			break
		}
	}
	// Deprecated in favour of Modified, which only Create and CreateHeader
	// turn into these fields; CreateRaw writes them as given.
	fh.ModifiedDate, fh.ModifiedTime = w.dosDate, w.dosTime //nolint:staticcheck // SA1019: see above
	// Extended timestamp (0x5455), as archive/zip and Info-ZIP write it.
	t := w.unixTime
	fh.Extra = []byte{0x55, 0x54, 5, 0, 1, byte(t), byte(t >> 8), byte(t >> 16), byte(t >> 24)}
	return fh
}

// report calls the progress callback, throttled unless final.
func (w *Writer) report(final bool) {
	if w.opts.Progress == nil {
		return
	}
	now := time.Now()
	if !final && w.opts.ProgressInterval > 0 && now.Sub(w.lastRep) < w.opts.ProgressInterval {
		return
	}
	w.lastRep = now
	w.prog.ArchiveBytes = w.dst.n
	w.opts.Progress(w.prog)
}

// packer holds the per-goroutine state for hashing and compressing.
type packer struct {
	w   *Writer
	sha hash.Hash
	buf *chunk
	fw  *flate.Writer
}

func (w *Writer) newPacker() *packer {
	return &packer{w: w, sha: sha256.New(), buf: w.chunks.get()}
}

func (p *packer) release() {
	p.w.chunks.put(p.buf)
	if p.fw != nil {
		p.w.flates.Put(p.fw)
	}
}

func (p *packer) flate(dst io.Writer) *flate.Writer {
	if p.fw == nil {
		if fw, ok := p.w.flates.Get().(*flate.Writer); ok {
			p.fw = fw
		} else {
			// The level was validated in Pack, so this cannot fail.
			p.fw, _ = flate.NewWriter(dst, p.w.opts.Level)
		}
	}
	p.fw.Reset(dst)
	return p.fw
}

type copyStats struct {
	n, compressed int64
	crc           uint32
	sha           string
}

func (st copyStats) result(e *Entry, method uint16) EntryResult {
	return EntryResult{
		Path:           e.Path,
		VersionID:      e.VersionID,
		SHA256:         st.sha,
		Size:           st.n,
		CompressedSize: st.compressed,
		CRC32:          st.crc,
		Method:         method,
	}
}

// pack opens e, inspects its first bytes to choose the method, and copies
// it to dst (or, when dst is nil, to the writer create returns once the
// method is known), hashing every byte and checking size and checksum.
func (p *packer) pack(ctx context.Context, e *Entry, dst io.Writer, create func(method uint16) (io.Writer, error)) (uint16, copyStats, error) {
	var st copyStats
	rc, err := e.Open(ctx)
	if err == nil && rc == nil {
		err = errors.New("opener returned no reader")
	}
	if err != nil {
		return 0, st, &EntryError{Path: e.Path, VersionID: e.VersionID, Op: "open", Err: err}
	}
	// Read side: anything wrong with the data has come from Read.
	defer func() { _ = rc.Close() }()
	readErr := func(err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return &EntryError{Path: e.Path, VersionID: e.VersionID, Op: "read", Err: err}
	}
	// One byte past the declared size is enough to know the object is too
	// long, and stops a wrong size from running away with memory.
	r := io.LimitReader(rc, e.Size+1)

	sample := p.buf[:min(e.Size+1, int64(len(p.buf)))]
	k, err := io.ReadFull(r, sample)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, st, readErr(err)
	}
	sample = sample[:k]
	method := chooseMethod(e, sample[:min(int64(k), e.Size)])
	if dst == nil {
		if dst, err = create(method); err != nil {
			return 0, st, err
		}
	}

	cw := countWriter{w: dst}
	var out io.Writer = &cw
	var fw *flate.Writer
	if method == zip.Deflate {
		fw = p.flate(&cw)
		out = fw
	}
	p.sha.Reset()
	var crc uint32
	var n int64
	write := func(b []byte) error {
		n += int64(len(b))
		if n > e.Size {
			return &SizeMismatchError{Path: e.Path, VersionID: e.VersionID, Expected: e.Size, Got: n}
		}
		p.sha.Write(b)
		crc = crc32.Update(crc, crc32.IEEETable, b)
		if _, err := out.Write(b); err != nil {
			return fmt.Errorf("zipstream: write %s: %w", e.Path, err)
		}
		return nil
	}
	if err := write(sample); err != nil {
		return 0, st, err
	}
	for k == len(p.buf) { // a full sample means there may be more
		if err := ctx.Err(); err != nil {
			return 0, st, err
		}
		var rerr error
		k, rerr = r.Read(p.buf[:])
		if k > 0 {
			if err := write(p.buf[:k]); err != nil {
				return 0, st, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, st, readErr(rerr)
		}
		k = len(p.buf) // a short read is not the end
	}
	if fw != nil {
		if err := fw.Close(); err != nil {
			return 0, st, fmt.Errorf("zipstream: write %s: %w", e.Path, err)
		}
	}
	if n != e.Size {
		return 0, st, &SizeMismatchError{Path: e.Path, VersionID: e.VersionID, Expected: e.Size, Got: n}
	}
	st = copyStats{n: n, compressed: cw.n, crc: crc, sha: hex.EncodeToString(p.sha.Sum(nil))}
	if e.SHA256 != "" && !equalFoldASCII(e.SHA256, st.sha) {
		return 0, st, &ChecksumMismatchError{Path: e.Path, VersionID: e.VersionID, Expected: e.SHA256, Got: st.sha}
	}
	return method, st, nil
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
