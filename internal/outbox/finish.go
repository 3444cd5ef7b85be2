package outbox

import (
	"context"
	"errors"
	"log/slog"
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
type Finisher struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
}

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

// finish marks the task's row finished. A failure is logged and left to the
// reconciler, which frees the slot of a task asynq holds as completed or archived.
func (f *Finisher) finish(ctx context.Context) {
	id, ok := asynq.GetTaskID(ctx)
	if !ok {
		return
	}
	// The task's own context may be over (its timeout is why it ends).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := db.New(f.Pool).OutboxFinish(ctx, id); err != nil {
		f.Log.WarnContext(ctx, "could not give the task's admission slot back; the reconciler will",
			slog.String("task_id", id), slog.String("error", err.Error()))
	}
}
