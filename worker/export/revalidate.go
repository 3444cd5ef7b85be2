package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/zipstream"
)

// revalidateChanged sends the version whose stored bytes no longer match what
// file:validate measured (err is the pack's checksum or size mismatch) back to
// validation: pending, with a file:validate task through the outbox. The export
// itself fails with the reason (DESIGN.md: it never ships other bytes); the
// version is judged again before anything uses it. Other errors are ignored.
func (h *Handler) revalidateChanged(ctx context.Context, rn *run, err error) {
	var versionID int64
	var cm *zipstream.ChecksumMismatchError
	var sm *zipstream.SizeMismatchError
	switch {
	case errors.As(err, &cm):
		versionID = cm.VersionID
	case errors.As(err, &sm):
		versionID = sm.VersionID
	default:
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	queued := false
	terr := database.Tx(wctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		v, err := q.FileVersionGetByID(wctx, versionID)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && (v.OrgID != rn.orgID || v.Checksum == nil)) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := q.FileVersionRevalidate(wctx, db.FileVersionRevalidateParams{ID: v.ID, Checksum: *v.Checksum}); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // not valid any more: another run is on it
			}
			return err
		}
		queued = true
		return outbox.Add(wctx, q, v.OrgID, tasks.Validate{VersionID: v.ID})
	})
	if terr != nil {
		// The export fails anyway; the reconciler finds the version again only
		// through a later export or pre-annotation, so say it loudly.
		rn.log.ErrorContext(ctx, "could not send a changed version back to validation", slog.Int64("version_id", versionID), slog.Any("error", fmt.Errorf("revalidate: %w", terr)))
		return
	}
	if queued {
		rn.log.WarnContext(ctx, "stored bytes changed after validation; version sent back to validation", slog.Int64("version_id", versionID))
	}
}
