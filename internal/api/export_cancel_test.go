package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCancelExportWaitsBoundedForTheRow: while something holds the export's row
// lock (a worker recording a run), POST /v1/exports/{id}/cancel answers within
// its lock bound, with a 503 that says to retry, instead of waiting for the
// holder; once the row is free the cancel goes through.
func TestCancelExportWaitsBoundedForTheRow(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	ctx := context.Background()
	tx, err := w.env.PG.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = tx.Exec(ctx, "SELECT id FROM export_logs WHERE id = $1 FOR UPDATE", s.ExportID)
	require.NoError(t, err)

	path := fmt.Sprintf("/v1/exports/%d/cancel", s.ExportID)
	answered := make(chan reply, 1)
	go func() { answered <- w.orgA.do("POST", path, nil) }()
	select {
	case r := <-answered:
		require.Equal(t, http.StatusServiceUnavailable, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "retry the cancel")
	case <-time.After(10 * time.Second):
		require.NoError(t, tx.Rollback(ctx))
		<-answered
		t.Fatal("the cancel waited for the export's row lock instead of answering")
	}
	require.Equal(t, "pending", w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", s.ExportID), nil).json(t)["status"])

	require.NoError(t, tx.Rollback(ctx))
	r := w.orgA.do("POST", path, nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, "cancelled", r.json(t)["status"])
}
