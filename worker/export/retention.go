package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
)

// defaultRetentionBatch is how many exports one query lists.
const defaultRetentionBatch = 100

// RetentionHandler deletes the archives of completed exports older than
// Retention (by completed_at) and sets their purged_at; the rows stay, as the
// record of what was exported, and the API answers 410 Gone for their
// download. Retention 0 keeps archives forever.
//
// Deleting the object comes first and marking the row second, so a pass cut
// off in between leaves a row that the next pass deletes again (a no-op in S3)
// and then marks: nothing is marked purged while its object still exists.
type RetentionHandler struct {
	Pool      *pgxpool.Pool
	Store     *storage.Store
	Log       *slog.Logger
	Retention time.Duration
	// Now is the clock the age is measured with; nil means time.Now.
	Now func() time.Time
	// BatchSize is how many exports one query lists; default 100.
	BatchSize int32
}

// Work runs one retention pass (tasks.ExportRetention, periodic). Mount it with
// tasks.Register.
func (r *RetentionHandler) Work(ctx context.Context, _ tasks.ExportRetention) error {
	_, err := r.Run(ctx)
	return err
}

// Run purges every expired archive and returns how many it purged. An archive
// that cannot be deleted is logged and left for the next pass.
func (r *RetentionHandler) Run(ctx context.Context) (int, error) {
	if r.Retention <= 0 {
		return 0, nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = logging.From(ctx, log)
	batch := r.BatchSize
	if batch <= 0 {
		batch = defaultRetentionBatch
	}
	cutoff := now().Add(-r.Retention)
	q := db.New(r.Pool)
	purged := 0
	var errs []error
	for {
		rows, err := q.ExportLogListExpired(ctx, db.ExportLogListExpiredParams{CompletedBefore: &cutoff, MaxRows: batch})
		if err != nil {
			return purged, errors.Join(append(errs, fmt.Errorf("list expired exports: %w", err))...)
		}
		progress := 0
		for _, e := range rows {
			if err := r.purge(ctx, e, now()); err != nil {
				log.ErrorContext(ctx, "could not purge an expired export archive; the next pass tries again",
					slog.Int64("export_id", e.ID), slog.String("error", err.Error()))
				errs = append(errs, err)
				continue
			}
			progress++
		}
		purged += progress
		// A batch in which nothing could be purged would come back as it is.
		if len(rows) < int(batch) || progress == 0 {
			break
		}
	}
	if purged > 0 {
		log.InfoContext(ctx, "expired export archives deleted", slog.Int("count", purged), slog.Duration("retention", r.Retention))
	}
	return purged, errors.Join(errs...)
}

func (r *RetentionHandler) purge(ctx context.Context, e db.ExportLogListExpiredRow, now time.Time) error {
	if e.StoragePath != nil {
		err := r.Store.Client.RemoveObject(ctx, r.Store.Bucket, *e.StoragePath, minio.RemoveObjectOptions{})
		if err != nil && !storage.IsNotFound(err) {
			return fmt.Errorf("delete archive of export %d: %w", e.ID, err)
		}
	}
	return database.Tx(ctx, r.Pool, func(q *db.Queries, _ pgx.Tx) error {
		n, err := q.ExportLogMarkPurged(ctx, db.ExportLogMarkPurgedParams{ID: e.ID, PurgedAt: &now})
		if err != nil {
			return fmt.Errorf("mark export %d purged: %w", e.ID, err)
		}
		if n == 0 {
			return nil // another pass got there first
		}
		return event(ctx, q, e.OrgID, e.ID, EventPurged, fmt.Sprintf("export:%d:purged", e.ID), map[string]any{
			"storage_path": deref(e.StoragePath), "completed_at": e.CompletedAt, "retention": r.Retention.String(),
		})
	})
}
