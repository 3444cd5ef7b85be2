package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
)

// Event is one thing that happened, as a state change reports it to Emit.
type Event struct {
	OrgID int64
	// ProjectID is the project the entity belongs to (nil for none): endpoints
	// limited to projects receive only their projects' events.
	ProjectID  *int64
	Type       string
	EntityType db.EntityType
	EntityID   int64
	// DedupKey makes the event once-only: the same key emitted again (a task
	// redelivered after its transaction committed) writes nothing. Use the key of
	// the state change's event_log row.
	DedupKey string
	// Data is the type's data struct (FileVersionData, ...).
	Data any
	// At is when it happened (the envelope's timestamp); zero is now.
	At time.Time
	// OnlyEndpoint sends the event to that endpoint alone (a test ping).
	OnlyEndpoint int64
}

// Emitted says what Emit wrote: the event's id (empty when no endpoint subscribes,
// or when the event was already written) and its deliveries.
type Emitted struct {
	ID         string
	Deliveries []int64
}

// Emit writes ev and one delivery, with its webhook:deliver task in the outbox, per
// enabled endpoint of the organization that subscribes to it, all in the caller's
// transaction (q): the event exists if and only if the state change committed. When
// no endpoint subscribes nothing is written (one round trip, nothing else).
func Emit(ctx context.Context, q *db.Queries, ev Event) (Emitted, error) {
	if !Known(ev.Type) {
		return Emitted{}, fmt.Errorf("webhook: unknown event type %q", ev.Type)
	}
	at := ev.At
	if at.IsZero() {
		at = time.Now()
	}
	id := NewEventID()
	body, err := json.Marshal(Envelope{ID: id, Type: ev.Type, Timestamp: at.UTC().Truncate(time.Millisecond), OrganizationID: ev.OrgID, Data: ev.Data})
	if err != nil {
		return Emitted{}, fmt.Errorf("webhook: encode %s: %w", ev.Type, err)
	}
	var dedup *string
	if ev.DedupKey != "" {
		k := "wh:" + ev.DedupKey
		if len(k) > 300 {
			k = k[:300]
		}
		dedup = &k
	}
	ids, err := q.WebhookEmit(ctx, db.WebhookEmitParams{
		OrgID: ev.OrgID, EventType: ev.Type, ProjectID: ev.ProjectID, OnlyEndpoint: ev.OnlyEndpoint,
		PublicID: id, EntityType: ev.EntityType, EntityID: ev.EntityID, DedupKey: dedup, Body: string(body),
	})
	if err != nil {
		return Emitted{}, fmt.Errorf("webhook: write %s event: %w", ev.Type, err)
	}
	if len(ids) == 0 {
		return Emitted{}, nil
	}
	args := make([]tasks.Queued, len(ids))
	for i, d := range ids {
		args[i] = tasks.WebhookDeliver{DeliveryID: d}
	}
	if err := outbox.AddMany(ctx, q, ev.OrgID, args); err != nil {
		return Emitted{}, fmt.Errorf("webhook: queue %s deliveries: %w", ev.Type, err)
	}
	return Emitted{ID: id, Deliveries: ids}, nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewEventID is a fresh event id: "msg_" and 26 random base32 characters (128 bits).
func NewEventID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "msg_" + strings.ToLower(idEncoding.EncodeToString(b))
}
