package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/testenv"
)

// monitorServer serves a real labelq Handler over HTTP, with writable asynqmon when
// asked, and a queue that exists in Redis (one task in it) for the tests to pause.
func monitorServer(t *testing.T, writable bool) (*httptest.Server, *app.App, *asynq.Inspector, string) {
	t.Helper()
	env := testenv.New(t)
	over := map[string]string{"LABELQ_HTTP_ADDR": testenv.FreeAddr(t)}
	if writable {
		over["LABELQ_MONITORING_WRITABLE"] = "true"
	}
	a, err := app.New(context.Background(), env.Config(t, over), testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	const q = "h3-monitoring"
	c := asynq.NewClient(env.Redis.Opt())
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Enqueue(asynq.NewTask("noop", nil), asynq.Queue(q))
	require.NoError(t, err)
	insp := asynq.NewInspector(env.Redis.Opt())
	t.Cleanup(func() { _ = insp.Close() })
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv, a, insp, q
}

func pause(t *testing.T, srv *httptest.Server, a *app.App, q string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/monitoring/api/queues/"+q+":pause", nil)
	require.NoError(t, err)
	req.SetBasicAuth(a.Cfg.OperatorUser, a.Cfg.OperatorPassword)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func paused(t *testing.T, insp *asynq.Inspector, q string) bool {
	t.Helper()
	info, err := insp.GetQueueInfo(q)
	require.NoError(t, err)
	return info.Paused
}

// By default /monitoring is read-only: a pause or a delete is refused and nothing changes.
func TestMonitoringReadOnlyByDefault(t *testing.T) {
	t.Parallel()
	srv, a, insp, q := monitorServer(t, false)
	require.Equal(t, http.StatusMethodNotAllowed, pause(t, srv, a, q, nil))
	require.False(t, paused(t, insp, q), "read-only asynqmon paused the queue")

	req, err := http.NewRequest(http.MethodDelete, srv.URL+"/monitoring/api/queues/"+q, nil)
	require.NoError(t, err)
	req.SetBasicAuth(a.Cfg.OperatorUser, a.Cfg.OperatorPassword)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	queues, err := insp.Queues()
	require.NoError(t, err)
	require.Contains(t, queues, q, "read-only asynqmon deleted the queue")

	// Reading still works.
	req, err = http.NewRequest(http.MethodGet, srv.URL+"/monitoring/api/queues", nil)
	require.NoError(t, err)
	req.SetBasicAuth(a.Cfg.OperatorUser, a.Cfg.OperatorPassword)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// With writes enabled, a same-origin pause works and a cross-origin one is 403.
func TestMonitoringWritableRefusesCrossOrigin(t *testing.T) {
	t.Parallel()
	srv, a, insp, q := monitorServer(t, true)
	for name, h := range map[string]map[string]string{
		"evil origin":          {"Origin": "https://evil.example"},
		"sec-fetch cross-site": {"Sec-Fetch-Site": "cross-site"},
		"sec-fetch same-site":  {"Sec-Fetch-Site": "same-site"},
		"origin other port":    {"Origin": strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)},
	} {
		require.Equal(t, http.StatusForbidden, pause(t, srv, a, q, h), name)
		require.False(t, paused(t, insp, q), "%s paused the queue", name)
	}
	require.Equal(t, http.StatusNoContent, pause(t, srv, a, q, map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}))
	require.True(t, paused(t, insp, q), "a same-origin pause did not pause the queue")
}

// A paused queue shows on /readyz (still 200, status degraded) and in metrics.
func TestPausedQueueIsReported(t *testing.T) {
	t.Parallel()
	srv, a, insp, q := monitorServer(t, false)
	readyz := func() (int, map[string]any) {
		resp, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}
	metric := func() string {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		req.SetBasicAuth(a.Cfg.OperatorUser, a.Cfg.OperatorPassword)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	code, body := readyz()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body["status"])
	require.Equal(t, []any{}, body["paused_queues"])
	require.Contains(t, metric(), `labelq_queue_paused{queue="`+q+`"} 0`)

	require.NoError(t, insp.PauseQueue(q))
	code, body = readyz()
	require.Equal(t, http.StatusOK, code, "a paused queue is an operator's choice, not unreadiness")
	require.Equal(t, "degraded", body["status"])
	require.Equal(t, []any{q}, body["paused_queues"])
	require.Contains(t, metric(), `labelq_queue_paused{queue="`+q+`"} 1`)
}
