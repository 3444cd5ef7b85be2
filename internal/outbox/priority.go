package outbox

import (
	"context"
)

// Priority orders an organization's waiting work: interactive work is admitted
// before bulk work of the same organization (the outbox's priority column).
type Priority int16

const (
	// PriorityInteractive is work someone waits for: an upload through the API,
	// "pre-annotate now", "match now", an export on demand. The default.
	PriorityInteractive Priority = 0
	// PriorityBulk is work nobody watches item by item: a sync page, a
	// versions:batch registration, a scheduled export, the reconciler's repairs.
	PriorityBulk Priority = 1
)

func (p Priority) String() string {
	if p == PriorityBulk {
		return "bulk"
	}
	return "interactive"
}

type priorityKey struct{}

// WithPriority makes p the priority of the tasks queued with ctx (by Add and AddMany
// without As). The worker sets it for the task it runs, so what a bulk task queues
// next is bulk too.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf is ctx's priority (WithPriority), interactive when it has none.
func PriorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// headerPriority carries a bulk task's priority in its asynq headers, from the
// relay to the worker's middleware.
const headerPriority = "labelq-priority"
