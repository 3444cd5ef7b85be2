package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
)

// checkFirstAt is the batch size from which EmitMany asks whether anyone
// subscribes before it encodes the bodies: for an organization with no endpoint,
// encoding and sending a thousand bodies for nothing costs far more than the
// question's round trip (BenchmarkMatchHandler5000x500: 30 ms of a 340 ms run).
const checkFirstAt = 64

// EmitMany is Emit for many events of one type, one entity type and one
// organization (a matching run's assignment.created, one per assignment): one
// statement writes every event some endpoint subscribes to and their deliveries,
// and one more (sent with the transaction's next statement or its COMMIT) their
// webhook:deliver tasks, however many events there are. A batch of checkFirstAt
// events or more first asks whether any endpoint subscribes to the type, and
// stops there when none does. OnlyEndpoint is not supported. The answer lists the
// events written, in no particular order.
func EmitMany(ctx context.Context, q *db.Queries, evs []Event) ([]Emitted, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	first := evs[0]
	if !Known(first.Type) {
		return nil, fmt.Errorf("webhook: unknown event type %q", first.Type)
	}
	for i, ev := range evs {
		if ev.OrgID != first.OrgID || ev.Type != first.Type || ev.EntityType != first.EntityType {
			return nil, fmt.Errorf("webhook: EmitMany takes events of one organization, type and entity type: %d %s %s after %d %s %s",
				ev.OrgID, ev.Type, ev.EntityType, first.OrgID, first.Type, first.EntityType)
		}
		if ev.OnlyEndpoint != 0 {
			return nil, fmt.Errorf("webhook: EmitMany does not send to one endpoint (event %d of %s)", i, ev.Type)
		}
	}
	if len(evs) >= checkFirstAt {
		ok, err := q.WebhookSubscribed(ctx, db.WebhookSubscribedParams{OrgID: first.OrgID, EventType: first.Type})
		if err != nil {
			return nil, fmt.Errorf("webhook: find endpoints for %s: %w", first.Type, err)
		}
		if !ok {
			return nil, nil
		}
	}
	p := db.WebhookEmitManyParams{
		OrgID: first.OrgID, EventType: first.Type, EntityType: first.EntityType,
		PublicIds: make([]string, len(evs)), ProjectIds: make([]int64, len(evs)), EntityIds: make([]int64, len(evs)),
		DedupKeys: make([]string, len(evs)), Bodies: make([]string, len(evs)),
	}
	now := time.Now()
	for i, ev := range evs {
		at := ev.At
		if at.IsZero() {
			at = now
		}
		id := NewEventID()
		body, err := json.Marshal(Envelope{ID: id, Type: ev.Type, Timestamp: at.UTC().Truncate(time.Millisecond), OrganizationID: ev.OrgID, Data: ev.Data})
		if err != nil {
			return nil, fmt.Errorf("webhook: encode %s: %w", ev.Type, err)
		}
		p.PublicIds[i], p.EntityIds[i], p.Bodies[i] = id, ev.EntityID, string(body)
		if ev.ProjectID != nil {
			p.ProjectIds[i] = *ev.ProjectID
		}
		if ev.DedupKey != "" {
			p.DedupKeys[i] = dedupKey(ev.DedupKey)
		}
	}
	rows, err := q.WebhookEmitMany(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("webhook: write %d %s events: %w", len(evs), first.Type, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	args := make([]tasks.Queued, len(rows))
	byEvent := map[string]int{}
	var out []Emitted
	for i, r := range rows {
		args[i] = tasks.WebhookDeliver{DeliveryID: r.DeliveryID}
		k, ok := byEvent[r.PublicID]
		if !ok {
			k = len(out)
			byEvent[r.PublicID] = k
			out = append(out, Emitted{ID: r.PublicID})
		}
		out[k].Deliveries = append(out[k].Deliveries, r.DeliveryID)
	}
	if err := outbox.AddMany(ctx, q, first.OrgID, args); err != nil {
		return nil, fmt.Errorf("webhook: queue %d %s deliveries: %w", len(args), first.Type, err)
	}
	return out, nil
}

// dedupKey is the stored form of an event's dedup key, as Emit writes it.
func dedupKey(k string) string {
	k = "wh:" + k
	if len(k) > 300 {
		k = k[:300]
	}
	return k
}
