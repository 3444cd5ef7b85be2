package tasks

import (
	"time"

	"github.com/labelq/labelq/internal/queue"
)

// Storages -----------------------------------------------------------------------

// StorageSync walks an import storage (a sync_runs row) page by page, registering
// what is new or changed, each page in one transaction with the run's checkpoint.
// A retry (or a redelivery after a crash) resumes after the checkpoint; an
// unreachable endpoint retries with backoff.
type StorageSync struct {
	RunID int64 `json:"run_id"`
	// Run is "" for the run's first task and distinct for a re-queue (the
	// reconciler's, after a task was lost). Not part of the payload.
	Run string `json:"-"`
}

func (StorageSync) Kind() string { return "storage:sync" }
func (StorageSync) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueSync, MaxRetry: 12, Timeout: 6 * time.Hour}
}
func (a StorageSync) Validate() error  { return positive("run_id", a.RunID) }
func (a StorageSync) TaskID() string   { return taskID(a.Kind(), a.RunID, a.Run) }
func (a StorageSync) SubjectID() int64 { return a.RunID }

// ScheduleSync is a storage's sync schedule firing: its handler creates the sync
// run of the tick (unique per storage and tick), or joins the live one. Queued by
// asynq's periodic task manager, like ScheduleExport.
type ScheduleSync struct {
	StorageID int64 `json:"storage_id"`
}

func (ScheduleSync) Kind() string { return "schedule:storage_sync" }
func (ScheduleSync) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueSync, MaxRetry: 10}
}
func (a ScheduleSync) Validate() error { return positive("storage_id", a.StorageID) }
