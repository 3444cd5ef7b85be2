package zipstream

import (
	"fmt"
	"io"
)

// DefaultSpillAfter is how many deflated bytes of one bookkeeping stream
// (the central directory, a spool) are held in memory before they go to the
// [Spiller], when there is one.
const DefaultSpillAfter = 1 << 20

// Spiller keeps what an archive must hold until its end and would otherwise
// keep in memory: its central directory and its spooled entries (the
// manifest), both deflated, a few dozen bytes per entry. Past
// [Options.SpillAfter] bytes of one stream, the Writer hands them to the
// Spiller as one piece and forgets them; at the end it reads the pieces back
// in order. An export stores them as objects next to the archive, so neither
// memory nor local disk grows with the number of entries.
//
// The Writer calls the Spiller from the goroutine that writes the archive,
// never concurrently, and never deletes a piece: the caller removes them once
// the archive is written or abandoned. Names are unique within one Writer
// and safe as object key segments.
type Spiller interface {
	// Spill stores a piece of size bytes read from r under name.
	Spill(name string, r io.Reader, size int64) error
	// Unspill opens the piece stored under name.
	Unspill(name string) (io.ReadCloser, error)
}

// spillBuf is an append-only buffer of pooled chunks whose older bytes go to
// a Spiller once the chunks hold spillAfter bytes.
type spillBuf struct {
	mem        chunkBuf
	sp         Spiller
	spillAfter int64
	stream     string  // the pieces' name prefix
	pieces     []piece // spilled, in order
	spilled    int64   // bytes in pieces
	err        error
}

type piece struct {
	name string
	size int64
}

func newSpillBuf(pool *chunkPool, sp Spiller, spillAfter int64, stream string) spillBuf {
	if spillAfter <= 0 {
		spillAfter = DefaultSpillAfter
	}
	return spillBuf{mem: chunkBuf{pool: pool}, sp: sp, spillAfter: spillAfter, stream: stream}
}

// size is every byte written.
func (b *spillBuf) size() int64 { return b.spilled + b.mem.n }

func (b *spillBuf) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, _ := b.mem.Write(p)
	if b.sp != nil && b.mem.n >= b.spillAfter {
		name := fmt.Sprintf("%s.%06d", b.stream, len(b.pieces)+1)
		if err := b.sp.Spill(name, b.mem.reader(), b.mem.n); err != nil {
			b.err = fmt.Errorf("zipstream: spill %s: %w", name, err)
			return n, b.err
		}
		b.pieces = append(b.pieces, piece{name, b.mem.n})
		b.spilled += b.mem.n
		b.mem.release()
	}
	return n, nil
}

// writeTo copies every byte, the spilled pieces first, to w.
func (b *spillBuf) writeTo(w io.Writer) error {
	if b.err != nil {
		return b.err
	}
	for _, pc := range b.pieces {
		if err := b.copyPiece(w, pc); err != nil {
			return err
		}
	}
	return b.mem.writeTo(w)
}

// reader reads every byte, the spilled pieces first. Close it when done.
func (b *spillBuf) reader() io.ReadCloser {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(b.writeTo(pw)) }()
	return pr
}

func (b *spillBuf) copyPiece(w io.Writer, pc piece) error {
	name := pc.name
	rc, err := b.sp.Unspill(name)
	if err != nil {
		return fmt.Errorf("zipstream: read back %s: %w", name, err)
	}
	defer func() { _ = rc.Close() }()
	var we error
	n, err := io.Copy(writerFunc(func(p []byte) (int, error) {
		k, e := w.Write(p)
		we = e
		return k, e
	}), rc)
	switch {
	case we != nil:
		return we // the destination's error, as it is
	case err != nil:
		return fmt.Errorf("zipstream: read back %s: %w", name, err)
	case n != pc.size:
		return fmt.Errorf("zipstream: read back %s: %w", name, fmt.Errorf("%d bytes, %d were stored", n, pc.size))
	}
	return nil
}

func (b *spillBuf) release() { b.mem.release() }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
