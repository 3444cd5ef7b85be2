package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/tasks"
)

// BenchmarkOutboxLatency10k registers 10,000 versions through the API while the
// relay runs, and reports commit→enqueue latency through the outbox (p50, p99;
// targets 50 ms and 200 ms) beside asynq's own enqueue latency measured in the
// same run.
func BenchmarkOutboxLatency10k(b *testing.B) {
	for range b.N {
		benchOutbox(b)
	}
}

func benchOutbox(b *testing.B) {
	const total, files, workers = 10000, 100, 8
	w := newFixtureB(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.a.Run(ctx, app.RoleRelay) }()
	defer func() { cancel(); require.NoError(b, <-done) }()

	c := w.orgA
	r := c.do("POST", "/v1/projects", map[string]any{"name": "bench"})
	require.Equal(b, http.StatusCreated, r.Status)
	pid := idB(b, r)
	fileIDs := make([]int64, files)
	for i := range fileIDs {
		r := c.do("POST", fmt.Sprintf("/v1/projects/%d/files", pid), map[string]any{"name": fmt.Sprintf("f%03d.txt", i)})
		require.Equal(b, http.StatusCreated, r.Status)
		fileIDs[i] = idB(b, r)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				f := fileIDs[i%files]
				r := c.do("POST", fmt.Sprintf("/v1/files/%d/versions", f), map[string]any{
					"storage_path": fmt.Sprintf("orgs/%d/bench/%d", w.orgAID, i)})
				if r.Status != http.StatusAccepted {
					b.Errorf("register %d: %d %s", i, r.Status, r.Body)
				}
			}
		}()
	}
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	registerSecs := time.Since(start).Seconds()
	require.Eventually(b, func() bool {
		n, err := w.env.PG.Q.OutboxCountUnsent(context.Background())
		return err == nil && n == 0
	}, 2*time.Minute, 20*time.Millisecond)
	b.StopTimer()

	var p50, p99, maxMs float64
	require.NoError(b, w.env.PG.Pool.QueryRow(context.Background(), `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lat), percentile_cont(0.99) WITHIN GROUP (ORDER BY lat), max(lat)
		FROM (SELECT extract(epoch FROM enqueued_at - created_at) * 1000 AS lat FROM outbox WHERE task_type = $1) s`, tasks.Validate{}.Kind()).
		Scan(&p50, &p99, &maxMs))

	// Baseline: asynq's own enqueue latency for the same number of tasks.
	client := asynq.NewClient(w.env.Redis.Opt())
	defer client.Close()
	lat := make([]float64, 0, total)
	for i := range total {
		t0 := time.Now()
		_, err := client.Enqueue(asynq.NewTask("bench:noop", []byte(`{}`)), asynq.TaskID(fmt.Sprintf("direct-%d", i)), asynq.Queue("bench"))
		require.NoError(b, err)
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	dp50, dp99 := percentile(lat, 0.5), percentile(lat, 0.99)

	b.ReportMetric(p50, "outbox_p50_ms")
	b.ReportMetric(p99, "outbox_p99_ms")
	b.ReportMetric(maxMs, "outbox_max_ms")
	b.ReportMetric(dp50, "direct_enqueue_p50_ms")
	b.ReportMetric(dp99, "direct_enqueue_p99_ms")
	b.ReportMetric(float64(total)/registerSecs, "registrations_per_s")
	b.ReportMetric(50, "target_p50_ms")
	b.ReportMetric(200, "target_p99_ms")
}
