package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/testenv"
)

func newApp(t *testing.T) (*app.App, *testenv.Env) {
	t.Helper()
	env := testenv.New(t)
	cfg := env.Config(t, map[string]string{"LABELQ_HTTP_ADDR": testenv.FreeAddr(t)})
	a, err := app.New(context.Background(), cfg, testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	a.Mount = mountWorkers
	return a, env
}

func TestOperatorSurface(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, app.AllRoles...) }()

	base := "http://" + a.Cfg.HTTPAddr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)

	get := func(path string, auth bool) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth {
			req.SetBasicAuth(a.Cfg.OperatorUser, a.Cfg.OperatorPassword)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}

	resp := get("/readyz", false)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var ready map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ready))
	require.Equal(t, map[string]any{"postgres": "ok", "redis": "ok", "s3": "ok", "status": "ok", "paused_queues": []any{}}, ready)

	require.Equal(t, http.StatusUnauthorized, get("/monitoring/", false).StatusCode)
	require.Equal(t, http.StatusUnauthorized, get("/metrics", false).StatusCode)
	require.Equal(t, "application/problem+json", get("/metrics", false).Header.Get("Content-Type"))
	require.Equal(t, http.StatusOK, get("/monitoring/", true).StatusCode)

	// asynqmon lists every labelq queue once a worker has started.
	require.Eventually(t, func() bool {
		resp := get("/monitoring/api/queues", true)
		var body struct {
			Queues []struct {
				Queue string `json:"queue"`
			} `json:"queues"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil {
			return false
		}
		seen := map[string]bool{}
		for _, q := range body.Queues {
			seen[q.Queue] = true
		}
		for _, q := range queue.Names() {
			if !seen[q] {
				return false
			}
		}
		return true
	}, 10*time.Second, 100*time.Millisecond)

	metrics, err := io.ReadAll(get("/metrics", true).Body)
	require.NoError(t, err)
	require.Contains(t, string(metrics), "asynq_queue_size")
	require.Contains(t, string(metrics), "go_goroutines")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("labelq did not stop within 15s of cancellation")
	}
	_, err = http.Get(base + "/healthz")
	require.Error(t, err, "the HTTP server must be closed after stop")
}

func TestReadyzReportsAnUnreachableDependency(t *testing.T) {
	t.Parallel()
	a, env := newApp(t)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	env.PG.Pool.Close() // a different pool; close the app's instead
	a.Pool.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	var ready map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ready))
	require.Equal(t, "unavailable", ready["status"])
	require.Equal(t, "unreachable", ready["postgres"])
	require.Equal(t, "ok", ready["redis"])
}

func TestOperatorPagesOffWithoutPassword(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	a.Cfg.OperatorPassword = ""
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/monitoring/")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}
