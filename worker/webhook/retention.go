package webhookdeliver

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/tasks"
)

// defaultRetentionBatch is the events one DELETE removes (with their deliveries
// and attempts): small enough that no statement holds locks for long.
const defaultRetentionBatch = 1000

// RetentionHandler is maintenance:webhook_retention: it deletes the events older
// than Retention whose deliveries are all finished, with their deliveries and
// attempts, in batches.
type RetentionHandler struct {
	Pool      *pgxpool.Pool
	Retention time.Duration
	Log       *slog.Logger
	Now       func() time.Time
	// BatchSize is the events per DELETE (default 1000).
	BatchSize int32
	// MaxBatches bounds one pass (default 1000: a million events); the next
	// pass goes on.
	MaxBatches int
}

// Work runs one pass (tasks.WebhookRetention, periodic). Mount it with
// tasks.Register.
func (r *RetentionHandler) Work(ctx context.Context, _ tasks.WebhookRetention) error {
	_, err := r.Run(ctx)
	return err
}

// Run deletes what is past retention and returns the events it deleted.
func (r *RetentionHandler) Run(ctx context.Context) (int64, error) {
	if r.Retention <= 0 {
		return 0, nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	batch := r.BatchSize
	if batch <= 0 {
		batch = defaultRetentionBatch
	}
	maxBatches := r.MaxBatches
	if maxBatches <= 0 {
		maxBatches = 1000
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = logging.From(ctx, log)
	before := now().Add(-r.Retention)
	q := db.New(r.Pool)
	var total int64
	for range maxBatches {
		n, err := q.WebhookDeleteBefore(ctx, db.WebhookDeleteBeforeParams{Before: before, MaxRows: batch})
		if err != nil {
			return total, fmt.Errorf("webhook retention: %w", err)
		}
		total += n
		if n < int64(batch) {
			break
		}
	}
	if total > 0 {
		log.InfoContext(ctx, "webhook events past retention deleted", slog.Int64("events", total), slog.Time("before", before))
	}
	return total, nil
}
