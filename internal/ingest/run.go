package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
)

// Triggers of a sync run (sync_runs.trigger).
const (
	TriggerAPI      = "api"
	TriggerSchedule = "schedule"
)

// ErrNotSyncable says a storage cannot have a sync run: it is an export storage,
// disabled or deleted.
var ErrNotSyncable = errors.New("the storage cannot be synced")

// startAttempts bounds StartRun's retries when the live run it would join ends
// between its insert and its read.
const startAttempts = 3

// StartRun makes storage st's next sync run in the caller's transaction: a pending
// run and its storage:sync outbox row, committed together. When the storage
// already has a live (pending or running) run, or scheduledFor's tick already
// has its run, nothing is written and that run is returned with joined true: one
// run at a time per storage, one per schedule tick.
func StartRun(ctx context.Context, q *db.Queries, st db.Storage, trigger string, scheduledFor *time.Time) (run db.SyncRun, joined bool, err error) {
	switch {
	case st.Kind != db.StorageKindImport:
		return db.SyncRun{}, false, fmt.Errorf("storage %d is an %s storage: %w", st.ID, st.Kind, ErrNotSyncable)
	case st.DeletedAt != nil:
		return db.SyncRun{}, false, fmt.Errorf("storage %d was deleted: %w", st.ID, ErrNotSyncable)
	case !st.Enabled:
		return db.SyncRun{}, false, fmt.Errorf("storage %d is disabled: %w", st.ID, ErrNotSyncable)
	}
	for range startAttempts {
		run, err = q.SyncRunCreate(ctx, db.SyncRunCreateParams{
			OrgID: st.OrgID, ProjectID: st.ProjectID, StorageID: st.ID, Trigger: trigger, ScheduledFor: scheduledFor,
		})
		switch {
		case err == nil:
			if err := outbox.Add(ctx, q, st.OrgID, tasks.StorageSync{RunID: run.ID}); err != nil {
				return db.SyncRun{}, false, err
			}
			return run, false, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return db.SyncRun{}, false, fmt.Errorf("create sync run of storage %d: %w", st.ID, err)
		}
		// A conflict: the tick's run, or the live run. Each statement of a READ
		// COMMITTED transaction sees what committed before it, so the run the
		// insert waited for is visible here.
		if scheduledFor != nil {
			run, err = q.SyncRunGetForTick(ctx, db.SyncRunGetForTickParams{StorageID: st.ID, ScheduledFor: scheduledFor})
			if err == nil {
				return run, true, nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return db.SyncRun{}, false, fmt.Errorf("read sync run of storage %d's tick: %w", st.ID, err)
			}
		}
		run, err = q.SyncRunGetLive(ctx, st.ID)
		if err == nil {
			return run, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return db.SyncRun{}, false, fmt.Errorf("read live sync run of storage %d: %w", st.ID, err)
		}
		// The live run ended in between: try again.
	}
	return db.SyncRun{}, false, fmt.Errorf("storage %d: its live sync run kept ending while a new one was requested; try again", st.ID)
}
