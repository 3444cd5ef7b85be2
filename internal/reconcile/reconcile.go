// Package reconcile is what makes "nothing is lost when Redis is" true. A periodic
// task finds rows stuck in a pending state past a threshold, asks asynq whether the
// newest task queued for each is still alive, and when it is not (Redis flushed or
// restarted, a task archived by mistake) queues a new one through the outbox.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
)

// Item is one stuck row.
type Item struct {
	OrgID    int64
	EntityID int64
}

// Finder knows one kind of stuck row and how to queue its work again.
type Finder struct {
	// Kind is the task kind that settles the row (tasks.Validate{}.Kind(), …).
	Kind  string
	Stuck func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]Item, error)
	// Args is the task that settles row id; run makes its task id new. Its
	// SubjectID is id, which is how the row's newest task is found.
	Args func(id int64, run string) tasks.Queued
}

// Reconciler is the maintenance:reconcile handler.
type Reconciler struct {
	Pool      *pgxpool.Pool
	Inspector *asynq.Inspector
	// Redis, when set, re-registers the queue names each pass (see queue.Register).
	Redis   asynq.RedisConnOpt
	Log     *slog.Logger
	After   time.Duration
	Finders []Finder
	// OutboxKeep is how long relayed outbox rows are kept (for task look-ups).
	OutboxKeep time.Duration
	Now        func() time.Time
	// Metrics, when set, counts the rows requeued by kind
	// (labelq_reconcile_requeued_total).
	Metrics *metrics.Metrics
}

// Work runs one reconciliation pass (tasks.Reconcile, periodic). Mount it with
// tasks.Register.
func (r *Reconciler) Work(ctx context.Context, _ tasks.Reconcile) error {
	_, err := r.Run(ctx)
	return err
}

var alive = map[asynq.TaskState]bool{
	asynq.TaskStatePending: true, asynq.TaskStateActive: true, asynq.TaskStateScheduled: true,
	asynq.TaskStateRetry: true, asynq.TaskStateAggregating: true,
}

// Run requeues every stuck row with no live task and returns how many it requeued.
func (r *Reconciler) Run(ctx context.Context) (int, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	olderThan := now().Add(-r.After)
	if r.Redis != nil {
		if err := queue.Register(ctx, r.Redis); err != nil {
			return 0, fmt.Errorf("register queues: %w", err)
		}
	}
	if _, _, err := r.repairAdmitted(ctx, now()); err != nil {
		return 0, err
	}
	requeued := 0
	for _, f := range r.Finders {
		for {
			n, more, err := r.pass(ctx, f, olderThan)
			requeued += n
			if r.Metrics != nil && n > 0 && err == nil {
				r.Metrics.ReconcileRequeued.WithLabelValues(f.Kind).Add(float64(n))
			}
			if err != nil {
				return requeued, fmt.Errorf("reconcile %s: %w", f.Kind, err)
			}
			if !more {
				break
			}
		}
	}
	if r.OutboxKeep > 0 {
		if _, err := db.New(r.Pool).OutboxDeleteEnqueuedBefore(ctx, now().Add(-r.OutboxKeep)); err != nil {
			return requeued, fmt.Errorf("clean outbox: %w", err)
		}
	}
	if requeued > 0 {
		r.Log.WarnContext(ctx, "reconciler requeued stuck work", slog.Int("requeued", requeued))
	}
	return requeued, nil
}

const batch = 500

func (r *Reconciler) pass(ctx context.Context, f Finder, olderThan time.Time) (int, bool, error) {
	q := db.New(r.Pool)
	items, err := f.Stuck(ctx, q, olderThan, batch)
	if err != nil {
		return 0, false, err
	}
	var requeue []Item
	for _, it := range items {
		live, err := r.hasLiveTask(ctx, q, f, it.EntityID)
		if err != nil {
			return 0, false, err
		}
		if !live {
			requeue = append(requeue, it)
		}
	}
	if len(requeue) == 0 {
		return 0, false, nil
	}
	nonce := fmt.Sprintf("rc%d", time.Now().UnixNano())
	err = database.Tx(ctx, r.Pool, func(q *db.Queries, _ pgx.Tx) error {
		for _, it := range requeue {
			// A repair is nobody's click: it waits behind the organization's
			// interactive work.
			if err := outbox.Add(ctx, q, it.OrgID, f.Args(it.EntityID, nonce), outbox.As(outbox.PriorityBulk)); err != nil {
				return err
			}
		}
		return nil
	})
	// Requeued rows stay stuck-looking until their task runs, so a full batch is
	// not a reason to loop: the next pass sees their new tasks alive.
	return len(requeue), false, err
}

// hasLiveTask reports whether the newest task queued for the entity is still waiting
// in the outbox or alive in asynq.
func (r *Reconciler) hasLiveTask(ctx context.Context, q *db.Queries, f Finder, id int64) (bool, error) {
	row, err := q.OutboxLatestForSubject(ctx, db.OutboxLatestForSubjectParams{TaskType: f.Kind, SubjectID: id})
	if errors.Is(err, pgx.ErrNoRows) {
		// Retention (internal/retention) deleted the relayed row, or there never was
		// one: the row's first task has a known id and may still be alive.
		first := f.Args(id, "")
		return r.taskAlive(first.InsertOpts().Queue, first.TaskID())
	}
	if err != nil {
		return false, err
	}
	if row.EnqueuedAt == nil {
		return true, nil // the relay has not moved it yet
	}
	if row.AdmittedAt != nil && row.FinishedAt == nil {
		// The row holds an admission slot: repairAdmitted owns it, and readmits it
		// under the same task id once its task is gone (after its grace). Queuing
		// another task here as well would do the work twice and hold two slots.
		return true, nil
	}
	return r.taskAlive(row.Queue, row.TaskID)
}

// taskAlive reports whether asynq holds the task in a state that will still run.
func (r *Reconciler) taskAlive(queueName, taskID string) (bool, error) {
	info, err := r.Inspector.GetTaskInfo(queueName, taskID)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", taskID, err)
	}
	return alive[info.State], nil
}
