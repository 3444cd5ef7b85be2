package zipstream

import (
	"context"
	"io"
	"sync"
)

// chunkSize is the unit of buffered entry data. Fixed-size chunks from one
// pool waste at most one partial chunk per entry, where size-classed
// []byte buffers would waste up to half of each buffer, and let deflated
// entries hold only as many chunks as their compressed size needs. Each
// packer's own chunk is also its copy buffer and the sample of an entry's
// first bytes that chooseMethod inspects.
const chunkSize = 64 << 10

type chunk = [chunkSize]byte

// chunkPool recycles chunks between entries and between Pack calls on the
// same Writer.
type chunkPool struct{ p sync.Pool }

func (cp *chunkPool) get() *chunk {
	if c, ok := cp.p.Get().(*chunk); ok {
		return c
	}
	return new(chunk)
}

func (cp *chunkPool) put(c *chunk) { cp.p.Put(c) }

// chunkBuf is an append-only buffer made of pooled chunks.
type chunkBuf struct {
	pool   *chunkPool
	chunks []*chunk
	n      int64
}

func (b *chunkBuf) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		off := int(b.n % chunkSize)
		if off == 0 && int(b.n/chunkSize) == len(b.chunks) {
			b.chunks = append(b.chunks, b.pool.get())
		}
		k := copy(b.chunks[b.n/chunkSize][off:], p)
		p = p[k:]
		b.n += int64(k)
	}
	return total, nil
}

// capacity is the number of bytes held, which is what the budget counts.
func (b *chunkBuf) capacity() int64 { return int64(len(b.chunks)) * chunkSize }

func (b *chunkBuf) writeTo(w io.Writer) error {
	left := b.n
	for _, c := range b.chunks {
		k := min(left, chunkSize)
		if _, err := w.Write(c[:k]); err != nil {
			return err
		}
		left -= k
	}
	return nil
}

func (b *chunkBuf) release() {
	for i, c := range b.chunks {
		b.pool.put(c)
		b.chunks[i] = nil
	}
	b.chunks = b.chunks[:0]
	b.n = 0
}

// reserveFor is the budget taken for a buffered entry before it is read:
// the worst case of a deflate stream (stored blocks add 5 bytes per 64 KiB),
// rounded up to whole chunks, and at least one chunk.
func reserveFor(size int64) int64 {
	bound := size + size/8192 + 64
	return (bound + chunkSize - 1) / chunkSize * chunkSize
}

// budget bounds the bytes held by buffered entries. A single goroutine (the
// dispatcher) acquires, so one wake-up slot is enough; any goroutine
// releases.
type budget struct {
	mu    sync.Mutex
	used  int64
	max   int64
	freed chan struct{}
}

func newBudget(max int64) *budget {
	return &budget{max: max, freed: make(chan struct{}, 1)}
}

// acquire blocks until n bytes fit. An empty budget always admits, so an
// entry larger than the whole budget cannot deadlock the pipeline.
func (b *budget) acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		select {
		case <-b.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release returns n bytes (negative n records an overrun of a reservation).
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
}
