package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/testenv"
)

// TestNothingLostWhenRedisIs registers 100 versions through the API, lets the relay
// move them into Redis, wipes Redis before any worker has run, and then starts the
// workers and the scheduler: the reconciler must bring all 100 to a terminal state.
func TestNothingLostWhenRedisIs(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	cfg := env.Config(t, map[string]string{
		"LABELQ_HTTP_ADDR": testenv.FreeAddr(t), "LABELQ_RECONCILE_INTERVAL": "1s", "LABELQ_RECONCILE_AFTER": "2s",
		"LABELQ_SCHEDULE_SYNC": "1s",
	})
	ctx := context.Background()
	a, err := app.New(ctx, cfg, testenv.Quiet())
	require.NoError(t, err)
	defer a.Close()
	a.Mount = mountWorkers
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	tok, err := admin.CreateToken(ctx, env.PG.Pool, "acme", "t")
	require.NoError(t, err)

	post := func(path string, body any, out any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", srv.URL+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok.Secret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		raw, _ := io.ReadAll(resp.Body)
		require.Less(t, resp.StatusCode, 300, string(raw))
		require.NoError(t, json.Unmarshal(raw, out))
	}
	var p, f struct{ ID int64 }
	post("/v1/projects", map[string]any{"name": "flush"}, &p)
	post(fmt.Sprintf("/v1/projects/%d/files", p.ID), map[string]any{"name": "a.txt"}, &f)

	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- a.Run(relayCtx, app.RoleRelay) }()
	const n = 100
	for i := range n {
		key := fmt.Sprintf("orgs/%d/flush/%d", tok.OrgID, i)
		body := []byte(fmt.Sprintf("line %d\n", i))
		env.S3.Put(t, key, body, minio.PutObjectOptions{})
		var v struct{ ID int64 }
		post(fmt.Sprintf("/v1/files/%d/versions", f.ID), map[string]any{"storage_path": key, "sha256": testenv.SHA256Hex(body)}, &v)
	}
	require.Eventually(t, func() bool {
		unsent, err := env.PG.Q.OutboxCountUnsent(ctx)
		return err == nil && unsent == 0
	}, 30*time.Second, 50*time.Millisecond, "the relay moved every intent into Redis")
	stopRelay()
	require.NoError(t, <-relayDone)

	// Redis loses everything before any worker ran.
	require.NoError(t, env.Redis.Client.FlushDB(ctx).Err())
	keys, err := env.Redis.Client.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Empty(t, keys)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, app.AllRoles...) }()
	defer func() { stop(); require.NoError(t, <-done) }()
	require.Eventually(t, func() bool {
		var pending int
		require.NoError(t, env.PG.Pool.QueryRow(ctx, "SELECT count(*) FROM file_versions WHERE validation_status = 'pending'").Scan(&pending))
		return pending == 0
	}, 90*time.Second, 200*time.Millisecond, "every version reaches a terminal state")
	var valid int
	require.NoError(t, env.PG.Pool.QueryRow(ctx, "SELECT count(*) FROM file_versions WHERE validation_status = 'valid'").Scan(&valid))
	require.Equal(t, n, valid)
}
