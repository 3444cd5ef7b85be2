package outbox

import (
	"cmp"
	"context"
	"encoding/json"
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
	"github.com/labelq/labelq/internal/queue"
)

// Channel is the LISTEN/NOTIFY channel the outbox trigger signals on every insert.
const Channel = "labelq_outbox"

// DefaultRetention keeps a finished task's id reserved in Redis for this long, so a
// relay that enqueued a row and died before marking it cannot make a second task.
const DefaultRetention = time.Hour

// Defaults for a Relay's zero fields.
const (
	DefaultPollInterval = time.Second
	DefaultBatchSize    = 500
)

// Relay moves committed outbox rows into asynq. Any number may run at once: each
// batch is claimed with FOR UPDATE SKIP LOCKED, and task ids are deterministic.
type Relay struct {
	Pool         *pgxpool.Pool
	Client       *asynq.Client
	Log          *slog.Logger
	Metrics      *metrics.Metrics
	PollInterval time.Duration
	BatchSize    int

	// Listening, when set, is called each time the LISTEN connection is up: a
	// test signal, so a test waits for it instead of sleeping.
	Listening func()

	// afterEnqueue lets tests kill the relay between enqueue and commit.
	afterEnqueue func(db.Outbox) error
}

// Run relays until ctx ends: woken by NOTIFY, with polling as the fallback for a
// lost notification or a dropped LISTEN connection.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	go r.listen(ctx, wake)
	poll := cmp.Or(r.PollInterval, DefaultPollInterval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-timer.C:
		}
		for {
			n, err := r.RelayOnce(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.Log.WarnContext(ctx, "outbox relay failed; will retry", slog.String("error", err.Error()))
				break
			}
			if n < r.batch() {
				break
			}
		}
		timer.Reset(poll)
	}
}

func (r *Relay) batch() int {
	return cmp.Or(r.BatchSize, DefaultBatchSize)
}

func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	for ctx.Err() == nil {
		err := func() error {
			pooled, err := r.Pool.Acquire(ctx)
			if err != nil {
				return err
			}
			// The connection leaves the pool for good: LISTEN state must not be
			// handed to another user of the pool.
			conn := pooled.Hijack()
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
				return err
			}
			if r.Listening != nil {
				r.Listening()
			}
			for {
				if _, err := conn.WaitForNotification(ctx); err != nil {
					return err
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		r.Log.WarnContext(ctx, "outbox LISTEN connection lost; polling until it is back", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// RelayOnce moves one batch and returns how many rows it claimed.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	var claimed int
	err := database.Tx(ctx, r.Pool, func(q *db.Queries, _ pgx.Tx) error {
		rows, err := q.OutboxClaimBatch(ctx, int32(r.batch()))
		if err != nil {
			return fmt.Errorf("claim outbox rows: %w", err)
		}
		claimed = len(rows)
		done := make([]int64, 0, len(rows))
		for _, row := range rows {
			if err := r.enqueue(ctx, row); err != nil {
				delay := queue.Backoff(int(row.Attempts), time.Second, 5*time.Minute)
				r.Log.WarnContext(ctx, "outbox row not enqueued; will retry",
					slog.Int64("outbox_id", row.ID), slog.String("task_type", row.TaskType),
					slog.String("task_id", row.TaskID), slog.String("error", err.Error()))
				msg := err.Error()
				if err := q.OutboxMarkFailed(ctx, db.OutboxMarkFailedParams{
					ID: row.ID, LastError: &msg, AvailableAt: time.Now().Add(delay),
				}); err != nil {
					return err
				}
				continue
			}
			if r.afterEnqueue != nil {
				if err := r.afterEnqueue(row); err != nil {
					return err
				}
			}
			done = append(done, row.ID)
			if r.Metrics != nil {
				r.Metrics.OutboxLag.Observe(time.Since(row.CreatedAt).Seconds())
			}
		}
		if len(done) > 0 {
			if err := q.OutboxMarkEnqueued(ctx, done); err != nil {
				return fmt.Errorf("mark outbox rows enqueued: %w", err)
			}
			if r.Metrics != nil {
				r.Metrics.OutboxRelayed.Add(float64(len(done)))
			}
		}
		return nil
	})
	return claimed, err
}

func (r *Relay) enqueue(ctx context.Context, row db.Outbox) error {
	var o Options
	if err := json.Unmarshal(row.Options, &o); err != nil {
		return fmt.Errorf("decode options: %w", err)
	}
	opts := []asynq.Option{asynq.Queue(row.Queue), asynq.TaskID(row.TaskID)}
	if o.MaxRetry != nil {
		opts = append(opts, asynq.MaxRetry(*o.MaxRetry))
	}
	if o.Timeout > 0 {
		opts = append(opts, asynq.Timeout(o.Timeout))
	}
	retention := o.Retention
	if retention <= 0 {
		retention = DefaultRetention
	}
	opts = append(opts, asynq.Retention(retention))
	if o.Group != "" {
		opts = append(opts, asynq.Group(o.Group))
	}
	if row.AvailableAt.After(time.Now()) {
		opts = append(opts, asynq.ProcessAt(row.AvailableAt))
	}
	_, err := r.Client.EnqueueContext(ctx, asynq.NewTask(row.TaskType, row.Payload), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		// Already queued by an earlier attempt of this row (or of a relay that died
		// before marking it): the task exists once, which is the point.
		return nil
	}
	return err
}
