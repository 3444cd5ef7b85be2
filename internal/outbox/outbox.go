// Package outbox makes "saved in Postgres" and "queued in Redis" one event. A state
// change writes its next tasks as outbox rows in the same transaction (Add); the relay
// (Relay) moves committed rows into asynq with their deterministic task ids, so a
// rolled-back change queues nothing and a relay that dies between commit and enqueue
// loses nothing and duplicates nothing.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/labelq/labelq/internal/db"
)

// Intent is one task to queue once the surrounding transaction commits.
type Intent struct {
	// TaskID is the asynq task id; the same id can only be queued once while the
	// task is pending, active, retrying or retained, which makes relaying idempotent.
	TaskID  string
	Type    string
	Queue   string
	Payload any
	OrgID   *int64
	Options Options
	// ProcessAt delays the task (zero: now).
	ProcessAt time.Time
}

// Options are the asynq options an intent carries through the outbox.
type Options struct {
	MaxRetry  *int          `json:"max_retry,omitempty"`
	Timeout   time.Duration `json:"timeout,omitempty"`
	Retention time.Duration `json:"retention,omitempty"`
	// Group aggregates tasks (project:match per project) instead of a task id.
	Group string `json:"group,omitempty"`
}

// Add writes the intent as an outbox row using the caller's transaction. Inside
// database.Tx the row goes with the transaction's next statement or its COMMIT, and
// an error shows there.
func Add(ctx context.Context, q *db.Queries, in Intent) error {
	payload, err := json.Marshal(in.Payload)
	if err != nil {
		return fmt.Errorf("outbox %s: encode payload: %w", in.Type, err)
	}
	opts, err := json.Marshal(in.Options)
	if err != nil {
		return fmt.Errorf("outbox %s: encode options: %w", in.Type, err)
	}
	at := in.ProcessAt
	if at.IsZero() {
		at = time.Now()
	}
	if err := q.OutboxInsert(ctx, db.OutboxInsertParams{
		TaskID: in.TaskID, TaskType: in.Type, Queue: in.Queue,
		Payload: payload, Options: opts, OrgID: in.OrgID, AvailableAt: at,
	}); err != nil {
		return fmt.Errorf("outbox %s: %w", in.Type, err)
	}
	return nil
}
