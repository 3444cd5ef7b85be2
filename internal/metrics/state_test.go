package metrics_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/testenv"
)

// gauges is one gather of the registry: name{label="value"} → value (labels in
// the registry's order).
func gauges(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range s.GetLabel() {
				key += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			if g := s.GetGauge(); g != nil {
				out[key] = g.GetValue()
			}
		}
	}
	return out
}

func TestStateGaugesReadThePipelineFromPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	m := metrics.New()
	m.RegisterState(pg.Pool, testenv.Quiet())

	empty := gauges(t, m)
	require.Equal(t, 1.0, empty["labelq_state_up"])
	for _, k := range []string{"labelq_versions_pending", `labelq_exports{status="running"}`, "labelq_export_idle_seconds",
		"labelq_sync_lag_seconds", `labelq_webhook_endpoints{state="disabled"}`, "labelq_webhook_deliveries_pending"} {
		v, ok := empty[k]
		require.True(t, ok, "%s is exported on an empty database", k)
		require.Zero(t, v, k)
	}

	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	f := pg.File(t, pr, "")
	pg.RegisterVersion(t, f, "a", testenv.Declared{})
	pg.RegisterVersion(t, f, "b", testenv.Declared{})
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pg.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	exec(`UPDATE file_versions SET created_at = now() - interval '10 minutes' WHERE storage_path = 'a'`)
	exec(`INSERT INTO export_logs (org_id, project_id, status, started_at, files_total, files_done, bytes_total, bytes_done)
		VALUES ($1, $2, 'running', now(), 10, 4, 1000, 250)`, org.ID, pr.ID)
	// A pending export nobody has touched for 20 minutes: the stuck one.
	exec(`INSERT INTO export_logs (org_id, project_id, status, updated_at) VALUES ($1, $2, 'pending', now() - interval '20 minutes')`, org.ID, pr.ID)
	var storageID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO storages (org_id, project_id, name, prefix, sync_cron, created_at)
		VALUES ($1, $2, 'scans', 'scans/', '*/5 * * * *', now() - interval '2 hours') RETURNING id`, org.ID, pr.ID).Scan(&storageID))
	exec(`INSERT INTO sync_runs (org_id, project_id, storage_id, status, completed_at) VALUES ($1, $2, $3, 'completed', now() - interval '1 hour')`,
		org.ID, pr.ID, storageID)
	exec(`INSERT INTO sync_runs (org_id, project_id, storage_id, status, requested_at) VALUES ($1, $2, $3, 'running', now() - interval '3 minutes')`,
		org.ID, pr.ID, storageID)
	keys := testenv.StorageKeyring(t)
	pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://hooks.example.com/a"})
	failing, _ := pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://hooks.example.com/b"})
	exec(`UPDATE webhook_endpoints SET failing_since = now() WHERE id = $1`, failing.ID)
	pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://hooks.example.com/c", Disabled: true})

	g := gauges(t, m)
	require.Equal(t, 1.0, g["labelq_state_up"])
	require.Equal(t, 2.0, g["labelq_versions_pending"])
	require.InDelta(t, 600, g["labelq_versions_pending_oldest_seconds"], 60)
	require.Equal(t, 1.0, g[`labelq_exports{status="pending"}`])
	require.Equal(t, 1.0, g[`labelq_exports{status="running"}`])
	require.InDelta(t, 1200, g["labelq_export_idle_seconds"], 60, "the pending export untouched for 20 minutes")
	require.Equal(t, 4.0, g[`labelq_export_running_files{progress="done"}`])
	require.Equal(t, 10.0, g[`labelq_export_running_files{progress="planned"}`])
	require.Equal(t, 250.0, g[`labelq_export_running_bytes{progress="done"}`])
	require.Equal(t, 1000.0, g[`labelq_export_running_bytes{progress="planned"}`])
	require.Equal(t, 1.0, g[`labelq_sync_runs{status="running"}`])
	require.Zero(t, g[`labelq_sync_runs{status="pending"}`])
	require.InDelta(t, 180, g["labelq_sync_lag_seconds"], 60)
	require.InDelta(t, 3600, g["labelq_sync_last_success_age_seconds"], 60, "since the completed run, not the storage's creation")
	require.Equal(t, 1.0, g[`labelq_webhook_endpoints{state="healthy"}`])
	require.Equal(t, 1.0, g[`labelq_webhook_endpoints{state="failing"}`])
	require.Equal(t, 1.0, g[`labelq_webhook_endpoints{state="disabled"}`])

	// The database gone: the scrape still answers (the queue metrics are wanted
	// most then), with labelq_state_up 0 and no state gauges.
	pg.Pool.Close()
	down := gauges(t, m)
	require.Equal(t, 0.0, down["labelq_state_up"])
	_, ok := down["labelq_versions_pending"]
	require.False(t, ok)
}
