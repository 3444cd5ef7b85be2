package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
)

// SyncHandler is schedule:storage_sync: it starts the sync run of the tick a
// storage's schedule firing stands for.
//
// Each tick is handled once. The first firing of a tick writes the storage's
// sync_scheduled event under the tick's dedup key, in the transaction that starts
// the run; a second firing (a second scheduler, a redelivery) finds the key taken
// and does nothing. A tick that fires while a run of the storage is still live (an
// API request's, a notification-lost catch-up, the previous tick's run still
// walking a large bucket) joins that run rather than queueing another walk after
// it: the bucket is being listed at that moment, and a second run right behind it
// would list the same keys again for nothing. The tick's event says which run it
// made or joined ("run_id", "joined"). A tick that makes a run records it on the
// run (scheduled_for), where the unique (storage_id, scheduled_for) is the second
// guard.
type SyncHandler struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	Now  func() time.Time
}

// SyncEventScheduled is the storage's event of a handled tick.
const SyncEventScheduled = "sync_scheduled"

// Work starts (or joins) the sync run of the tick a firing stands for. Mount it
// with tasks.Register.
func (h *SyncHandler) Work(ctx context.Context, p tasks.ScheduleSync) error {
	log := logging.From(ctx, h.Log)
	now, err := clock(ctx, h.Pool, h.Now)
	if err != nil {
		return err
	}
	// As for exports: a firing is processed shortly after its tick, give or take the
	// clock skew between the scheduler's machine and this one.
	now = now.Add(2 * time.Second)
	return database.Tx(ctx, h.Pool, func(q *db.Queries, _ pgx.Tx) error {
		st, err := q.StorageGetByID(ctx, p.StorageID)
		if errors.Is(err, pgx.ErrNoRows) {
			log.InfoContext(ctx, "storage was deleted; sync schedule firing ignored", slog.Int64("storage_id", p.StorageID))
			return nil
		}
		if err != nil {
			return fmt.Errorf("read storage %d: %w", p.StorageID, err)
		}
		// The scheduler re-reads schedules every LABELQ_SCHEDULE_SYNC: a firing may
		// follow a change that took the schedule away.
		if st.Kind != db.StorageKindImport || !st.Enabled || st.DeletedAt != nil || st.SyncCron == nil {
			return nil
		}
		tick, err := LatestTick(Spec(*st.SyncCron, st.SyncTimezone), time.Time{}, now)
		if err != nil {
			return queue.Permanent(fmt.Errorf("storage %d: sync cron spec %q: %w", st.ID, *st.SyncCron, err))
		}
		if tick.IsZero() {
			return nil
		}
		meta, err := json.Marshal(map[string]any{"scheduled_for": tick})
		if err != nil {
			return err
		}
		eventID, err := q.SyncTickClaim(ctx, db.SyncTickClaimParams{
			OrgID: st.OrgID, StorageID: st.ID, DedupKey: tickKey(st.ID, tick), Metadata: meta,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // another firing of this tick handled it
		}
		if err != nil {
			return fmt.Errorf("claim tick %s of storage %d: %w", tick.Format(time.RFC3339), st.ID, err)
		}
		run, joined, err := ingest.StartRun(ctx, q, st, "schedule", &tick)
		if err != nil {
			return fmt.Errorf("start the sync run of storage %d for tick %s: %w", st.ID, tick.Format(time.RFC3339), err)
		}
		rec, err := json.Marshal(map[string]any{"run_id": run.ID, "joined": joined})
		if err != nil {
			return err
		}
		if joined {
			log.InfoContext(ctx, "sync schedule tick joined the storage's live run",
				slog.Int64("storage_id", st.ID), slog.Int64("run_id", run.ID), slog.Time("scheduled_for", tick))
		}
		return q.SyncTickRecordRun(ctx, db.SyncTickRecordRunParams{ID: eventID, Run: rec})
	})
}

// tickKey is the dedup key of a storage's tick event.
func tickKey(storageID int64, tick time.Time) string {
	return fmt.Sprintf("storage:%d:sync_tick:%d", storageID, tick.Unix())
}
