// Package match is the project:match worker: it loads a project's open annotation
// jobs and candidate people in one snapshot, computes the optimal assignment under
// the hard rules (internal/matching), and writes the assignments with their scores.
package match

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
)

// TypeName is the task type; never renamed once shipped.
const TypeName = "project:match"

// Payload carries the project to match.
type Payload struct {
	ProjectID int64 `json:"project_id"`
}

// Group is the asynq aggregation group of a project's triggers: a burst of uploads
// becomes a few matching runs.
func Group(projectID int64) string { return fmt.Sprintf("project:%d", projectID) }

// TriggerIntent is "a new job exists in project P": aggregated per project. nonce
// makes each trigger's task id unique (triggers are many; the group merges them).
func TriggerIntent(orgID, projectID int64, nonce string) outbox.Intent {
	return outbox.Intent{
		TaskID: fmt.Sprintf("%s:%d:t:%s", TypeName, projectID, nonce), Type: TypeName, Queue: queue.QueueMatch,
		Payload: Payload{ProjectID: projectID}, OrgID: &orgID,
		Options: outbox.Options{MaxRetry: ptr(10), Timeout: 5 * time.Minute, Group: Group(projectID)},
	}
}

// NowIntent runs matching for a project without waiting for the group (the API's
// run-now).
func NowIntent(orgID, projectID int64, nonce string) outbox.Intent {
	return outbox.Intent{
		TaskID: fmt.Sprintf("%s:%d:now:%s", TypeName, projectID, nonce), Type: TypeName, Queue: queue.QueueMatch,
		Payload: Payload{ProjectID: projectID}, OrgID: &orgID,
		Options: outbox.Options{MaxRetry: ptr(10), Timeout: 5 * time.Minute},
	}
}

// NewTask builds the asynq task directly (tests, tools).
func NewTask(projectID int64) (*asynq.Task, error) {
	b, err := json.Marshal(Payload{ProjectID: projectID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeName, b, asynq.Queue(queue.QueueMatch)), nil
}

func ptr[T any](v T) *T { return &v }
