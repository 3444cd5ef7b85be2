package retention_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/reconcile"
	"github.com/labelq/labelq/internal/retention"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// TestReconcilerAfterCleanupQueuesOnce: the reconciler finds a row's task through
// its newest outbox row, which retention deletes a day after the relay moved it.
// A stuck version whose row is gone is queued again once: the new row is not
// expired, so later passes (and later cleanups) see its task and leave it. A
// version whose row is gone while its first task is still alive in Redis is not
// queued at all. GET /v1/tasks/{id} answers 404 for a task whose row is gone and
// follows the new one.
func TestReconcilerAfterCleanupQueuesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	rd := testenv.RedisDB(t)
	client := asynq.NewClient(rd.Opt())
	defer func() { _ = client.Close() }()
	insp := asynq.NewInspector(rd.Opt())
	defer func() { _ = insp.Close() }()
	relay := &outbox.Relay{Pool: f.pg.Pool, Client: client, Log: testenv.Quiet(), BatchSize: 500}

	tok, err := admin.CreateToken(ctx, f.pg.Pool, "retention-org", "test")
	require.NoError(t, err)
	pr := f.pg.Project(t, tok.OrgID)
	file := f.pg.File(t, pr, "a.txt")
	lost := f.pg.RegisterVersion(t, file, "a.txt", testenv.Declared{})  // its task vanished with Redis
	alive := f.pg.RegisterVersion(t, file, "a.txt", testenv.Declared{}) // its first task is still queued
	for _, v := range []db.FileVersion{lost, alive} {
		require.NoError(t, database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
			return outbox.Add(ctx, q, tok.OrgID, tasks.Validate{VersionID: v.ID})
		}))
	}
	moved, err := relay.RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, moved)
	require.NoError(t, insp.DeleteTask("validate", tasks.Validate{VersionID: lost.ID}.TaskID()))
	// Both were relayed two days ago: past LABELQ_OUTBOX_RETENTION.
	f.exec(t, `UPDATE outbox SET enqueued_at = now() - interval '2 days'`)

	cleaner := f.cleaner(retention.Settings{Outbox: day})
	res, err := cleaner.Run(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Deleted["outbox"])

	var validate reconcile.Finder
	for _, fd := range reconcile.Finders() {
		if fd.Kind == (tasks.Validate{}).Kind() {
			validate = fd
		}
	}
	r := &reconcile.Reconciler{
		Pool: f.pg.Pool, Inspector: insp, Log: testenv.Quiet(), After: time.Minute,
		Now:     func() time.Time { return time.Now().Add(2 * time.Minute) }, // both versions look stuck
		Finders: []reconcile.Finder{validate},
	}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the version whose task is gone")
	requeued := testenv.RequireLatestQueued(t, f.pg.Pool, tok.OrgID, tasks.Validate{VersionID: lost.ID})
	require.NotEqual(t, tasks.Validate{VersionID: lost.ID}.TaskID(), requeued.TaskID)

	srv := tasksServer(t, f, insp)
	code, body := getTask(t, srv.URL, tok.Secret, tasks.Validate{VersionID: lost.ID}.TaskID())
	require.Equal(t, http.StatusNotFound, code, "%v", body)
	code, body = getTask(t, srv.URL, tok.Secret, requeued.TaskID)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "waiting_in_outbox", body["state"])

	for range 3 { // passes of both, in any order, queue nothing more
		res, err := cleaner.Run(ctx)
		require.NoError(t, err)
		require.Zero(t, res.Deleted["outbox"])
		n, err := r.Run(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		_, err = relay.RelayOnce(ctx)
		require.NoError(t, err)
	}
	code, body = getTask(t, srv.URL, tok.Secret, requeued.TaskID)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "pending", body["state"])
	info, err := insp.GetQueueInfo("validate")
	require.NoError(t, err)
	require.Equal(t, 2, info.Size, "one task per version: the alive one and the one requeued")
	require.EqualValues(t, 1, f.count(t, `SELECT count(*) FROM outbox`))
}

func tasksServer(t *testing.T, f *fixture, insp *asynq.Inspector) *httptest.Server {
	t.Helper()
	s := &api.Server{Pool: f.pg.APIPool, Inspector: insp, Log: testenv.Quiet()}
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getTask(t *testing.T, base, token, taskID string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/tasks/"+taskID, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return resp.StatusCode, m
}
