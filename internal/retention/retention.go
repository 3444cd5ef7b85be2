// Package retention keeps the tables that grow with use at a bounded size, at a
// bounded cost per pass, however large they have become. event_log loses whole
// monthly partitions (made months ahead, never deleted row by row: migrations/00020);
// the outbox, idempotency keys, LLM runs and sync runs lose their oldest expired
// rows in batches, each batch one DELETE over an index range. Webhook events and
// export archives have retention passes of their own (worker/webhook,
// worker/export).
//
// Several processes may run a pass at once: partition changes take a try-lock (a
// second pass skips them) and every batch skips the rows another pass holds (FOR
// UPDATE SKIP LOCKED), so each row is deleted by exactly one of them.
package retention

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/tasks"
)

const (
	// DefaultBatchSize is the rows one DELETE removes: small enough that no
	// statement holds its locks for long (about 50 ms here).
	DefaultBatchSize = 5000
	// DefaultBudget bounds one pass; a backlog larger than that is worked off by
	// the next passes.
	DefaultBudget = 5 * time.Minute
	// DefaultMonthsAhead is how many months of event_log partitions exist ahead
	// of the current one: writes never wait on a pass that has not run.
	DefaultMonthsAhead = 3
)

// Settings is how long each table's rows are kept; 0 keeps them forever.
type Settings struct {
	EventLog        time.Duration
	Outbox          time.Duration
	IdempotencyKeys time.Duration
	LLMRuns         time.Duration
	SyncRuns        time.Duration
}

// Cleaner is the maintenance:retention handler.
type Cleaner struct {
	Pool *pgxpool.Pool
	Keep Settings
	Log  *slog.Logger
	Now  func() time.Time
	// BatchSize is the rows per DELETE (DefaultBatchSize).
	BatchSize int32
	// Budget is the longest one pass deletes for (DefaultBudget).
	Budget time.Duration
	// MonthsAhead is the event_log partitions made ahead (DefaultMonthsAhead).
	MonthsAhead int32
}

// Result is what one pass did.
type Result struct {
	PartitionsCreated int
	PartitionsDropped int
	// Deleted is the rows deleted per table.
	Deleted map[string]int64
	// Done is false when the budget ran out before every expired row was deleted.
	Done bool
}

// Work runs one pass (tasks.Retention, periodic). Mount it with tasks.Register.
func (c *Cleaner) Work(ctx context.Context, _ tasks.Retention) error {
	_, err := c.Run(ctx)
	return err
}

// table is one batch-deleted table.
type table struct {
	name string
	keep time.Duration
	del  func(ctx context.Context, q *db.Queries, before time.Time, maxRows int32) (int64, error)
}

func (c *Cleaner) tables() []table {
	return []table{
		{"outbox", c.Keep.Outbox, func(ctx context.Context, q *db.Queries, before time.Time, n int32) (int64, error) {
			return q.RetentionOutboxDelete(ctx, db.RetentionOutboxDeleteParams{Before: before, MaxRows: n})
		}},
		{"idempotency_keys", c.Keep.IdempotencyKeys, func(ctx context.Context, q *db.Queries, before time.Time, n int32) (int64, error) {
			return q.RetentionIdempotencyKeysDelete(ctx, db.RetentionIdempotencyKeysDeleteParams{Before: before, MaxRows: n})
		}},
		{"llm_runs", c.Keep.LLMRuns, func(ctx context.Context, q *db.Queries, before time.Time, n int32) (int64, error) {
			return q.RetentionLLMRunsDelete(ctx, db.RetentionLLMRunsDeleteParams{Before: before, MaxRows: n})
		}},
		{"sync_runs", c.Keep.SyncRuns, func(ctx context.Context, q *db.Queries, before time.Time, n int32) (int64, error) {
			return q.RetentionSyncRunsDelete(ctx, db.RetentionSyncRunsDeleteParams{Before: before, MaxRows: n})
		}},
	}
}

// Run makes event_log's partitions ahead, drops the expired ones and deletes the
// other tables' expired rows, one batch per table in turn (a large backlog in one
// table does not starve the others), until none is left or the budget is spent.
// A table that fails is left for the next pass; the others go on, and the error
// names every failure.
func (c *Cleaner) Run(ctx context.Context) (Result, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	batch := cmp.Or(c.BatchSize, DefaultBatchSize)
	budget := cmp.Or(c.Budget, DefaultBudget)
	ahead := cmp.Or(c.MonthsAhead, DefaultMonthsAhead)
	log := logging.From(ctx, cmp.Or(c.Log, slog.New(slog.DiscardHandler)))
	q := db.New(c.Pool)
	start, at := time.Now(), now()
	res := Result{Deleted: map[string]int64{}}
	var errs []error

	created, err := q.RetentionEnsurePartitions(ctx, ahead)
	if err != nil {
		errs = append(errs, fmt.Errorf("create event_log partitions: %w", err))
	}
	res.PartitionsCreated = int(created)
	if c.Keep.EventLog > 0 {
		dropped, err := q.RetentionDropPartitions(ctx, at.Add(-c.Keep.EventLog))
		if err != nil {
			errs = append(errs, fmt.Errorf("drop event_log partitions: %w", err))
		}
		res.PartitionsDropped = int(dropped)
	}

	var left []table
	for _, t := range c.tables() {
		if t.keep > 0 {
			left = append(left, t)
		}
	}
	for len(left) > 0 && time.Since(start) < budget && ctx.Err() == nil {
		next := left[:0]
		for _, t := range left {
			n, err := t.del(ctx, q, at.Add(-t.keep), batch)
			res.Deleted[t.name] += n
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("delete expired %s: %w", t.name, err))
			case n >= int64(batch):
				next = append(next, t)
			}
		}
		left = next
	}
	res.Done = len(left) == 0

	attrs := []any{slog.Int("partitions_created", res.PartitionsCreated), slog.Int("partitions_dropped", res.PartitionsDropped),
		slog.Bool("done", res.Done), slog.Duration("took", time.Since(start))}
	var total int64
	for name, n := range res.Deleted {
		attrs, total = append(attrs, slog.Int64(name, n)), total+n
	}
	if total > 0 || res.PartitionsCreated > 0 || res.PartitionsDropped > 0 || !res.Done {
		log.InfoContext(ctx, "retention pass", attrs...)
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	return res, nil
}
