package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStalledRows: an export or a sync run that says running answers stalled
// once its heartbeat_at is older than 3 heartbeat intervals, with heartbeat_at
// beside it, on every route that answers the row; a fresh heartbeat answers
// running, and a finished row never answers stalled. (worker/export's
// TestKill9MidExportShowsStalled does the same with a killed worker.)
func TestStalledRows(t *testing.T) {
	t.Parallel()
	cfg := secretKey() // the seed makes a webhook endpoint, whose secret needs the key
	cfg["LABELQ_HEARTBEAT_INTERVAL"] = "1s"
	w := newFixtureWith(t, cfg)
	s := w.seed(t)
	ctx := context.Background()
	set := func(table string, id int64, status, beatAge string) {
		t.Helper()
		_, err := w.env.PG.Pool.Exec(ctx, fmt.Sprintf(
			`UPDATE %s SET status = $2::text::%s, heartbeat_at = now() - $3::interval, started_at = now() WHERE id = $1`,
			table, map[string]string{"export_logs": "export_status", "sync_runs": "sync_run_status"}[table]), id, status, beatAge)
		require.NoError(t, err)
	}
	get := func(path string) map[string]any {
		t.Helper()
		r := w.orgA.do("GET", path, nil)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		return r.json(t)
	}
	first := func(path string) map[string]any {
		t.Helper()
		items := get(path)["items"].([]any)
		require.NotEmpty(t, items)
		return items[0].(map[string]any)
	}
	export, exports := fmt.Sprintf("/v1/exports/%d", s.ExportID), fmt.Sprintf("/v1/projects/%d/exports", s.ProjectID)
	run, runs := fmt.Sprintf("/v1/sync-runs/%d", s.SyncRunID), fmt.Sprintf("/v1/storages/%d/syncs", s.StorageID)

	for _, tc := range []struct {
		table, one, list string
		id               int64
	}{
		{"export_logs", export, exports, s.ExportID},
		{"sync_runs", run, runs, s.SyncRunID},
	} {
		set(tc.table, tc.id, "running", "1 second")
		require.Equal(t, "running", get(tc.one)["status"])
		require.NotNil(t, get(tc.one)["heartbeat_at"])

		set(tc.table, tc.id, "running", "10 seconds")
		require.Equal(t, "stalled", get(tc.one)["status"], tc.one)
		require.NotNil(t, get(tc.one)["heartbeat_at"])
		require.Equal(t, "stalled", first(tc.list)["status"], tc.list)

		set(tc.table, tc.id, "cancelled", "10 seconds")
		require.Equal(t, "cancelled", get(tc.one)["status"])
	}
}
