package webhookdeliver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	webhookdeliver "github.com/labelq/labelq/worker/webhook"
)

func TestRetentionDeletesOldFinishedEventsInBatches(t *testing.T) {
	f := newFixture(t)
	rc := f.receiver(t, status(http.StatusOK))
	ep := f.endpoint(t, rc, testenv.WebhookRow{})
	h := webhookdeliver.NewHandler(f.deps)
	ctx := context.Background()

	var old []int64
	for range 5 {
		id := f.ping(t, ep)
		require.NoError(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: id}))
		old = append(old, id)
	}
	pending := f.ping(t, ep) // old, but still pending: kept
	recent := f.ping(t, ep)
	require.NoError(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: recent}))
	_, err := f.pg.Pool.Exec(ctx, `UPDATE webhook_events SET created_at = now() - interval '31 days'
		WHERE id IN (SELECT event_id FROM webhook_deliveries WHERE id = ANY ($1))`, append(old, pending))
	require.NoError(t, err)

	r := &webhookdeliver.RetentionHandler{Pool: f.pg.Pool, Retention: 30 * 24 * time.Hour, BatchSize: 2}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), n)

	count := func(sql string) int {
		var c int
		require.NoError(t, f.pg.Pool.QueryRow(ctx, sql).Scan(&c))
		return c
	}
	require.Equal(t, 2, count(`SELECT count(*) FROM webhook_events`))
	require.Equal(t, 2, count(`SELECT count(*) FROM webhook_deliveries`), "deliveries go with their events")
	require.Equal(t, 1, count(`SELECT count(*) FROM webhook_attempts`), "attempts go with their deliveries")
	f.delivery(t, pending)
	f.delivery(t, recent)

	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a second pass finds nothing")
}
