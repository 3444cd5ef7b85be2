package queue

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// WakeChannel is the Redis pub/sub channel the relay publishes on after it
// enqueues a batch; every worker's Waker listens on it.
const WakeChannel = "labelq:wake"

// Defaults of a worker's polling (LABELQ_WORKER_POLL_INTERVAL and
// LABELQ_WORKER_IDLE_WAIT).
const (
	// DefaultPollInterval is ServerConfig's TaskCheckInterval: asynq's pause,
	// ±50%, after a look at every queue found nothing. With a Waker it is the
	// pause between the looks that follow a wake-up, not the idle cost.
	DefaultPollInterval = 50 * time.Millisecond
	// DefaultIdleWait is how long an idle worker waits for a wake-up before it
	// looks at every queue again: what comes without one (a retry or a scheduled
	// task the forwarder moves, a periodic task, an aggregated match run) waits up
	// to this, as long as under asynq's own 1 s ±50% poll.
	// Config keeps it at most 10 s, far inside asynq's 30 s task lease: a
	// dequeue call that waited carries a lease computed before the wait.
	DefaultIdleWait = time.Second
)

// Waker turns an idle asynq worker's polling into waiting. asynq polls every
// queue (one script call each) every TaskCheckInterval ±50% whether or not work
// comes, and its sleep cannot be cut short: an idle worker costs CPU in itself
// and in Redis, and a task enqueued just after a look waits out the sleep.
//
// The Waker is a go-redis hook on the worker server's client that watches those
// dequeue calls. Once every queue has answered empty since the last wake-up, the
// next dequeue call first waits for a wake-up (a message on WakeChannel, which
// the relay publishes after each batch) or for the idle wait to pass, then goes
// ahead. A wake-up arriving while the worker is between looks makes it look at
// every queue again before it waits. A call the hook does not recognise goes
// through untouched, so a change in asynq's scripts degrades to plain polling,
// which TestWakerPicksUpOnWake catches.
type Waker struct {
	queues int
	idle   time.Duration

	mu sync.Mutex
	// empty holds the queues that answered empty since the last wake-up or wait.
	empty map[string]bool
	// gen counts wake-ups and waits: an answer to a call sent before one of them
	// says nothing about the queue after it.
	gen uint64

	wake      chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	waits     atomic.Int64
}

// NewWaker is the hook for a server polling queues; idle is how long it waits
// for a wake-up once every queue was found empty.
func NewWaker(queues []string, idle time.Duration) *Waker {
	return &Waker{queues: len(queues), idle: idle, empty: map[string]bool{},
		wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

// Waits counts the dequeue calls that waited: a test signal that the hook
// recognised asynq's dequeue.
func (w *Waker) Waits() int64 { return w.waits.Load() }

// Wake makes an idle worker look at every queue now.
func (w *Waker) Wake() {
	w.mu.Lock()
	clear(w.empty)
	w.gen++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Close ends every wait for good: the server is shutting down and its
// processor must not sit in a dequeue call.
func (w *Waker) Close() { w.closeOnce.Do(func() { close(w.closed) }) }

// Listen wakes w on every message on WakeChannel, and on every (re)subscription
// (wake-ups may have been lost while the connection was down), until ctx ends.
func (w *Waker) Listen(ctx context.Context, c redis.UniversalClient) {
	ps := c.Subscribe(ctx, WakeChannel)
	defer func() { _ = ps.Close() }() // a subscription that ends with the worker
	ch := ps.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			w.Wake()
		}
	}
}

// PublishWake tells every idle worker that tasks were enqueued. A wake-up that is
// lost costs the tasks at most the workers' idle wait.
func PublishWake(ctx context.Context, c redis.UniversalClient) error {
	return c.Publish(ctx, WakeChannel, "").Err()
}

// DialHook is go-redis's; the Waker has nothing to do there.
func (w *Waker) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook is go-redis's; asynq's dequeue is not pipelined.
func (w *Waker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook waits before a dequeue call once every queue was found empty, and
// notes each dequeue's answer.
func (w *Waker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		q, ok := dequeueOf(cmd.Args())
		if !ok {
			return next(ctx, cmd)
		}
		gen := w.waitIfIdle(ctx)
		err := next(ctx, cmd)
		w.mu.Lock()
		defer w.mu.Unlock()
		switch {
		case w.gen != gen: // woken meanwhile: the answer may predate the wake-up
		case errors.Is(err, redis.Nil):
			w.empty[q] = true
		case err == nil:
			delete(w.empty, q)
		}
		return err
	}
}

// waitIfIdle waits for a wake-up or the idle wait when every queue was found
// empty, and returns the generation the call that follows belongs to.
func (w *Waker) waitIfIdle(ctx context.Context) uint64 {
	w.mu.Lock()
	full, gen := len(w.empty) >= w.queues, w.gen
	w.mu.Unlock()
	if !full {
		return gen
	}
	w.waits.Add(1)
	t := time.NewTimer(w.idle)
	defer t.Stop()
	select {
	case <-w.wake:
	case <-t.C:
	case <-w.closed:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.empty)
	w.gen++
	return w.gen
}

// dequeueOf recognises asynq's dequeue script call (EVALSHA, or EVAL when Redis
// lost the script) by its four keys, asynq:{q}:pending, :paused, :active and
// :lease, and returns its queue.
func dequeueOf(args []any) (string, bool) {
	if len(args) < 7 {
		return "", false
	}
	if name, _ := args[0].(string); !strings.EqualFold(name, "evalsha") && !strings.EqualFold(name, "eval") {
		return "", false
	}
	if n, ok := args[2].(int); !ok || n != 4 {
		return "", false
	}
	pending, _ := args[3].(string)
	q, ok := strings.CutPrefix(pending, "asynq:{")
	if !ok {
		return "", false
	}
	if q, ok = strings.CutSuffix(q, "}:pending"); !ok {
		return "", false
	}
	prefix := "asynq:{" + q + "}:"
	for i, suffix := range []string{"paused", "active", "lease"} {
		if k, _ := args[4+i].(string); k != prefix+suffix {
			return "", false
		}
	}
	return q, true
}
