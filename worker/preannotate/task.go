// Package preannotate is the file:preannotate worker: it sends a valid dataset
// version to an OpenAI-compatible model with the project's instructions and label
// schema, and stores the reply as a new llm_output file version, with tokens, latency
// and cost recorded, under shared rate limits and a content cache.
package preannotate

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
)

// TypeName is the task type; never renamed once shipped.
const TypeName = "file:preannotate"

// Payload carries the id of the version to pre-annotate.
type Payload struct {
	VersionID int64 `json:"version_id"`
}

// TaskIDPrefix is what every task id of a version starts with.
func TaskIDPrefix(versionID int64) string { return fmt.Sprintf("%s:%d", TypeName, versionID) }

// Intent is the outbox entry that pre-annotates a version; nonce distinguishes
// explicit re-runs from the pipeline's first run.
func Intent(orgID, versionID int64, nonce string) outbox.Intent {
	id := TaskIDPrefix(versionID)
	if nonce != "" {
		id += ":" + nonce
	}
	return outbox.Intent{
		TaskID: id, Type: TypeName, Queue: queue.QueuePreannotate,
		Payload: Payload{VersionID: versionID}, OrgID: &orgID,
		Options: outbox.Options{MaxRetry: ptr(25), Timeout: 10 * time.Minute},
	}
}

// NewTask builds the asynq task directly (tests, tools).
func NewTask(versionID int64) (*asynq.Task, error) {
	b, err := json.Marshal(Payload{VersionID: versionID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeName, b, asynq.Queue(queue.QueuePreannotate)), nil
}

func ptr[T any](v T) *T { return &v }
