package tasks

import (
	"fmt"
	"time"

	"github.com/labelq/labelq/internal/queue"
)

// Webhooks -----------------------------------------------------------------------

// WebhookDeliver makes the next attempt of one webhook delivery (a
// webhook_deliveries row): POST the event's stored body, signed, to the endpoint.
// The row, not asynq, keeps the attempt count and the retry schedule: a failed
// attempt records itself and asks for the next one after the schedule's delay (a
// queue.RetryAfterError), so MaxRetry is only a ceiling on asynq's bookkeeping, which
// also counts the short waits for the endpoint's concurrency slot.
type WebhookDeliver struct {
	DeliveryID int64 `json:"delivery_id"`
	// Run is "" for the delivery's first task, "r<round>" for a redelivery and
	// distinct for the reconciler's re-queue. Not part of the payload.
	Run string `json:"-"`
}

func (WebhookDeliver) Kind() string { return "webhook:deliver" }
func (WebhookDeliver) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueWebhook, MaxRetry: 10000, Timeout: 2 * time.Minute}
}
func (a WebhookDeliver) Validate() error  { return positive("delivery_id", a.DeliveryID) }
func (a WebhookDeliver) TaskID() string   { return taskID(a.Kind(), a.DeliveryID, a.Run) }
func (a WebhookDeliver) SubjectID() int64 { return a.DeliveryID }

// RedeliverRun is the Run of a delivery's redelivery round.
func RedeliverRun(round int32) string { return fmt.Sprintf("r%d", round) }

// WebhookRetention is the periodic pass that deletes webhook events, deliveries and
// attempts older than LABELQ_WEBHOOK_RETENTION.
type WebhookRetention struct{}

func (WebhookRetention) Kind() string { return "maintenance:webhook_retention" }
func (WebhookRetention) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueDefault, MaxRetry: 0}
}
func (WebhookRetention) Validate() error { return nil }
