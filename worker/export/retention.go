package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
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

// DefaultOrphanGrace is how old an object under an exports/ prefix must be
// before the orphan sweep may delete it: longer than an export task may run
// (tasks.Export's 12 h timeout) plus a margin, because S3 dates a multipart
// object from when its upload began, and a run records its archive only after
// the upload completes. No object a live run may still record is ever that old.
const DefaultOrphanGrace = 13 * time.Hour

// RetentionHandler deletes the archives of completed exports older than
// Retention (by completed_at) and sets their purged_at; the rows stay, as the
// record of what was exported, and the API answers 410 Gone for their
// download. Retention 0 keeps archives forever.
//
// Each pass also sweeps orphans (SweepOrphans): objects under any project's
// exports/ prefix, older than OrphanGrace, that are not the archive of a
// completed export (a run that died between completing its upload and
// recording it, an export cancelled or failed whose clean-up did not happen).
//
// Deleting the object comes first and marking the row second, so a pass cut
// off in between leaves a row that the next pass deletes again (a no-op in S3)
// and then marks: nothing is marked purged while its object still exists. The
// one exception is an archive in an export storage that labelq can no longer
// delete (the storage deleted or unusable, or its credentials not allowed to
// delete): the bucket is the tenant's, the row is marked purged all the same
// (its download answers 410), and the event says the object was left there and
// why, rather than failing every pass from now on.
//
// The orphan sweep walks labelq's own bucket only: an export storage is the
// tenant's bucket, which labelq does not list, and a run's leftovers there are
// deleted by the run itself or by the export's next run and its clean-up on
// cancel or failure.
type RetentionHandler struct {
	Pool  *pgxpool.Pool
	Store *storage.Store
	// Storages reaches the export storages archives may be in; nil: labelq's
	// bucket only (an archive in a storage is then retried every pass).
	Storages  *storage.Resolver
	Log       *slog.Logger
	Retention time.Duration
	// Now is the clock the age is measured with; nil means time.Now.
	Now func() time.Time
	// BatchSize is how many exports one query lists; default 100.
	BatchSize int32
	// OrphanGrace is the age under which the orphan sweep leaves an object
	// alone; default DefaultOrphanGrace.
	OrphanGrace time.Duration
}

// Work runs one retention pass (tasks.ExportRetention, periodic). Mount it with
// tasks.Register.
func (r *RetentionHandler) Work(ctx context.Context, _ tasks.ExportRetention) error {
	_, err := r.Run(ctx)
	_, serr := r.SweepOrphans(ctx)
	return errors.Join(err, serr)
}

func (r *RetentionHandler) clock() func() time.Time {
	if r.Now != nil {
		return r.Now
	}
	return time.Now
}

func (r *RetentionHandler) logger(ctx context.Context) *slog.Logger {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return logging.From(ctx, log)
}

// Run purges every expired archive and returns how many it purged. An archive
// that cannot be deleted is logged and left for the next pass.
func (r *RetentionHandler) Run(ctx context.Context) (int, error) {
	if r.Retention <= 0 {
		return 0, nil
	}
	now, log := r.clock(), r.logger(ctx)
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
	left := "" // why the archive stays in the tenant's export storage
	if e.StoragePath != nil {
		storages := r.Storages
		if storages == nil {
			storages = storage.OwnOnly(r.Store)
		}
		var ue *storage.UnusableError
		src, err := storages.Resolve(ctx, e.StorageID)
		switch {
		case errors.As(err, &ue):
			left = ue.Error()
		case err != nil:
			return fmt.Errorf("find the export storage of export %d: %w", e.ID, err)
		default:
			err := src.Client.RemoveObject(ctx, src.Bucket, *e.StoragePath, minio.RemoveObjectOptions{})
			if reason := src.Refusal("delete", *e.StoragePath, err); reason != "" {
				left = reason
			} else if err != nil && !storage.IsNotFound(err) {
				return fmt.Errorf("delete archive of export %d: %w", e.ID, err)
			}
		}
	}
	if left != "" {
		r.logger(ctx).WarnContext(ctx, "an expired archive in an export storage could not be deleted; the export is marked purged and the object left there",
			slog.Int64("export_id", e.ID), slog.String("reason", left))
	}
	return database.Tx(ctx, r.Pool, func(q *db.Queries, _ pgx.Tx) error {
		n, err := q.ExportLogMarkPurged(ctx, db.ExportLogMarkPurgedParams{ID: e.ID, PurgedAt: &now})
		if err != nil {
			return fmt.Errorf("mark export %d purged: %w", e.ID, err)
		}
		if n == 0 {
			return nil // another pass got there first
		}
		meta := map[string]any{
			"storage_path": deref(e.StoragePath), "completed_at": e.CompletedAt, "retention": r.Retention.String(),
		}
		if e.StorageID != nil {
			meta["storage_id"] = *e.StorageID
		}
		if left != "" {
			meta["left_in_storage"] = left
		}
		return event(ctx, q, e.OrgID, e.ID, EventPurged, fmt.Sprintf("export:%d:purged", e.ID), meta)
	})
}

// SweepOrphans deletes the objects under every project's exports/ prefix in
// labelq's own bucket (never an export storage's: see RetentionHandler) that
// are older than OrphanGrace and are not the archive of a completed, unpurged
// export, and returns how many it deleted. It walks the bucket (orgs/, then
// each org's projects/, then each project's exports/) rather than the rows, so
// it finds objects whose row is gone or never existed; it lists no file
// objects. An object that cannot be deleted is logged and left for the next
// pass.
func (r *RetentionHandler) SweepOrphans(ctx context.Context) (int, error) {
	now, log := r.clock(), r.logger(ctx)
	grace := r.OrphanGrace
	if grace <= 0 {
		grace = DefaultOrphanGrace
	}
	cutoff := now().Add(-grace)
	swept := 0
	var errs []error
	orgs, err := r.prefixes(ctx, "orgs/")
	if err != nil {
		return 0, err
	}
	for _, org := range orgs {
		orgID, ok := idOf(org, "orgs/")
		if !ok {
			continue
		}
		projects, err := r.prefixes(ctx, org+"projects/")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, pr := range projects {
			projectID, ok := idOf(pr, org+"projects/")
			if !ok {
				continue
			}
			n, err := r.sweepProject(ctx, log, orgID, projectID, pr+"exports/", cutoff)
			swept += n
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if swept > 0 {
		log.InfoContext(ctx, "orphaned export objects deleted", slog.Int("count", swept), slog.Duration("grace", grace))
	}
	return swept, errors.Join(errs...)
}

// sweepProject deletes the orphans under one project's exports/ prefix.
func (r *RetentionHandler) sweepProject(ctx context.Context, log *slog.Logger, orgID, projectID int64, prefix string, cutoff time.Time) (int, error) {
	var old []string
	for o := range r.Store.Client.ListObjects(ctx, r.Store.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return 0, fmt.Errorf("list %s: %w", prefix, o.Err)
		}
		if o.LastModified.Before(cutoff) {
			old = append(old, o.Key)
		}
	}
	q := db.New(r.Pool)
	swept := 0
	var errs []error
	for chunk := range slices.Chunk(old, defaultRetentionBatch) {
		kept, err := q.ExportLogKeptPaths(ctx, db.ExportLogKeptPathsParams{ProjectID: projectID, OrgID: orgID, Paths: chunk})
		if err != nil {
			return swept, fmt.Errorf("look up the archives under %s: %w", prefix, err)
		}
		for _, key := range chunk {
			if slices.Contains(kept, key) {
				continue
			}
			if err := r.Store.Client.RemoveObject(ctx, r.Store.Bucket, key, minio.RemoveObjectOptions{}); err != nil && !storage.IsNotFound(err) {
				log.ErrorContext(ctx, "could not delete an orphaned export object; the next pass tries again",
					slog.String("key", key), slog.String("error", err.Error()))
				errs = append(errs, fmt.Errorf("delete orphan %s: %w", key, err))
				continue
			}
			log.InfoContext(ctx, "orphaned export object deleted", slog.String("key", key))
			swept++
		}
	}
	return swept, errors.Join(errs...)
}

// prefixes lists the "directories" right under prefix.
func (r *RetentionHandler) prefixes(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for o := range r.Store.Client.ListObjects(ctx, r.Store.Bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, o.Err)
		}
		if strings.HasSuffix(o.Key, "/") {
			out = append(out, o.Key)
		}
	}
	return out, nil
}

// idOf reads the id in a prefix such as "orgs/12/" after parent "orgs/".
func idOf(prefix, parent string) (int64, bool) {
	id, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(prefix, parent), "/"), 10, 64)
	return id, err == nil && id > 0
}
