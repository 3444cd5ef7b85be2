package validate

import (
	"errors"
	"fmt"
	"io"
)

// readAhead reads its source on a goroutine of its own into a small ring of buffers,
// so that fetching the next buffer from object storage overlaps hashing the current
// one. A minio Object only asks the server for bytes when Read is called, so without
// this the network and SHA-256 take turns and each waits for the other.
//
// Memory is depth × size, fixed. Read must not be called concurrently, and the source
// must not be used by anyone else until Close returns (Close waits for the goroutine).
type readAhead struct {
	full chan chunk
	free chan []byte
	stop chan struct{}
	done chan struct{}

	cur    []byte // unread part of the chunk being served
	curBuf []byte // that chunk's buffer, handed back once served
	err    error  // sticky: the source's error (io.EOF at the end)
}

type chunk struct {
	buf []byte
	n   int
	err error
}

var errReadAheadClosed = errors.New("validate: read-ahead closed")

// errCutShort is a read of the object that ended before the object did.
var errCutShort = fmt.Errorf("object read ended before the end of the object: %w", io.ErrUnexpectedEOF)

// cutShort turns io.ErrUnexpectedEOF from the source into errCutShort. A minio Object
// reports a connection cut before Content-Length as io.ErrUnexpectedEOF, and
// verify.Measure (like io.ReadFull) takes that value for a normal end of stream: the
// bytes read so far would be judged, and a network hiccup would become a "corrupt"
// verdict instead of a retry. errCutShort is not that value, so Measure returns it.
type cutShort struct{ r io.Reader }

func (c cutShort) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.ErrUnexpectedEOF { //nolint:errorlint // the exact value is what Measure compares
		err = errCutShort
	}
	return n, err
}

func newReadAhead(src io.Reader, depth, size int) *readAhead {
	depth, size = max(depth, 1), max(size, 1)
	r := &readAhead{
		full: make(chan chunk, depth),
		free: make(chan []byte, depth+1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	// depth+1 buffers: depth queued or being filled, one being served.
	for range depth + 1 {
		r.free <- make([]byte, size)
	}
	go r.fill(src)
	return r
}

func (r *readAhead) fill(src io.Reader) {
	defer close(r.done)
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.stop:
			return
		}
		n, err := io.ReadFull(src, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case r.full <- chunk{buf: buf, n: n, err: err}:
		case <-r.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (r *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.curBuf != nil {
			r.free <- r.curBuf // never blocks: free holds every buffer
			r.curBuf = nil
		}
		select {
		case c := <-r.full:
			r.curBuf, r.cur, r.err = c.buf, c.buf[:c.n], c.err
		case <-r.done:
			// The goroutine stopped without a final chunk: only Close does that.
			select {
			case c := <-r.full:
				r.curBuf, r.cur, r.err = c.buf, c.buf[:c.n], c.err
			default:
				r.err = errReadAheadClosed
			}
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the goroutine and waits for it, so the source is free for other use
// (InspectZip's ReadAt) when Close returns. It may be called more than once.
func (r *readAhead) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}
