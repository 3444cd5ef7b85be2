package webhookdeliver_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	webhookdeliver "github.com/labelq/labelq/worker/webhook"
)

// LabelqWebhookEndpointDisabled counts an endpoint labelq disabled once: the
// delivery that disabled it, not a later one the disabled endpoint fails.
func TestDisablingAnEndpointIsCounted(t *testing.T) {
	f := newFixture(t)
	m := metrics.New()
	f.deps.Metrics = m
	ep := f.endpoint(t, f.receiver(t, status(http.StatusGone)), testenv.WebhookRow{})
	healthy := f.endpoint(t, f.receiver(t, status(http.StatusOK)), testenv.WebhookRow{})
	h := webhookdeliver.NewHandler(f.deps)
	ids := []int64{f.ping(t, ep), f.ping(t, healthy), f.ping(t, ep)} // the second to ep finds it disabled
	for _, id := range ids {
		require.NoError(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	}
	require.Equal(t, 1.0, counted(t, m.WebhookDisabled))
	require.Equal(t, 1.0, counted(t, m.WebhookAttempts.WithLabelValues("gone")))
	require.Equal(t, 1.0, counted(t, m.WebhookAttempts.WithLabelValues("succeeded")))
}

// counted is a counter's value.
func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
