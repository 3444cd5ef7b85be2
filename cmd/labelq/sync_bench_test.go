package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	storagesync "github.com/labelq/labelq/worker/sync"
)

// DefaultBenchSyncValidObjects is BenchmarkSyncUntilValid10k's objects
// (LABELQ_BENCH_SYNC_VALID_OBJECTS).
const DefaultBenchSyncValidObjects = 10_000

// BenchmarkSyncUntilValid10k syncs 10,000 small objects into a project while the
// relay and the validate workers run, and times from the sync's start until every
// version is valid. It lives here because it runs two workers (storage:sync and
// file:validate) and only cmd/ links them together. Baseline in the same run: the
// minimal durable floor (testenv.DurableFloor) over the same objects at the
// validate workers' concurrency. Target: at least 1.0 × the floor (registration
// is batched, a page of a thousand keys per transaction, where the floor commits
// each object).
func BenchmarkSyncUntilValid10k(b *testing.B) {
	n := DefaultBenchSyncValidObjects
	if v := os.Getenv("LABELQ_BENCH_SYNC_VALID_OBJECTS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err, "LABELQ_BENCH_SYNC_VALID_OBJECTS must be a number of objects")
		require.Positive(b, n, "LABELQ_BENCH_SYNC_VALID_OBJECTS must be a number of objects")
	}
	env := testenv.New(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := app.New(ctx, env.Config(b, nil), testenv.Quiet())
	require.NoError(b, err)
	defer a.Close()
	org := env.PG.Org(b)
	prefix := storage.OwnPrefix(org.ID) + "valid/"
	seeded := testenv.Seed(b, a.Store, prefix, n)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = testenv.SeedKey(prefix, i)
	}
	concurrency := a.Cfg.WorkerConcurrency
	floor, err := testenv.DurableFloor(ctx, env.PG.URL, a.Store, keys, concurrency)
	require.NoError(b, err)

	// The relay as app runs it; the workers as wiring.go builds them, serving only
	// the validate queue (what validation queues next stays in Redis instead of
	// competing for the CPU this measures). The sync runs in this goroutine, as
	// the sync worker would run its task.
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(ctx, app.RoleRelay) }()
	qcfg := queue.ServerConfig(concurrency, 5*time.Second, testenv.Quiet(), func() context.Context { return ctx })
	qcfg.Queues = map[string]int{queue.QueueValidate: 1}
	srv := asynq.NewServer(env.Redis.Opt(), qcfg)
	mux := asynq.NewServeMux()
	// With the Finisher, as a labelq worker: the app's relay admits an
	// organization's next validations as the last ones finish.
	mux.Use(a.Metrics.Middleware, (&outbox.Finisher{Pool: a.Pool, Log: a.Log}).Middleware)
	mountWorkers(a, mux)
	require.NoError(b, srv.Start(mux))
	defer srv.Shutdown()
	sync := storagesync.NewHandler(storagesync.Deps{Pool: a.Pool, Storages: a.Storages, Log: a.Log, Now: a.Now})

	st := env.PG.OwnStorage(b, org.ID, "valid", prefix)
	run := startSync(b, a.Pool, st)
	b.ResetTimer()
	cpuBefore := testenv.CPUSnapshot()
	start := time.Now()
	require.NoError(b, sync.Work(ctx, tasks.StorageSync{RunID: run}))
	synced := time.Since(start)
	var keysNew int64
	require.NoError(b, a.Pool.QueryRow(ctx, `SELECT keys_new FROM sync_runs WHERE id = $1 AND status = 'completed'`, run).Scan(&keysNew))
	require.EqualValues(b, n, keysNew)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var valid, failed int
		require.NoError(b, a.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE validation_status = 'valid'),
		       count(*) FILTER (WHERE validation_status NOT IN ('valid', 'pending'))
		FROM file_versions WHERE project_id = $1`, st.ProjectID).Scan(&valid, &failed))
		require.Zero(b, failed, "every version is valid")
		if valid == n {
			break
		}
		require.True(b, time.Now().Before(deadline), "only %d of %d valid after 10 minutes", valid, n)
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := testenv.CPUSnapshot().Since(cpuBefore)

	var p10, p90 time.Time
	require.NoError(b, a.Pool.QueryRow(ctx, `SELECT
	    percentile_disc(0.1) WITHIN GROUP (ORDER BY validated_at),
	    percentile_disc(0.9) WITHIN GROUP (ORDER BY validated_at)
	FROM file_versions WHERE project_id = $1`, st.ProjectID).Scan(&p10, &p90))
	perSec := float64(n) / elapsed.Seconds()
	steady := 0.8 * float64(n) / p90.Sub(p10).Seconds()
	b.ReportMetric(perSec, "versions_per_s")
	b.ReportMetric(floor.PerSec, "floor_per_s")
	b.ReportMetric(perSec/floor.PerSec, "ratio")
	b.ReportMetric(1.0, "target_ratio")
	b.ReportMetric(steady, "versions_per_s_steady")
	b.ReportMetric(floor.Steady, "floor_per_s_steady")
	b.ReportMetric(steady/floor.Steady, "ratio_steady")
	b.ReportMetric(cpu.Total()*1000/float64(n), "cpu_ms_per_version")
	b.ReportMetric(floor.CPU.Total()*1000/float64(n), "floor_cpu_ms_per_object")
	b.Logf("seeded %d objects in %s (not part of any figure)", n, seeded.Round(time.Millisecond))
	b.Logf("%d keys synced after %s, all valid after %s; the floor took %s at concurrency %d",
		n, synced.Round(time.Millisecond), elapsed.Round(time.Millisecond), floor.Elapsed.Round(time.Millisecond), concurrency)
	b.Logf("CPU of labelq (%d cores, %.1f CPU-s available): %s", runtime.NumCPU(), elapsed.Seconds()*float64(runtime.NumCPU()), cpu)
	b.Logf("CPU of the floor (%.1f CPU-s available): %s", floor.Elapsed.Seconds()*float64(runtime.NumCPU()), floor.CPU)

	cancel()
	require.NoError(b, <-runDone)
}

// startSync creates a pending sync run of st through pool (its storage:sync
// outbox row in the same transaction), as POST /v1/storages/{id}/sync does, and
// returns the run's id.
func startSync(b *testing.B, pool *pgxpool.Pool, st db.Storage) int64 {
	b.Helper()
	ctx := context.Background()
	var run db.SyncRun
	require.NoError(b, database.Tx(ctx, pool, func(q *db.Queries, _ pgx.Tx) error {
		var joined bool
		var err error
		run, joined, err = ingest.StartRun(ctx, q, st, ingest.TriggerAPI, nil)
		if err == nil && joined {
			err = fmt.Errorf("storage %d already had a live run", st.ID)
		}
		return err
	}))
	return run.ID
}
