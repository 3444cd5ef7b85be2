package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/reconcile"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// LabelqReconcilerRequeues reads labelq_reconcile_requeued_total: a version whose
// task never reached Redis is requeued and counted under its kind, once.
func TestRequeuesAreCountedByKind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	rd := testenv.RedisDB(t)
	insp := asynq.NewInspector(rd.Opt())
	defer insp.Close()
	org := pg.Org(t)
	f := pg.File(t, pg.Project(t, org.ID), "")
	pg.RegisterVersion(t, f, "k", testenv.Declared{}) // pending, and no task anywhere

	m := metrics.New()
	r := &reconcile.Reconciler{
		Pool: pg.Pool, Inspector: insp, Log: testenv.Quiet(), After: time.Minute, Metrics: m,
		Now:     func() time.Time { return time.Now().Add(2 * time.Minute) },
		Finders: reconcile.Finders(),
	}
	validate := m.ReconcileRequeued.WithLabelValues(tasks.Validate{}.Kind())
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1.0, counted(t, validate))

	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "its new task waits in the outbox")
	require.Equal(t, 1.0, counted(t, validate))
	for _, f := range reconcile.Finders() {
		if f.Kind != (tasks.Validate{}).Kind() {
			require.Zero(t, counted(t, m.ReconcileRequeued.WithLabelValues(f.Kind)), "nothing of kind %s was requeued", f.Kind)
		}
	}
}

// counted is a counter's value.
func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
