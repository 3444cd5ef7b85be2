// Package export is the project:export worker: it streams a project's approved
// results and files into one ZIP written straight into object storage, hashing every
// byte on the way, with live progress, a manifest and a download link.
package export

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
)

// TypeName is the task type; never renamed once shipped.
const TypeName = "project:export"

// Payload carries the export_logs row to produce.
type Payload struct {
	ExportID int64 `json:"export_id"`
}

// TaskIDPrefix is what every task id of an export starts with.
func TaskIDPrefix(exportID int64) string { return fmt.Sprintf("%s:%d", TypeName, exportID) }

// Intent is the outbox entry that runs an export.
func Intent(orgID, exportID int64, nonce string) outbox.Intent {
	id := TaskIDPrefix(exportID)
	if nonce != "" {
		id += ":" + nonce
	}
	return outbox.Intent{
		TaskID: id, Type: TypeName, Queue: queue.QueueExport,
		Payload: Payload{ExportID: exportID}, OrgID: &orgID,
		Options: outbox.Options{MaxRetry: ptr(8), Timeout: 12 * time.Hour},
	}
}

// NewTask builds the asynq task directly (tests, tools).
func NewTask(exportID int64) (*asynq.Task, error) {
	b, err := json.Marshal(Payload{ExportID: exportID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeName, b, asynq.Queue(queue.QueueExport)), nil
}

func ptr[T any](v T) *T { return &v }
