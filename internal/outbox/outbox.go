// Package outbox makes "saved in Postgres" and "queued in Redis" one event. A state
// change writes its next tasks as outbox rows in the same transaction (Add); the relay
// (Relay) moves committed rows into asynq with their deterministic task ids, so a
// rolled-back change queues nothing and a relay that dies between commit and enqueue
// loses nothing and duplicates nothing.
package outbox

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
)

// Options are the asynq options a row carries to the relay (the outbox's options
// column). Rows written before a deploy are read by the relay after it, so the JSON
// names stay.
type Options struct {
	MaxRetry  *int          `json:"max_retry,omitempty"`
	Timeout   time.Duration `json:"timeout,omitempty"`
	Retention time.Duration `json:"retention,omitempty"`
	// Group aggregates tasks (project:match per project) instead of a task id.
	Group string `json:"group,omitempty"`
}

// AddOption changes how one task is queued.
type AddOption func(*addOptions)

type addOptions struct {
	at       time.Time
	priority *Priority
}

// At delays the task until t.
func At(t time.Time) AddOption { return func(o *addOptions) { o.at = t } }

// As queues the task as work of priority p, whatever the context says.
func As(p Priority) AddOption { return func(o *addOptions) { o.priority = &p } }

// priority is the option's priority, else the context's (the priority of the task
// whose handler queues this one: bulk work begets bulk work), else interactive.
func (o addOptions) priorityIn(ctx context.Context) Priority {
	if o.priority != nil {
		return *o.priority
	}
	return PriorityOf(ctx)
}

// Add writes a's task as an outbox row of orgID using the caller's transaction, so
// it is queued once the transaction commits and never if it rolls back. Type,
// queue, payload, options and task id all come from a; its priority from the
// options, else ctx (see PriorityOf). Inside database.Tx the row goes with the
// transaction's next statement or its COMMIT, and an error shows there.
func Add(ctx context.Context, q *db.Queries, orgID int64, a tasks.Queued, opts ...AddOption) error {
	var ao addOptions
	for _, o := range opts {
		o(&ao)
	}
	payload, err := tasks.Payload(a)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	io := a.InsertOpts()
	o, err := json.Marshal(Options{MaxRetry: &io.MaxRetry, Timeout: io.Timeout, Retention: io.Retention, Group: io.Group})
	if err != nil {
		return fmt.Errorf("outbox %s: encode options: %w", a.Kind(), err)
	}
	at := cmp.Or(ao.at, time.Now())
	subject := a.SubjectID()
	if err := q.OutboxInsert(ctx, db.OutboxInsertParams{
		TaskID: a.TaskID(), TaskType: a.Kind(), Queue: io.Queue,
		Payload: payload, Options: o, OrgID: &orgID, SubjectID: &subject, AvailableAt: at,
		Priority: int16(ao.priorityIn(ctx)),
	}); err != nil {
		return fmt.Errorf("outbox %s: %w", a.Kind(), err)
	}
	return nil
}

// AddMany writes the tasks of args as outbox rows of orgID in one statement, in the
// caller's transaction, as Add does for one: a page of a storage sync queues its
// thousand validations with one round trip. Every row is available now (or at
// At's time) and has one priority, chosen as Add chooses it.
func AddMany(ctx context.Context, q *db.Queries, orgID int64, args []tasks.Queued, options ...AddOption) error {
	if len(args) == 0 {
		return nil
	}
	var ao addOptions
	for _, o := range options {
		o(&ao)
	}
	p := db.OutboxInsertManyParams{
		Priority:     int16(ao.priorityIn(ctx)),
		OrgID:        orgID,
		TaskIds:      make([]string, len(args)),
		TaskTypes:    make([]string, len(args)),
		Queues:       make([]string, len(args)),
		Payloads:     make([]string, len(args)),
		Options:      make([]string, len(args)),
		SubjectIds:   make([]int64, len(args)),
		AvailableAts: make([]time.Time, len(args)),
	}
	now := cmp.Or(ao.at, time.Now())
	// Tasks of one kind share their options: encode them once per kind.
	opts := map[string]string{}
	for i, a := range args {
		payload, err := tasks.Payload(a)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		o, ok := opts[a.Kind()]
		if !ok {
			io := a.InsertOpts()
			b, err := json.Marshal(Options{MaxRetry: &io.MaxRetry, Timeout: io.Timeout, Retention: io.Retention, Group: io.Group})
			if err != nil {
				return fmt.Errorf("outbox %s: encode options: %w", a.Kind(), err)
			}
			o = string(b)
			opts[a.Kind()] = o
		}
		p.TaskIds[i], p.TaskTypes[i], p.Queues[i] = a.TaskID(), a.Kind(), a.InsertOpts().Queue
		p.Payloads[i], p.Options[i], p.SubjectIds[i], p.AvailableAts[i] = string(payload), o, a.SubjectID(), now
	}
	if err := q.OutboxInsertMany(ctx, p); err != nil {
		return fmt.Errorf("outbox: insert %d tasks: %w", len(args), err)
	}
	return nil
}
