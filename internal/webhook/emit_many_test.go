package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
)

func TestEmitMany(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	keys := testenv.StorageKeyring(t)
	org := pg.Org(t)
	a, b := pg.Project(t, org.ID), pg.Project(t, org.ID)
	all, _ := pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://example.com/all"})
	onlyB, _ := pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://example.com/b", ProjectIDs: []int64{b.ID}})
	pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://example.com/ex", EventTypes: []string{webhook.ExportCompleted}})

	event := func(orgID int64, pr *db.Project, id int64) webhook.Event {
		ev := webhook.Event{
			OrgID: orgID, Type: webhook.AssignmentCreated, EntityType: db.EntityTypeAssignment, EntityID: id,
			DedupKey: fmt.Sprintf("test:%d", id), Data: webhook.AssignmentData{AssignmentID: id, Status: "assigned"},
		}
		if pr != nil {
			ev.ProjectID = &pr.ID
		}
		return ev
	}
	emit := func(evs ...webhook.Event) ([]webhook.Emitted, error) {
		var out []webhook.Emitted
		err := database.Tx(ctx, pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
			var err error
			out, err = webhook.EmitMany(ctx, q, evs)
			return err
		})
		return out, err
	}

	out, err := emit(event(org.ID, &a, 1), event(org.ID, &b, 2), event(org.ID, nil, 3), event(org.ID, &b, 2))
	require.NoError(t, err)
	require.Len(t, out, 3, "the second event with key test:2 is the first's")
	testenv.RequireWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeAssignment, 1, webhook.AssignmentCreated, []int64{all.ID}, nil)
	testenv.RequireWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeAssignment, 2, webhook.AssignmentCreated, []int64{all.ID, onlyB.ID}, nil)
	ev := testenv.RequireWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeAssignment, 3, webhook.AssignmentCreated, []int64{all.ID}, nil)
	require.Nil(t, ev.ProjectID, "an event of no project goes to endpoints of every project only")
	var env webhook.Envelope
	require.NoError(t, json.Unmarshal([]byte(ev.Body), &env))
	require.Equal(t, webhook.AssignmentCreated, env.Type)
	require.Equal(t, org.ID, env.OrganizationID)
	deliveries := 0
	for _, e := range out {
		deliveries += len(e.Deliveries)
		for _, d := range e.Deliveries {
			testenv.RequireQueued(t, pg.Pool, org.ID, tasks.WebhookDeliver{DeliveryID: d})
		}
	}
	require.Equal(t, 4, deliveries)

	// Emitted again (a redelivered task): nothing more.
	out, err = emit(event(org.ID, &a, 1), event(org.ID, &b, 2))
	require.NoError(t, err)
	require.Empty(t, out)
	testenv.RequireWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeAssignment, 1, webhook.AssignmentCreated, []int64{all.ID}, nil)

	// An organization with no endpoint: nothing written.
	quiet := pg.Org(t)
	out, err = emit(event(quiet.ID, nil, 10))
	require.NoError(t, err)
	require.Empty(t, out)
	testenv.RequireNoWebhookEvent(t, pg.Pool, quiet.ID, db.EntityTypeAssignment, 10)

	// A large batch asks first whether anyone subscribes: nobody in quiet, and
	// only to another type in other; everyone of org gets all of it.
	other := pg.Org(t)
	pg.InsertWebhook(t, keys, other.ID, testenv.WebhookRow{URL: "https://example.com/other", EventTypes: []string{webhook.MatchCompleted}})
	batch := func(orgID int64, pr *db.Project, from int64) []webhook.Event {
		evs := make([]webhook.Event, 100)
		for i := range evs {
			evs[i] = event(orgID, pr, from+int64(i))
		}
		return evs
	}
	for _, o := range []db.Organization{quiet, other} {
		out, err = emit(batch(o.ID, nil, 100)...)
		require.NoError(t, err)
		require.Empty(t, out)
		var n int
		require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE org_id = $1`, o.ID).Scan(&n))
		require.Zero(t, n)
	}
	out, err = emit(batch(org.ID, &b, 100)...)
	require.NoError(t, err)
	require.Len(t, out, 100)
	for _, e := range out {
		require.Len(t, e.Deliveries, 2, "all and onlyB")
	}

	// One call is one organization and one type.
	_, err = emit(event(org.ID, &a, 20), event(quiet.ID, nil, 21))
	require.ErrorContains(t, err, "one organization")
	mixed := event(org.ID, &a, 22)
	mixed.Type = webhook.AssignmentRevoked
	_, err = emit(event(org.ID, &a, 23), mixed)
	require.ErrorContains(t, err, "one organization, type")
	testenv.RequireNoWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeAssignment, 20)
}
