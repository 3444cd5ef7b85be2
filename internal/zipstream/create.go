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
	"io"

	"github.com/klauspost/compress/flate"
)

// Create adds an entry whose bytes the caller writes through the returned
// writer: content made while the archive is written (an export format's
// files), whose size and checksum nobody knows in advance. Every byte is
// hashed on the way, as in Pack, and the entry's [EntryResult] (with its
// SHA-256) is recorded when it is finished: by the next Create, Pack,
// AddSpool or Close, after which the writer refuses further writes.
//
// The entry is deflated, or stored when mimeType is one [CompressAuto]
// stores (images, archives), and streamed with a data descriptor, so nothing
// of it is buffered beyond the compressor's window. The path is checked as
// Pack checks its entries'.
func (w *Writer) Create(path, mimeType string) (io.Writer, error) {
	if err := w.ready(); err != nil {
		return nil, err
	}
	if err := w.finishCreated(); err != nil {
		return nil, err
	}
	if err := w.admit([]Entry{{Path: path, MIMEType: mimeType, Open: noOpener}}); err != nil {
		return nil, err
	}
	method := uint16(zip.Deflate)
	if classifyMIME(mimeType) == mimeStore {
		method = zip.Store
	}
	fh := w.header(path, method)
	fh.Flags |= 0x8 // sizes and CRC follow the data
	zf, err := w.zw.createRaw(fh)
	if err != nil {
		return nil, w.fail(fmt.Errorf("zipstream: write %s: %w", path, err))
	}
	if w.createSHA == nil {
		w.createSHA = sha256.New()
	}
	w.createSHA.Reset()
	c := &created{w: w, path: path, mimeType: mimeType, fh: fh, sha: w.createSHA}
	c.cw.w = zf
	c.out = &c.cw
	if method == zip.Deflate {
		if w.createFlate == nil {
			// The level was checked by ready, so this cannot fail.
			w.createFlate, _ = flate.NewWriter(&c.cw, w.opts.Level)
		} else {
			w.createFlate.Reset(&c.cw)
		}
		c.fw = w.createFlate
		c.out = c.fw
	}
	w.open = c
	return c, nil
}

// noOpener stands in for the opener admit requires of an entry: a created
// entry is written, not opened.
func noOpener(context.Context) (io.ReadCloser, error) {
	return nil, errors.New("zipstream: a created entry is not opened")
}

// ready reports why the Writer can take no more entries.
func (w *Writer) ready() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("zipstream: entry added after Close")
	}
	if w.opts.Level < flate.BestSpeed || w.opts.Level > flate.BestCompression {
		return fmt.Errorf("zipstream: deflate level %d out of range 1-9", w.opts.Level)
	}
	return nil
}

// fail makes err the Writer's: the archive is unusable from here on.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// created is the entry Create returned, until it is finished.
type created struct {
	w        *Writer
	path     string
	mimeType string
	fh       *zip.FileHeader
	cw       countWriter // compressed bytes, into the archive
	fw       *flate.Writer
	out      io.Writer // fw, or cw when stored
	sha      hash.Hash
	crc      uint32
	n        int64
	done     bool
}

func (c *created) Write(p []byte) (int, error) {
	if c.done {
		return 0, fmt.Errorf("zipstream: write to %s after the next entry started", c.path)
	}
	if c.w.err != nil {
		return 0, c.w.err
	}
	c.sha.Write(p)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	c.n += int64(len(p))
	if _, err := c.out.Write(p); err != nil {
		return 0, c.w.fail(fmt.Errorf("zipstream: write %s: %w", c.path, err))
	}
	return len(p), nil
}

// FinishEntry ends the entry Create returned, if one is still open, and
// records its result (calling OnEntry): what the next Create, Pack, AddSpool
// or Close would do, for a caller that needs the result first (to write the
// entry into a spooled manifest before adding it).
func (w *Writer) FinishEntry() error {
	if w.err != nil {
		return w.err
	}
	return w.finishCreated()
}

// finishCreated ends the entry Create returned, if one is open: it flushes
// the compressor, fills in the header that the data descriptor
// and central directory record are written from, and records the entry's
// result.
func (w *Writer) finishCreated() error {
	c := w.open
	if c == nil {
		return nil
	}
	w.open = nil
	c.done = true
	if c.fw != nil {
		if err := c.fw.Close(); err != nil {
			return w.fail(fmt.Errorf("zipstream: write %s: %w", c.path, err))
		}
	}
	c.fh.CRC32 = c.crc
	c.fh.CompressedSize64 = uint64(c.cw.n)
	c.fh.UncompressedSize64 = uint64(c.n)
	setLegacySizes(c.fh)
	w.prog.FilesTotal++
	w.prog.BytesTotal += c.n
	w.record(EntryResult{
		Path: c.path, SHA256: hex.EncodeToString(c.sha.Sum(nil)), Size: c.n, CompressedSize: c.cw.n,
		CRC32: c.crc, Method: c.fh.Method,
	})
	return nil
}

// Spool is an entry written piece by piece while other entries are packed,
// and added to the archive whole by [Writer.AddSpool]: the manifest of an
// archive whose entries' checksums are learnt only as they are written (see
// [ManifestWriter]). Its bytes are held deflated in pooled chunks, so it
// costs about its compressed size in memory, or at most
// [Options.SpillAfter] of it with a [Spiller]. A Spool is not safe for
// concurrent use.
type Spool struct {
	w    *Writer
	path string
	mime string
	buf  spillBuf
	fw   *flate.Writer
	sha  hash.Hash
	crc  uint32
	n    int64
	done bool
	err  error
}

// NewSpool starts a spooled entry. Its path is checked and reserved now, as
// Pack checks its entries', so no later entry can take it.
func (w *Writer) NewSpool(path, mimeType string) (*Spool, error) {
	if err := w.ready(); err != nil {
		return nil, err
	}
	if err := w.admit([]Entry{{Path: path, MIMEType: mimeType, Open: noOpener}}); err != nil {
		return nil, err
	}
	s := &Spool{w: w, path: path, mime: mimeType, sha: sha256.New()}
	s.buf = newSpillBuf(&w.chunks, w.opts.Spiller, w.opts.SpillAfter, "spool/"+path)
	// A compressor of its own: the spool outlives the entries packed
	// meanwhile, which use the pooled ones.
	s.fw, _ = flate.NewWriter(&s.buf, w.opts.Level)
	return s, nil
}

// Write appends to the spooled entry.
func (s *Spool) Write(p []byte) (int, error) {
	switch {
	case s.err != nil:
		return 0, s.err
	case s.done:
		return 0, fmt.Errorf("zipstream: write to %s after it was added", s.path)
	}
	s.sha.Write(p)
	s.crc = crc32.Update(s.crc, crc32.IEEETable, p)
	s.n += int64(len(p))
	if _, err := s.fw.Write(p); err != nil {
		s.err = fmt.Errorf("zipstream: spool %s: %w", s.path, err)
		return 0, s.err
	}
	return len(p), nil
}

// Size is the number of bytes written to the spool so far.
func (s *Spool) Size() int64 { return s.n }

// Release gives the spool's memory back without adding it (the archive is
// abandoned). It is a no-op on a spool already added.
func (s *Spool) Release() {
	if !s.done {
		s.done = true
		s.buf.release()
	}
}

// AddSpool writes a spooled entry into the archive, at this point of it, and
// returns its result. The spool's memory is released.
func (w *Writer) AddSpool(s *Spool) (EntryResult, error) {
	if s.w != w {
		return EntryResult{}, errors.New("zipstream: spool of another Writer")
	}
	if s.done {
		return EntryResult{}, fmt.Errorf("zipstream: spool %s added twice", s.path)
	}
	defer s.Release()
	if s.err != nil {
		return EntryResult{}, w.fail(s.err)
	}
	if err := w.ready(); err != nil {
		return EntryResult{}, err
	}
	if err := w.finishCreated(); err != nil {
		return EntryResult{}, err
	}
	if err := s.fw.Close(); err != nil {
		return EntryResult{}, w.fail(fmt.Errorf("zipstream: spool %s: %w", s.path, err))
	}
	fh := w.header(s.path, zip.Deflate)
	fh.CRC32 = s.crc
	fh.CompressedSize64 = uint64(s.buf.size())
	fh.UncompressedSize64 = uint64(s.n)
	zf, err := w.zw.createRaw(fh)
	if err == nil {
		err = s.buf.writeTo(zf)
	}
	if err != nil {
		return EntryResult{}, w.fail(fmt.Errorf("zipstream: write %s: %w", s.path, err))
	}
	res := EntryResult{
		Path: s.path, SHA256: hex.EncodeToString(s.sha.Sum(nil)), Size: s.n, CompressedSize: s.buf.size(),
		CRC32: s.crc, Method: zip.Deflate,
	}
	w.prog.FilesTotal++
	w.prog.BytesTotal += s.n
	w.record(res)
	return res, nil
}
