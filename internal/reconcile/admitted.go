package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/db"
)

// AdmittedGrace is how long after its enqueue a row holding an admission slot is
// left alone: the task is almost surely alive, and asking Redis about every fresh
// one would cost a round trip per task.
const AdmittedGrace = 30 * time.Second

// repairAdmitted looks at every outbox row holding an admission slot (admitted,
// in Redis, not finished) and asks asynq about its task: one gone from Redis
// (FLUSHALL, a restart without persistence, a task deleted by hand) goes back to
// pending in its old place in line, slot freed, for the relay to admit it again
// under the same task id; one asynq holds as completed or archived gives its slot
// back (the worker's finish was lost). Run before the finders, so that a row
// readmitted here counts as waiting in the outbox when they look. It answers how
// many rows it readmitted and freed.
func (r *Reconciler) repairAdmitted(ctx context.Context, now time.Time) (readmitted, freed int64, err error) {
	q := db.New(r.Pool)
	grace := min(AdmittedGrace, r.After/2)
	var after int64
	for {
		rows, err := q.OutboxListHeld(ctx, db.OutboxListHeldParams{EnqueuedBefore: now.Add(-grace), AfterID: after, MaxRows: batch})
		if err != nil {
			return readmitted, freed, fmt.Errorf("list admitted rows: %w", err)
		}
		var gone, over []int64
		for _, row := range rows {
			after = row.ID
			info, err := r.Inspector.GetTaskInfo(row.Queue, row.TaskID)
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
				gone = append(gone, row.ID)
			case err != nil:
				return readmitted, freed, fmt.Errorf("inspect %s: %w", row.TaskID, err)
			case !alive[info.State]:
				over = append(over, row.ID)
			}
		}
		if len(gone) > 0 {
			kinds, err := q.OutboxReadmit(ctx, db.OutboxReadmitParams{
				Ids: gone, Reason: "the task was gone from Redis while it held its admission slot: admitted again by the reconciler",
			})
			if err != nil {
				return readmitted, freed, fmt.Errorf("readmit rows: %w", err)
			}
			readmitted += int64(len(kinds))
			if r.Metrics != nil {
				for _, k := range kinds {
					r.Metrics.ReconcileRequeued.WithLabelValues(k).Inc()
				}
			}
		}
		if len(over) > 0 {
			n, err := q.OutboxFinishRows(ctx, over)
			if err != nil {
				return readmitted, freed, fmt.Errorf("free slots: %w", err)
			}
			freed += n
		}
		if len(rows) < batch {
			break
		}
	}
	if readmitted+freed > 0 {
		if err := q.OutboxWakeRelays(ctx); err != nil {
			return readmitted, freed, fmt.Errorf("wake the relays: %w", err)
		}
		r.Log.WarnContext(ctx, "reconciler repaired admitted work whose task was gone or over in Redis",
			slog.Int64("readmitted", readmitted), slog.Int64("freed", freed))
	}
	return readmitted, freed, nil
}
