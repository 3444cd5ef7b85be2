// Package validate is the file:validate worker: it streams an uploaded file version
// out of object storage, verifies its bytes against every reference there is, and
// marks it valid, corrupt, missing or rejected, queueing the next pipeline steps when
// it is valid.
package validate

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
)

// TypeName is the task type; never renamed once shipped.
const TypeName = "file:validate"

// Payload carries the id of the version to validate, never its state.
type Payload struct {
	VersionID int64 `json:"version_id"`
}

// TaskIDPrefix is what every task id of a version starts with (the reconciler
// looks tasks up by it).
func TaskIDPrefix(versionID int64) string { return fmt.Sprintf("%s:%d", TypeName, versionID) }

// Intent is the outbox entry that validates a version. nonce is "" for the first
// validation and distinct for each re-validation, so a re-run is not taken for a
// duplicate of the finished first task.
func Intent(orgID, versionID int64, nonce string) outbox.Intent {
	id := TaskIDPrefix(versionID)
	if nonce != "" {
		id += ":" + nonce
	}
	return outbox.Intent{
		TaskID: id, Type: TypeName, Queue: queue.QueueValidate,
		Payload: Payload{VersionID: versionID}, OrgID: &orgID,
		Options: outbox.Options{MaxRetry: ptr(25), Timeout: 2 * time.Hour},
	}
}

// NewTask builds the asynq task directly (tests, tools); production code queues
// through Intent and the outbox.
func NewTask(versionID int64) (*asynq.Task, error) {
	b, err := json.Marshal(Payload{VersionID: versionID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeName, b, asynq.Queue(queue.QueueValidate)), nil
}

func ptr[T any](v T) *T { return &v }
