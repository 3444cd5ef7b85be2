package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/testenv"
)

// topoRun is labelq in this test process against a Redis topology (a cluster or a
// Sentinel set) given by its variables, with the test's own Postgres and bucket and
// the LLM test server, and an API client.
type topoRun struct {
	t         *testing.T
	ctx       context.Context
	env       *testenv.Env
	a         *app.App
	base      string
	token     string
	orgID     int64
	projectID int64
	fileN     int
}

func newTopoRun(t *testing.T, redisVars map[string]string) *topoRun {
	t.Helper()
	ctx := context.Background()
	llmAddr := testenv.FreeAddr(t)
	llm := llmtest.NewServer(llmtest.Config{APIKey: "sk-topology"})
	require.NoError(t, llm.Start(llmAddr))
	t.Cleanup(func() { _ = llm.Close() })
	env := testenv.New(t)
	vars := map[string]string{
		"LABELQ_HTTP_ADDR": testenv.FreeAddr(t), "LABELQ_RECONCILE_INTERVAL": "1s", "LABELQ_RECONCILE_AFTER": "2s",
		"LABELQ_SCHEDULE_SYNC": "1s", "LABELQ_SCHEDULE_MIN_INTERVAL": "1s",
		"LABELQ_LLM_BASE_URL": "http://" + llmAddr + "/v1", "LABELQ_LLM_API_KEY": "sk-topology", "LABELQ_LLM_PRICES": "topo-model=0/0",
		"LABELQ_LLM_RPM": "6000", "LABELQ_LLM_TPM": "10000000", "LABELQ_LLM_MAX_CONCURRENT": "4",
	}
	for k, v := range redisVars {
		vars[k] = v
	}
	cfg := env.Config(t, vars)
	a, err := app.New(ctx, cfg, testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	a.Mount = mountWorkers
	tok, err := admin.CreateToken(ctx, env.PG.Pool, "acme", "topology")
	require.NoError(t, err)
	return &topoRun{t: t, ctx: ctx, env: env, a: a, base: "http://" + cfg.HTTPAddr, token: tok.Secret, orgID: tok.OrgID}
}

// start runs roles until the returned stop is called (or the test ends).
func (r *topoRun) start(roles ...app.Role) (stop func()) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- r.a.Run(ctx, roles...) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(r.t, <-done)
	}
	r.t.Cleanup(stop)
	return stop
}

func (r *topoRun) call(method, path string, body, out any) {
	r.t.Helper()
	status, raw := r.do(method, path, body, true)
	require.Less(r.t, status, 300, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(r.t, json.Unmarshal(raw, out))
	}
}

// do calls the API with the token, or as the operator when api is false.
func (r *topoRun) do(method, path string, body any, api bool) (int, []byte) {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(r.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.ctx, method, r.base+path, rd)
	require.NoError(r.t, err)
	if api {
		req.Header.Set("Authorization", "Bearer "+r.token)
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.SetBasicAuth(r.a.Cfg.OperatorUser, r.a.Cfg.OperatorPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(r.t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(r.t, err)
	return resp.StatusCode, raw
}

// setup makes a pre-annotated project with one annotator, so that every version
// is validated, pre-annotated (through the shared LLM limiter) and matched (an
// aggregated asynq group).
func (r *topoRun) setup() {
	r.t.Helper()
	var p struct {
		ID int64 `json:"id"`
	}
	schema := map[string]any{"type": "object", "additionalProperties": false, "required": []string{"label"},
		"properties": map[string]any{"label": map[string]any{"type": "string"}}}
	r.call("POST", "/v1/projects", map[string]any{"name": "topology", "requirements_text": "Label the topic.",
		"llm_enabled": true, "llm_model": "topo-model", "annotation_schema": schema}, &p)
	r.projectID = p.ID
	r.call("POST", "/v1/users", map[string]any{"email": "annotator@topology.test", "role": "annotator",
		"language_expertise": map[string]float64{"en": 5}, "availability": map[string]any{"timezone": "UTC", "monday": []string{"09:00-17:00"}},
		"skill_score": 0.8, "qa_approval_rate": 0.9, "max_active_jobs": 1000}, nil)
}

// upload registers n new text versions and returns their ids.
func (r *topoRun) upload(n int) []int64 {
	r.t.Helper()
	var ids []int64
	for range n {
		i := r.fileN
		r.fileN++
		var f, v struct {
			ID int64 `json:"id"`
		}
		r.call("POST", fmt.Sprintf("/v1/projects/%d/files", r.projectID), map[string]any{"name": fmt.Sprintf("item-%d.txt", i)}, &f)
		body := []byte(fmt.Sprintf("Sentence %d: the quick brown fox %d jumps over the lazy dog.\n", i, i*7))
		key := fmt.Sprintf("orgs/%d/topology/%d", r.orgID, i)
		r.env.S3.Put(r.t, key, body, minio.PutObjectOptions{})
		r.call("POST", fmt.Sprintf("/v1/files/%d/versions", f.ID), map[string]any{"storage_path": key, "sha256": testenv.SHA256Hex(body)}, &v)
		ids = append(ids, v.ID)
	}
	return ids
}

func (r *topoRun) count(query string, args ...any) int {
	r.t.Helper()
	var n int
	require.NoError(r.t, r.env.PG.Pool.QueryRow(r.ctx, query, args...).Scan(&n))
	return n
}

// waitDone waits until every version is valid, pre-annotated and has its job
// assigned: validation, pre-annotation and a matching run all happened.
func (r *topoRun) waitDone(ids []int64, within time.Duration) {
	r.t.Helper()
	var why string
	ok := assertEventually(within, func() bool {
		pending := r.count(`SELECT count(*) FROM file_versions WHERE id = ANY($1) AND validation_status <> 'valid'`, ids)
		llm := r.count(`SELECT count(*) FROM llm_runs WHERE file_version_id = ANY($1) AND status = 'succeeded'`, ids)
		assigned := r.count(`SELECT count(DISTINCT j.file_version_id) FROM annotation_jobs j JOIN assignments a ON a.job_id = j.id
			WHERE j.file_version_id = ANY($1)`, ids)
		why = fmt.Sprintf("%d of %d not valid, %d pre-annotated, %d assigned", pending, len(ids), llm, assigned)
		return pending == 0 && llm == len(ids) && assigned == len(ids)
	})
	require.True(r.t, ok, "every version validated, pre-annotated and matched: %s", why)
}

func assertEventually(within time.Duration, f func() bool) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if f() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return f()
}

// export requests an export and waits for it to complete.
func (r *topoRun) export() {
	r.t.Helper()
	var e struct {
		ID int64 `json:"id"`
	}
	r.call("POST", fmt.Sprintf("/v1/projects/%d/exports", r.projectID), map[string]any{}, &e)
	require.Eventually(r.t, func() bool {
		return r.count(`SELECT count(*) FROM export_logs WHERE id = $1 AND status = 'completed'`, e.ID) == 1
	}, 30*time.Second, 100*time.Millisecond, "export %d completes", e.ID)
}

// TestRedisClusterEndToEnd runs labelq on a real Redis Cluster (three masters, one
// replica each): versions whose tasks the cluster lost are re-queued by the
// reconciler's inspection; validation, pre-annotation (the LLM limiter's scripts)
// and matching (asynq group aggregation) run; an export runs on demand and from an
// export schedule (a periodic task the scheduler registers); asynqmon and the queue
// metrics read the cluster; and after kill -9 of the master holding the validate
// queue, work goes on without a restart once its replica has taken over.
func TestRedisClusterEndToEnd(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisClusterT(t)
	r := newTopoRun(t, map[string]string{"LABELQ_REDIS_CLUSTER_ADDRS": strings.Join(cl.Addrs(), ",")})
	rdb := cl.Client()
	defer func() { _ = rdb.Close() }()

	// The relay moves the first versions' tasks into the cluster, which then loses
	// them all before any worker has run.
	stopRelay := r.start(app.RoleAPI, app.RoleRelay)
	waitHealthy(t, r.base)
	r.setup()
	first := r.upload(6)
	require.Eventually(t, func() bool {
		n, err := r.env.PG.Q.OutboxCountUnsent(r.ctx)
		return err == nil && n == 0
	}, 30*time.Second, 50*time.Millisecond, "the relay moved every intent into the cluster")
	insp := asynq.NewInspector(cl.Opt())
	defer func() { _ = insp.Close() }()
	info, err := insp.GetQueueInfo(queue.QueueValidate)
	require.NoError(t, err)
	require.Equal(t, 6, info.Size, "the validations wait in the cluster")
	require.NoError(t, rdb.ForEachMaster(r.ctx, func(ctx context.Context, m *redis.Client) error { return m.FlushAll(ctx).Err() }))
	stopRelay()

	r.start(app.AllRoles...)
	waitHealthy(t, r.base)
	r.waitDone(first, 60*time.Second)
	r.export()

	var s struct {
		ID int64 `json:"id"`
	}
	r.call("POST", fmt.Sprintf("/v1/projects/%d/export-schedules", r.projectID), map[string]any{"cron_spec": "@every 1s", "timezone": "UTC"}, &s)
	require.Eventually(t, func() bool {
		entries, err := insp.SchedulerEntries()
		if err != nil {
			return false
		}
		for _, e := range entries {
			if e.Task.Type() == "schedule:export" {
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "the scheduler registers the export schedule's periodic task in the cluster")
	require.Eventually(t, func() bool {
		return r.count(`SELECT count(*) FROM export_logs WHERE schedule_id = $1 AND status = 'completed'`, s.ID) > 0
	}, 30*time.Second, 100*time.Millisecond, "a tick of the schedule is exported")
	r.call("PATCH", fmt.Sprintf("/v1/export-schedules/%d", s.ID), map[string]any{"enabled": false}, nil)

	status, body := r.do("GET", "/metrics", nil, false)
	require.Equal(t, http.StatusOK, status)
	for _, q := range queue.Names() {
		require.Contains(t, string(body), fmt.Sprintf(`asynq_queue_size{queue=%q}`, q))
		require.Contains(t, string(body), fmt.Sprintf(`labelq_queue_paused{queue=%q} 0`, q))
	}
	require.Contains(t, string(body), `labelq_reconcile_requeued_total{kind="file:validate"} 6`,
		"the reconciler found the six validations the cluster lost")
	status, body = r.do("GET", "/monitoring/api/redis_info", nil, false)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var ri struct {
		Cluster bool `json:"cluster"`
	}
	require.NoError(t, json.Unmarshal(body, &ri))
	require.True(t, ri.Cluster, "asynqmon sees the cluster: %.200s", body)
	status, body = r.do("GET", "/monitoring/api/queues", nil, false)
	require.Equal(t, http.StatusOK, status)
	for _, q := range queue.Names() {
		require.Contains(t, string(body), fmt.Sprintf(`"queue":%q`, q))
	}

	// kill -9 of the master that holds the validate queue; its replica takes over
	// and the same processes carry on.
	killed, err := cl.KillMaster(r.ctx, "asynq:{"+queue.QueueValidate+"}:pending")
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, cl.WaitFailover(r.ctx, killed))
	t.Logf("cluster failover of %s: %.1f s", killed.Addr, time.Since(start).Seconds())
	r.waitDone(r.upload(6), 60*time.Second)
	t.Logf("six more versions done %.1f s after the kill", time.Since(start).Seconds())
	status, body = r.do("GET", "/readyz", nil, false)
	require.Equal(t, http.StatusOK, status, "%s", body)
}

// TestRedisSentinelEndToEnd runs labelq through Redis Sentinel (a master, a
// replica, three sentinels) and kill -9s the master mid-run: the same processes
// follow the promotion, and every version, those in flight included, completes.
func TestRedisSentinelEndToEnd(t *testing.T) {
	t.Parallel()
	sn := testenv.RedisSentinelT(t)
	r := newTopoRun(t, map[string]string{"LABELQ_REDIS_URL": sn.URL()})
	r.start(app.AllRoles...)
	waitHealthy(t, r.base)
	r.setup()
	r.waitDone(r.upload(4), 60*time.Second)

	inFlight := r.upload(4)
	killed, err := sn.KillMaster(r.ctx)
	require.NoError(t, err)
	start := time.Now()
	promoted, err := sn.WaitFailover(r.ctx, killed)
	require.NoError(t, err)
	require.NotEqual(t, killed.Addr, promoted.Addr)
	t.Logf("sentinel failover of %s: %.1f s", killed.Addr, time.Since(start).Seconds())
	after := r.upload(4)
	r.waitDone(append(inFlight, after...), 60*time.Second)
	t.Logf("eight versions done %.1f s after the kill", time.Since(start).Seconds())
	r.export()
	status, body := r.do("GET", "/readyz", nil, false)
	require.Equal(t, http.StatusOK, status, "%s", body)
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
}
