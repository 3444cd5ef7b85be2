package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
)

// Assertions over the webhook events a state change wrote (webhook.Emit in its
// transaction): tests of each worker ask for the one event of an entity, its
// decoded data, and its deliveries.

// WebhookEnvelope is a webhook event's body as a receiver decodes it, with the
// data left for the caller's type.
type WebhookEnvelope struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Timestamp      string          `json:"timestamp"`
	OrganizationID int64           `json:"organization_id"`
	Data           json.RawMessage `json:"data"`
}

// RequireWebhookEvent asserts that the entity has exactly one webhook event of
// orgID, of type typ, whose body is an envelope naming it (id, type, organization)
// with data that decodes strictly into data (a pointer to the type's data struct);
// that it has one delivery for each of endpoints and none for any other endpoint;
// and that each delivery's webhook:deliver task is in the outbox. It returns the
// event's row.
func RequireWebhookEvent(t testing.TB, q db.DBTX, orgID int64, et db.EntityType, entityID int64, typ string, endpoints []int64, data any) db.WebhookEvent {
	t.Helper()
	ctx := context.Background()
	evs, err := db.New(q).WebhookEventsOfEntity(ctx, db.WebhookEventsOfEntityParams{OrgID: orgID, EntityType: et, EntityID: entityID})
	require.NoError(t, err, "testenv: read webhook events")
	require.Len(t, evs, 1, "testenv: webhook events of %s %d", et, entityID)
	ev := evs[0]
	require.Equal(t, typ, ev.EventType, "testenv: webhook event type of %s %d", et, entityID)

	var env WebhookEnvelope
	require.NoError(t, json.Unmarshal([]byte(ev.Body), &env), "testenv: webhook event body %s", ev.Body)
	require.Equal(t, ev.PublicID, env.ID, "testenv: the body's id is the event's public id")
	require.Equal(t, typ, env.Type)
	require.Equal(t, orgID, env.OrganizationID)
	require.NotEmpty(t, env.Timestamp)
	if data != nil {
		dec := json.NewDecoder(bytes.NewReader(env.Data))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(data), "testenv: webhook data %s", env.Data)
	}

	rows, err := q.Query(ctx, `SELECT id, endpoint_id FROM webhook_deliveries WHERE event_id = $1 ORDER BY endpoint_id`, ev.ID)
	require.NoError(t, err, "testenv: list webhook deliveries")
	type delivery struct{ ID, EndpointID int64 }
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[delivery])
	require.NoError(t, err, "testenv: list webhook deliveries")
	got := make([]int64, len(ds))
	for i, d := range ds {
		got[i] = d.EndpointID
	}
	want := slices.Sorted(slices.Values(endpoints))
	require.Equal(t, want, got, "testenv: endpoints with a delivery of webhook event %s", ev.PublicID)
	for _, d := range ds {
		RequireQueued(t, q, orgID, tasks.WebhookDeliver{DeliveryID: d.ID})
	}
	return ev
}

// RequireNoWebhookEvent asserts that the entity has no webhook event of orgID.
func RequireNoWebhookEvent(t testing.TB, q db.DBTX, orgID int64, et db.EntityType, entityID int64) {
	t.Helper()
	evs, err := db.New(q).WebhookEventsOfEntity(context.Background(), db.WebhookEventsOfEntityParams{OrgID: orgID, EntityType: et, EntityID: entityID})
	require.NoError(t, err, "testenv: read webhook events")
	require.Empty(t, evs, "testenv: webhook events of %s %d", et, entityID)
}
