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

// A version whose latest outbox row holds an admission slot is left to
// repairAdmitted even when its task is not in Redis: inside the admitted grace the
// finder must not queue a second task (which would run the work twice and hold a
// second slot); past it, repairAdmitted readmits the same row, under the same id.
func TestHeldRowIsNotRequeuedBesideItsReadmission(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	rd := testenv.RedisDB(t)
	insp := asynq.NewInspector(rd.Opt())
	defer insp.Close()
	org := pg.Org(t)
	f := pg.File(t, pg.Project(t, org.ID), "")
	v := pg.RegisterVersion(t, f, "k", testenv.Declared{})
	task := tasks.Validate{VersionID: v.ID}
	later := time.Now().Add(2 * time.Minute) // the version is stuck by then
	// Admitted and enqueued a second before the reconciler's "now"; Redis lost it.
	_, err := pg.Pool.Exec(ctx, `INSERT INTO outbox (task_id, task_type, queue, payload, options, org_id, subject_id, available_at, admitted_at, enqueued_at)
		VALUES ($1, $2, 'validate', '{}', '{}', $3, $4, now(), $5, $5)`, task.TaskID(), task.Kind(), org.ID, v.ID, later.Add(-time.Second))
	require.NoError(t, err)
	rows := func() int {
		var n int
		require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject_id = $1 AND task_type = $2`, v.ID, task.Kind()).Scan(&n))
		return n
	}
	r := &reconcile.Reconciler{
		Pool: pg.Pool, Inspector: insp, Log: testenv.Quiet(), After: time.Minute, Metrics: metrics.New(),
		Now: func() time.Time { return later }, Finders: reconcile.Finders(),
	}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the held row is repairAdmitted's: no second task")
	require.Equal(t, 1, rows())

	later = later.Add(time.Minute) // past the grace: readmitted, still one row
	_, err = r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rows())
	var enqueued *time.Time
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT enqueued_at FROM outbox WHERE subject_id = $1`, v.ID).Scan(&enqueued))
	require.Nil(t, enqueued, "the same row waits for the relay again")
}
