package outbox

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/db"
)

// Finisher is the worker middleware that ends a task's admission: when the task
// succeeds, or fails for good (asynq archives it), its outbox row gives its
// organization's slot back and the relays are woken to admit the next row. A
// retry keeps the slot: the task is still the organization's, in Redis. A task
// recovered after its worker died (kill -9) keeps its slot until it finishes on
// another worker. It also hands the task's priority to what its handler queues
// next (WithPriority), so the pipeline of a bulk registration stays bulk.
//
// The slots are given back asynchronously, the tasks that end within Gather in
// one statement: the worker goes on to its next task instead of waiting for a
// commit of its own (a finish per task cost PostgreSQL a statement and a commit
// each, and held the worker for them). Ids not yet written when the process dies
// are the reconciler's, as a failed finish is.
type Finisher struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	// Gather is how long the ids of the tasks that end are gathered before their
	// slots are given back in one statement; default FinishGather.
	Gather time.Duration

	mu      sync.Mutex
	pending []string
	// flushed is the running flusher's, closed when it stops; nil when none runs.
	// (Not a WaitGroup: a handler asynq abandoned at its shutdown timeout may end
	// while Close waits, and a WaitGroup's Add from zero must not race its Wait.)
	flushed chan struct{}
	// statements counts the statements that gave slots back, for tests.
	statements atomic.Int64
}

// FinishGather is a Finisher's default Gather: short beside the relay's own
// gathering of freed slots (FreedGather), long enough that a worker finishing
// hundreds of tasks a second writes a few dozen per statement.
const FinishGather = 10 * time.Millisecond

// finishBatch caps the ids one statement gives back.
const finishBatch = 1000

// Middleware wraps a worker's handlers (asynq.ServeMux.Use).
func (f *Finisher) Middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
		if t.Headers()[headerPriority] == PriorityBulk.String() {
			ctx = WithPriority(ctx, PriorityBulk)
		}
		defer func() {
			if p := recover(); p != nil {
				// asynq turns the panic into a failed attempt: archived on the last.
				if lastAttempt(ctx) {
					f.finish(ctx)
				}
				panic(p)
			}
			if ends(ctx, err) {
				f.finish(ctx)
			}
		}()
		return next.ProcessTask(ctx, t)
	})
}

// ends reports whether asynq is done with the task after this attempt, as its
// processor decides: success or a revoked task (done), SkipRetry or the last
// retry spent (archived). Anything else is retried.
func ends(ctx context.Context, err error) bool {
	return err == nil || errors.Is(err, asynq.RevokeTask) || errors.Is(err, asynq.SkipRetry) || lastAttempt(ctx)
}

func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	m, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= m
}

// finish queues the task's row to be marked finished, and starts the flusher
// that writes it unless one is running.
func (f *Finisher) finish(ctx context.Context) {
	id, ok := asynq.GetTaskID(ctx)
	if !ok {
		return
	}
	f.mu.Lock()
	f.pending = append(f.pending, id)
	start := f.flushed == nil
	if start {
		f.flushed = make(chan struct{})
	}
	f.mu.Unlock()
	if start {
		go f.flush()
	}
}

// flush gives back, every Gather, the slots of the tasks that ended meanwhile,
// and stops once a gathering found none. A failure is logged and left to the
// reconciler, which frees the slot of a task asynq holds as completed or archived.
func (f *Finisher) flush() {
	gather := f.Gather
	if gather <= 0 {
		gather = FinishGather
	}
	for full := false; ; {
		if !full {
			time.Sleep(gather)
		}
		f.mu.Lock()
		n := min(len(f.pending), finishBatch)
		full = n == finishBatch
		ids := slices.Clone(f.pending[:n])
		f.pending = f.pending[n:]
		if n == 0 {
			close(f.flushed)
			f.flushed = nil
			f.pending = nil
		}
		f.mu.Unlock()
		if n == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := db.New(f.Pool).OutboxFinish(ctx, ids)
		cancel()
		f.statements.Add(1)
		if err != nil {
			f.Log.Warn("could not give the admission slots of tasks that ended back; the reconciler will",
				slog.Int("tasks", len(ids)), slog.String("first_task_id", ids[0]), slog.String("error", err.Error()))
		}
	}
}

// Close waits until the slots of the tasks that ended so far are given back (or
// the attempt failed): call it once the worker runs no more tasks.
func (f *Finisher) Close() {
	f.mu.Lock()
	flushed := f.flushed
	f.mu.Unlock()
	if flushed != nil {
		<-flushed
	}
}
