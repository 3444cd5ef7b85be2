package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// Defaults of BenchmarkIdle (LABELQ_BENCH_IDLE_WINDOW, LABELQ_BENCH_IDLE_TASKS).
const (
	// DefaultBenchIdleWindow covers one reconciler pass (LABELQ_RECONCILE_INTERVAL,
	// 1m): the idle cost includes the periodic work, not only the polls.
	DefaultBenchIdleWindow = 60 * time.Second
	DefaultBenchIdleTasks  = 40
	benchIdleWarmup        = 10 * time.Second
)

// idleBaseline is the settings before the worker's wake-up path: asynq's poll
// every 200 ms ±50%, no wake-up.
var idleBaseline = []string{"LABELQ_WORKER_POLL_INTERVAL=200ms", "LABELQ_WORKER_IDLE_WAIT=0"}

// BenchmarkIdle starts a real `labelq all` process on an empty system twice, with
// the previous default settings (the baseline) and with today's, and measures
// each over the same idle window: the CPU of the labelq process, of its Redis
// (a private server, so nothing else counts) and of its PostgreSQL backends, as
// % of one core. Then it registers tasks one at a time through the API, each at a
// random moment after the previous finished, and times from registration to the
// worker starting it: an export's requested_at (the API's transaction) to its
// started_at (written by the worker as it takes the export, after a few reads).
// Targets: under 1% of a core idle, pickup under 250 ms at p99.
func BenchmarkIdle(b *testing.B) {
	window := benchDuration(b, "LABELQ_BENCH_IDLE_WINDOW", DefaultBenchIdleWindow)
	n := DefaultBenchIdleTasks
	if v := os.Getenv("LABELQ_BENCH_IDLE_TASKS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err, "LABELQ_BENCH_IDLE_TASKS must be a number of tasks")
		require.Positive(b, n, "LABELQ_BENCH_IDLE_TASKS must be a number of tasks")
	}
	ctx := context.Background()
	env := testenv.New(b)
	rd, err := testenv.StartPrivateRedis(ctx)
	require.NoError(b, err)
	defer rd.Stop()
	bin := buildLabelq(b)
	vars := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"LABELQ_DATABASE_URL=" + env.PG.URL, "LABELQ_API_DATABASE_URL=" + env.PG.APIURL,
		"LABELQ_REDIS_URL=redis://" + rd.Addr + "/0",
		"LABELQ_S3_ENDPOINT=" + env.S3.Endpoint, "LABELQ_S3_ACCESS_KEY=" + env.S3.AccessKey,
		"LABELQ_S3_SECRET_KEY=" + env.S3.SecretKey, "LABELQ_S3_BUCKET=" + env.S3.Store.Bucket,
		"LABELQ_LOG_LEVEL=warn",
	}
	tc := exec.Command(bin, "token", "create", "--org", "idle-bench", "--name", "bench") //nolint:gosec // our own binary
	tc.Env = vars
	out, err := tc.Output()
	require.NoError(b, err, "token create")
	var token string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "token="); ok {
			token = v
		}
	}
	require.NotEmpty(b, token, "token create printed no token: %s", out)
	b.ResetTimer()

	type figures struct {
		cpu, redis, pg, p50, p99 float64
	}
	measure := func(name string, extra []string) figures {
		rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
		defer rc.Close()
		require.NoError(b, rc.FlushAll(ctx).Err())
		addr := testenv.FreeAddr(b)
		logPath := filepath.Join(b.TempDir(), name+".log")
		logFile, err := os.Create(logPath)
		require.NoError(b, err)
		defer func() { _ = logFile.Close() }()
		cmd := exec.Command(bin, "all") //nolint:gosec // our own binary
		cmd.Env = append(append(slices.Clone(vars), "LABELQ_HTTP_ADDR="+addr), extra...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(b, cmd.Start())
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}()
		api := benchAPI{base: "http://" + addr, token: token}
		api.waitUp(b)
		var project struct {
			ID int64 `json:"id"`
		}
		api.call(b, "POST", "/v1/projects", map[string]any{"name": "idle " + name}, &project)
		time.Sleep(benchIdleWarmup)

		// The idle window: nothing queued, nothing read through this process's
		// pools (their backends are idle).
		before := idleCPU(b, env, cmd.Process.Pid, rd.Pid())
		time.Sleep(window)
		spent := idleCPU(b, env, cmd.Process.Pid, rd.Pid()).since(before)
		pct := func(s float64) float64 { return 100 * s / window.Seconds() }

		pickups := make([]time.Duration, 0, n)
		for range n {
			// A random moment after the previous task: the worker may be anywhere
			// in its poll or wait.
			time.Sleep(300*time.Millisecond + rand.N(time.Second))
			var x struct {
				ID int64 `json:"id"`
			}
			api.call(b, "POST", fmt.Sprintf("/v1/projects/%d/exports", project.ID), map[string]any{}, &x)
			require.Positive(b, x.ID)
			pickups = append(pickups, waitStarted(b, env, x.ID))
		}
		slices.Sort(pickups)
		ms := func(q float64) float64 {
			i := max(int(float64(len(pickups))*q+0.999999)-1, 0)
			return float64(pickups[i].Microseconds()) / 1000
		}
		f := figures{cpu: pct(spent.labelq), redis: pct(spent.redis), pg: pct(spent.pg), p50: ms(0.5), p99: ms(0.99)}
		b.Logf("%s (%s): idle over %s: labelq %.2f CPU-s (%.2f%% of a core), Redis %.2f CPU-s, PostgreSQL backends %.2f CPU-s; pickup of %d tasks p50 %.0f ms, p99 %.0f ms, max %.0f ms",
			name, strings.Join(extra, " "), window, spent.labelq, f.cpu, spent.redis, spent.pg, n, f.p50, f.p99,
			float64(pickups[len(pickups)-1].Microseconds())/1000)
		return f
	}
	base := measure("baseline", idleBaseline)
	now := measure("default", nil)
	b.StopTimer()
	b.ReportMetric(now.cpu, "idle_cpu_pct")
	b.ReportMetric(base.cpu, "baseline_idle_cpu_pct")
	b.ReportMetric(now.cpu/base.cpu, "cpu_ratio")
	b.ReportMetric(1, "target_cpu_pct")
	b.ReportMetric(now.redis, "redis_cpu_pct")
	b.ReportMetric(base.redis, "baseline_redis_cpu_pct")
	b.ReportMetric(now.pg, "pg_cpu_pct")
	b.ReportMetric(base.pg, "baseline_pg_cpu_pct")
	b.ReportMetric(now.p50, "pickup_p50_ms")
	b.ReportMetric(now.p99, "pickup_p99_ms")
	b.ReportMetric(base.p50, "baseline_pickup_p50_ms")
	b.ReportMetric(base.p99, "baseline_pickup_p99_ms")
	b.ReportMetric(250, "target_p99_ms")
}

func benchDuration(b *testing.B, name string, def time.Duration) time.Duration {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	require.NoError(b, err, "%s must be a duration such as 30s", name)
	require.Positive(b, d, "%s must be a duration such as 30s", name)
	return d
}

// buildLabelq compiles this command into a temporary directory (with
// LABELQ_BUILD_OVERLAY, as the chaos runner does, for a local profiling build).
func buildLabelq(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "labelq")
	args := []string{"build", "-o", bin}
	if ov := os.Getenv("LABELQ_BUILD_OVERLAY"); ov != "" {
		args = append(args, "-overlay", ov)
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	require.NoError(b, err, "build labelq: %s", out)
	return bin
}

// idleSpent is CPU seconds: the labelq process, its Redis, and the PostgreSQL
// backends of the test's database by pid.
type idleSpent struct {
	labelq, redis, pg float64
	backends          map[int]float64
}

func idleCPU(b *testing.B, env *testenv.Env, pid, redisPid int) idleSpent {
	b.Helper()
	s := idleSpent{labelq: procCPU(b, pid), redis: procCPU(b, redisPid), backends: map[int]float64{}}
	rows, err := env.PG.Pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = $1`, env.PG.Name)
	require.NoError(b, err)
	defer rows.Close()
	for rows.Next() {
		var p int
		require.NoError(b, rows.Scan(&p))
		if v, ok := readCPU(p); ok {
			s.backends[p] = v
		}
	}
	require.NoError(b, rows.Err())
	return s
}

// since is what was spent after before; a backend present at both looks counts
// (one that came or went in between is missed, which errs low).
func (s idleSpent) since(before idleSpent) idleSpent {
	d := idleSpent{labelq: s.labelq - before.labelq, redis: s.redis - before.redis}
	for p, v := range s.backends {
		if w, ok := before.backends[p]; ok {
			d.pg += v - w
		}
	}
	return d
}

func procCPU(b *testing.B, pid int) float64 {
	b.Helper()
	v, ok := readCPU(pid)
	require.True(b, ok, "process %d is gone", pid)
	return v
}

// readCPU is a process's user + system CPU seconds from /proc/<pid>/stat.
func readCPU(pid int) (float64, bool) {
	const clkTck = 100 // USER_HZ, fixed by the kernel ABI
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clkTck, err1 == nil && err2 == nil
}

// waitStarted waits for the export to be started and finished, and returns the
// time from its registration to its start.
func waitStarted(b *testing.B, env *testenv.Env, id int64) time.Duration {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var requested time.Time
		var started *time.Time
		var status string
		require.NoError(b, env.PG.Pool.QueryRow(context.Background(),
			`SELECT requested_at, started_at, status::text FROM export_logs WHERE id = $1`, id).Scan(&requested, &started, &status))
		if started != nil && status != "pending" && status != "running" {
			return started.Sub(requested)
		}
		require.True(b, time.Now().Before(deadline), "export %d is still %s after a minute", id, status)
		time.Sleep(5 * time.Millisecond)
	}
}

// benchAPI calls the API as the bench's token.
type benchAPI struct{ base, token string }

func (a benchAPI) waitUp(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(a.base + "/healthz") //nolint:noctx // a loopback probe
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		require.True(b, time.Now().Before(deadline), "labelq did not come up in a minute: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
}

func (a benchAPI) call(b *testing.B, method, path string, body, out any) {
	b.Helper()
	raw, err := json.Marshal(body)
	require.NoError(b, err)
	req, err := http.NewRequest(method, a.base+path, bytes.NewReader(raw)) //nolint:noctx // bounded by the client's timeout
	require.NoError(b, err)
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(b, err)
	defer func() { _ = resp.Body.Close() }()
	var msg bytes.Buffer
	_, _ = bufio.NewReader(resp.Body).WriteTo(&msg)
	require.Less(b, resp.StatusCode, 300, "%s %s: %d %s", method, path, resp.StatusCode, msg.String())
	require.NoError(b, json.Unmarshal(msg.Bytes(), out), "%s %s: %s", method, path, msg.String())
}
