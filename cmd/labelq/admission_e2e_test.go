package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/config"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// admissionWorkerEnv turns this test binary into `labelq worker`
// (TestAdmissionWorkerProcess), configured by the LABELQ_ variables it is given.
const admissionWorkerEnv = "LABELQ_ADMISSION_TEST_WORKER"

// admissionRun is one organization's backlog of file:validate tasks on an app
// whose admission holds validate back to a small limit.
type admissionRun struct {
	t     *testing.T
	env   *testenv.Env
	cfg   *config.Config
	a     *app.App
	api   *httptest.Server
	tok   admin.Token
	relay *outbox.Relay

	mu   sync.Mutex
	runs map[string]int // file:validate task id → times this process's handler ran it
}

func newAdmissionRun(t *testing.T, env *testenv.Env, overrides map[string]string) *admissionRun {
	t.Helper()
	ctx := context.Background()
	r := &admissionRun{t: t, env: env, cfg: env.Config(t, overrides), runs: map[string]int{}}
	a, err := app.New(ctx, r.cfg, testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	// The workers as `labelq worker` wires them, with a count of the runs of
	// each file:validate task (the innermost middleware: what the handler ran).
	a.Mount = func(a *app.App, mux *asynq.ServeMux) {
		mux.Use(func(next asynq.Handler) asynq.Handler {
			return asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
				if task.Type() == (tasks.Validate{}).Kind() {
					id, _ := asynq.GetTaskID(ctx)
					r.mu.Lock()
					r.runs[id]++
					r.mu.Unlock()
				}
				return next.ProcessTask(ctx, task)
			})
		})
		mountWorkers(a, mux)
	}
	r.a = a
	r.api = httptest.NewServer(a.Handler())
	t.Cleanup(r.api.Close)
	r.tok, err = admin.CreateToken(ctx, env.PG.Pool, "fair", "t")
	require.NoError(t, err)
	r.relay = &outbox.Relay{Pool: a.Pool, Client: a.Client, Log: testenv.Quiet(), Admission: a.Admission()}
	return r
}

func (r *admissionRun) post(path string, body, out any) {
	r.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(r.t, err)
	req, err := http.NewRequest("POST", r.api.URL+path, bytes.NewReader(b))
	require.NoError(r.t, err)
	req.Header.Set("Authorization", "Bearer "+r.tok.Secret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(r.t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	require.Less(r.t, resp.StatusCode, 300, string(raw))
	require.NoError(r.t, json.Unmarshal(raw, out))
}

// register uploads n objects and registers a version of each through the API:
// n file:validate rows in the outbox. It answers the versions' ids.
func (r *admissionRun) register(n int) []int64 {
	r.t.Helper()
	var p, f struct{ ID int64 }
	r.post("/v1/projects", map[string]any{"name": "fair"}, &p)
	r.post(fmt.Sprintf("/v1/projects/%d/files", p.ID), map[string]any{"name": "a.txt"}, &f)
	ids := make([]int64, n)
	for i := range n {
		key := fmt.Sprintf("orgs/%d/fair/%d.txt", r.tok.OrgID, i)
		body := fmt.Appendf(nil, "line %d\n", i)
		r.env.S3.Put(r.t, key, body, minio.PutObjectOptions{})
		var v struct{ ID int64 }
		r.post(fmt.Sprintf("/v1/files/%d/versions", f.ID), map[string]any{"storage_path": key, "sha256": testenv.SHA256Hex(body)}, &v)
		ids[i] = v.ID
	}
	return ids
}

func (r *admissionRun) count(sql string, args ...any) int {
	r.t.Helper()
	var n int
	require.NoError(r.t, r.env.PG.Pool.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// held is how many file:validate slots the organization holds.
func (r *admissionRun) held() int {
	return r.count(`SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate'
		AND admitted_at IS NOT NULL AND finished_at IS NULL`, r.tok.OrgID)
}

func (r *admissionRun) valid() int {
	return r.count("SELECT count(*) FROM file_versions WHERE org_id = $1 AND validation_status = 'valid'", r.tok.OrgID)
}

// relayOnce moves one batch as the relay role would, answering how many rows it
// admitted.
func (r *admissionRun) relayOnce() int {
	r.t.Helper()
	n, err := r.relay.RelayOnce(context.Background())
	require.NoError(r.t, err)
	return n
}

// start runs roles in this process until the test ends or stop is called.
func (r *admissionRun) start(roles ...app.Role) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.a.Run(ctx, roles...) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(r.t, <-done)
		})
	}
	r.t.Cleanup(stop)
	return stop
}

// drain waits until every version is valid and no slot is held, checking at
// every look that the organization never holds more than limit slots.
func (r *admissionRun) drain(versions, limit int, within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		held := r.held()
		require.LessOrEqual(r.t, held, limit, "the organization holds more slots than its limit")
		if held == 0 && r.valid() == versions {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("after %s: %d of %d versions valid, %d slots held", within, r.valid(), versions, held)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requireEachOnce checks the end state: every file:validate row was admitted and
// finished, no row is left in the outbox, every version has one validated event
// (its effect, once), and this process's handler ran each of the tasks it ran
// once only.
func (r *admissionRun) requireEachOnce(versions []int64) {
	r.t.Helper()
	org := r.tok.OrgID
	require.Equal(r.t, len(versions), r.count(`SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate'
		AND admitted_at IS NOT NULL AND finished_at IS NOT NULL AND enqueued_at IS NOT NULL`, org), "every row admitted, relayed and finished")
	require.Equal(r.t, len(versions), r.count(`SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate'`, org),
		"one task per version: no repair queued another")
	for _, v := range versions {
		require.Equal(r.t, 1, r.count(`SELECT count(*) FROM event_log WHERE entity_type = 'file_version' AND entity_id = $1
			AND event_type = 'validated'`, v), "version %d validated once", v)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.runs {
		require.Equal(r.t, 1, n, "task %s ran %d times", id, n)
	}
}

func (r *admissionRun) taskIDs(versions []int64) []string {
	ids := make([]string, len(versions))
	for i, v := range versions {
		ids[i] = tasks.Validate{VersionID: v}.TaskID()
	}
	return ids
}

// holdingS3 is a reverse proxy to the test's MinIO that forwards bucket calls
// and, while hold is set, holds every request for an object under orgs/ (the
// bytes file:validate reads) until its client goes away: a worker stuck on a
// slow object store.
type holdingS3 struct {
	srv  *httptest.Server
	hold atomic.Bool
	held chan string
}

func newHoldingS3(t *testing.T, endpoint string) *holdingS3 {
	t.Helper()
	target, err := url.Parse("http://" + endpoint)
	require.NoError(t, err)
	h := &holdingS3{held: make(chan string, 100)}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // the Host the client signed
	}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if h.hold.Load() && strings.Contains(req.URL.Path, "/orgs/") {
			h.held <- req.URL.Path
			<-req.Context().Done()
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// TestAdmissionSlotsSurviveKill9: an organization's six validations, two at a
// time. A `labelq worker` process takes the two admitted tasks, gets stuck
// reading their objects and is killed with SIGKILL: its finishes never run, so
// the slots stay held and the other four wait. Another worker gets the two
// tasks once asynq recovers them (their lease expired), runs them, and the
// slots they give back admit the four in turn; every version is validated once.
func TestAdmissionSlotsSurviveKill9(t *testing.T) {
	t.Parallel()
	const versions, limit = 6, 2
	ctx := context.Background()
	env := testenv.New(t)
	s3 := newHoldingS3(t, env.S3.Endpoint)
	r := newAdmissionRun(t, env, map[string]string{"LABELQ_ADMIT_PER_ORG": fmt.Sprintf("validate=%d", limit)})
	ids := r.register(versions)
	require.Equal(t, limit, r.relayOnce(), "the relay admits the limit")
	require.Equal(t, limit, r.held())
	require.Zero(t, r.relayOnce(), "and no more")
	first := r.count(`SELECT count(*) FROM outbox WHERE org_id = $1 AND admitted_at IS NOT NULL AND task_id = ANY($2)`,
		r.tok.OrgID, r.taskIDs(ids[:limit]))
	require.Equal(t, limit, first, "the oldest rows first")

	// `labelq worker` in a process of its own, reading objects through the proxy.
	s3.hold.Store(true)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAdmissionWorkerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), admissionWorkerEnv+"=1",
		"LABELQ_DATABASE_URL="+r.cfg.DatabaseURL, "LABELQ_API_DATABASE_URL="+r.cfg.APIDatabaseURL,
		"LABELQ_REDIS_URL="+r.cfg.RedisURL, "LABELQ_S3_ENDPOINT="+strings.TrimPrefix(s3.srv.URL, "http://"),
		"LABELQ_S3_ACCESS_KEY="+r.cfg.S3AccessKey, "LABELQ_S3_SECRET_KEY="+r.cfg.S3SecretKey, "LABELQ_S3_BUCKET="+r.cfg.S3Bucket,
		"LABELQ_ADMIT_PER_ORG="+r.cfg.AdmitPerOrg, "LABELQ_WORKER_CONCURRENCY=4", "LABELQ_HTTP_ADDR=127.0.0.1:0",
		"LABELQ_METRICS_ADDR=", "LABELQ_LOG_LEVEL=error", "LABELQ_SHUTDOWN_TIMEOUT=5s")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	stuck := map[string]bool{}
	deadline := time.After(time.Minute)
	for len(stuck) < limit {
		select {
		case p := <-s3.held:
			stuck[p] = true
		case <-deadline:
			t.Fatalf("the worker process read %d of the %d admitted objects in a minute; its output:\n%s", len(stuck), limit, out.String())
		}
	}
	active, err := r.a.Inspector.ListActiveTasks(queue.QueueValidate)
	require.NoError(t, err)
	require.Len(t, active, limit, "the worker process runs both admitted tasks")

	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no finish, no hand-back to Redis
	_ = cmd.Wait()
	var killedAt time.Time
	require.NoError(t, env.PG.Pool.QueryRow(ctx, "SELECT now()").Scan(&killedAt))
	require.Equal(t, limit, r.held(), "a killed worker's tasks keep their slots")
	require.Zero(t, r.relayOnce(), "the other rows wait while they do")

	// Another worker: asynq hands it the killed tasks once their lease has
	// expired (30 s, and the recoverer's 30 s of slack), and the relay admits
	// the waiting rows as their slots come back.
	r.start(app.RoleWorker, app.RoleRelay)
	r.drain(versions, limit, 3*time.Minute)
	r.requireEachOnce(ids)
	for _, id := range r.taskIDs(ids[:limit]) {
		info, err := r.a.Inspector.GetTaskInfo(queue.QueueValidate, id)
		require.NoError(t, err)
		require.Equal(t, 1, info.Retried, "task %s ran again after its lease expired", id)
		require.Contains(t, info.LastErr, "lease expired", "task %s", id)
	}
	require.Equal(t, versions-limit, r.count(`SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate'
		AND admitted_at > $2`, r.tok.OrgID, killedAt), "the waiting rows were admitted after the kill, as the slots came back")
	require.Len(t, r.runs, versions, "this process ran every task, the killed two included")
}

// TestAdmissionWorkerProcess is `labelq worker` for TestAdmissionSlotsSurviveKill9;
// run on its own it does nothing.
func TestAdmissionWorkerProcess(t *testing.T) {
	if os.Getenv(admissionWorkerEnv) == "" {
		return
	}
	os.Exit(run([]string{"worker"}, os.Stdout, os.Stderr))
}

// TestAdmissionSurvivesRedisFlushAll: an organization's twelve validations,
// three at a time, on a Redis of the test's own. Three run and finish; three
// more are admitted into Redis and the server loses everything (FLUSHALL). The
// reconciler gives their slots back and puts them back in line; the relay and
// the workers then run every task, each exactly once: every row finished, one
// validated event per version, one run per task.
func TestAdmissionSurvivesRedisFlushAll(t *testing.T) {
	t.Parallel()
	const versions, limit = 12, 3
	ctx := context.Background()
	rd, err := testenv.StartPrivateRedis(ctx)
	require.NoError(t, err)
	t.Cleanup(rd.Stop)
	env := testenv.New(t)
	r := newAdmissionRun(t, env, map[string]string{
		"LABELQ_REDIS_URL": "redis://" + rd.Addr + "/0", "LABELQ_ADMIT_PER_ORG": fmt.Sprintf("validate=%d", limit),
	})
	ids := r.register(versions)

	r.relayOnce()
	require.Equal(t, limit, r.held())
	stop := r.start(app.RoleWorker)
	r.drain(limit, limit, time.Minute)
	stop()

	// What the three queued next (project:match, not held back) is relayed too.
	r.relayOnce()
	require.Equal(t, limit, r.held())
	pending, err := r.a.Inspector.ListPendingTasks(queue.QueueValidate)
	require.NoError(t, err)
	require.Len(t, pending, limit, "three tasks admitted, in Redis")

	rdb := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	require.NoError(t, rdb.FlushAll(ctx).Err())

	rec := r.a.Reconciler()
	rec.After = time.Second
	// The reconciler leaves a row admitted less than its grace ago (After/2
	// here) alone, taking its task to be alive; the validate finder does not,
	// and would queue a second (no-op) validation of its version. Run it once
	// the rows are past the grace, as a pass that comes along later would.
	require.Eventually(t, func() bool {
		return r.count(`SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate' AND finished_at IS NULL
			AND enqueued_at < now() - make_interval(secs => $2)`, r.tok.OrgID, (rec.After/2).Seconds()) == limit
	}, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		_, err := rec.Run(ctx)
		require.NoError(t, err)
		return r.held() == 0
	}, 30*time.Second, 100*time.Millisecond, "the reconciler frees the slots of the tasks Redis lost")
	require.Equal(t, limit, r.count(`SELECT count(*) FROM outbox WHERE org_id = $1 AND enqueued_at IS NULL
		AND last_error LIKE '%gone from Redis%'`, r.tok.OrgID), "back in line, to be admitted again")
	require.Equal(t, versions-limit, r.count(`SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate'
		AND enqueued_at IS NULL`, r.tok.OrgID))

	r.start(app.RoleWorker, app.RoleRelay)
	r.drain(versions, limit, 2*time.Minute)
	r.requireEachOnce(ids)
	require.Len(t, r.runs, versions, "every task ran")
	_, err = rec.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, r.held(), "a reconciler pass after the end finds every slot rightly given back")
	require.Equal(t, versions, r.count("SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate'", r.tok.OrgID),
		"and queues no validation again")
}
