package tasks

import "github.com/labelq/labelq/internal/queue"

// Retention is the periodic pass that keeps the growing tables bounded
// (internal/retention): event_log's monthly partitions made ahead and dropped past
// LABELQ_EVENT_LOG_RETENTION, the outbox, idempotency keys, LLM runs and sync runs
// deleted in batches. A pass that fails is not retried: the next one goes on.
type Retention struct{}

func (Retention) Kind() string { return "maintenance:retention" }
func (Retention) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueDefault, MaxRetry: 0}
}
func (Retention) Validate() error { return nil }
