package preannotate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/preannotate"
)

// startWorker runs an asynq server with one handler, as a worker process does,
// until the test ends.
func startWorker(t testing.TB, w *fixture, h *preannotate.Handler, concurrency int) {
	t.Helper()
	cfg := queue.ServerConfig(concurrency, 5*time.Second, testenv.Quiet(), nil)
	// Tasks a limit reschedules come back within a tick, not asynq's default 5 s.
	cfg.DelayedTaskCheckInterval = 100 * time.Millisecond
	srv := asynq.NewServer(w.env.Redis.Opt(), cfg)
	mux := asynq.NewServeMux()
	tasks.Register(mux, h.Work)
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)
}

func enqueue(t testing.TB, w *fixture, ids []int64) {
	t.Helper()
	c := asynq.NewClient(w.env.Redis.Opt())
	defer c.Close()
	for _, id := range ids {
		tk, err := tasks.NewTask(tasks.Preannotate{VersionID: id})
		require.NoError(t, err)
		_, err = c.Enqueue(tk, asynq.TaskID(tasks.Preannotate{VersionID: id}.TaskID()))
		require.NoError(t, err)
	}
}

// waitSucceeded waits until n runs of the project have succeeded.
func waitSucceeded(t testing.TB, w *fixture, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var done, failed int
		err := w.env.PG.Pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status = 'succeeded'),
			count(*) FILTER (WHERE status IN ('failed', 'skipped')) FROM llm_runs WHERE project_id = $1`, w.project.ID).Scan(&done, &failed)
		require.NoError(t, err)
		require.Zero(t, failed, "no run may fail")
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d runs succeeded after %s", done, n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two worker processes (two asynq servers, two limiters with their own Redis
// connections) share one provider. Each would happily run four calls at once; the
// provider counts what arrives and answers 429 to anything over its limits.
func TestTwoWorkerProcessesStayUnderTheSharedLimits(t *testing.T) {
	t.Parallel()
	const tasks, window = 40, 2 * time.Second
	tests := []struct {
		name        string
		perWindow   int
		concurrency int
		latency     time.Duration
	}{
		// 8 worker slots could send ~80 requests a second: the rate must hold them.
		{name: "requests per window bind", perWindow: 20, concurrency: 4, latency: 100 * time.Millisecond},
		// 8 slots, 250 ms calls: without the semaphore 8 would be in flight.
		{name: "concurrency binds", perWindow: 200, concurrency: 2, latency: 250 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newFixture(t, fixtureOpts{
				serverOpts: []llmtest.Option{
					llmtest.WithLatency(tc.latency), llmtest.WithRPM(tc.perWindow), llmtest.WithWindow(window),
					llmtest.WithMaxConcurrency(tc.concurrency),
				},
				// The provider's own limits, counted over the same 2 s window. The
				// jitter allowance is 5 % (100 ms) rather than the default 2 %: a 2 s
				// window is thirty times shorter than a real provider's minute, and
				// -race on a shared machine can delay one request's arrival by tens
				// of milliseconds after Redis admitted it.
				limits: ratelimit.Config{RequestsPerMinute: tc.perWindow, Period: window, MaxConcurrent: tc.concurrency, Headroom: 0.05},
			})
			ids := make([]int64, tasks)
			for i := range ids {
				ids[i] = w.valid(fmt.Sprintf("r%02d.txt", i), "text/plain", fmt.Appendf(nil, "review number %d", i), nil).ID
			}
			startWorker(t, w, w.h, 4)
			startWorker(t, w, w.handler(w.secondProcess(w.limiter.Config()), preannotate.Options{}), 4)
			start := time.Now()
			enqueue(t, w, ids)
			waitSucceeded(t, w, tasks, time.Minute)
			t.Logf("%d tasks in %s", tasks, time.Since(start).Round(time.Millisecond))

			st := w.srv.Stats()
			t.Logf("provider saw: %+v", st)
			require.Equal(t, tasks, st.Requests, "one call per task")
			require.Zero(t, st.RateLimited, "the provider never had to refuse a request")
			require.LessOrEqual(t, st.MaxConcurrency, tc.concurrency)
			require.LessOrEqual(t, st.MaxRequestsPerWindow, tc.perWindow)
			if tc.concurrency == 2 {
				require.Equal(t, tc.concurrency, st.MaxConcurrency, "the limit was reached, so it was tested")
			} else {
				require.GreaterOrEqual(t, st.MaxRequestsPerWindow, tc.perWindow-2, "the limit was reached, so it was tested")
			}
		})
	}
}
