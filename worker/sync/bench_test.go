package storagesync_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	storagesync "github.com/labelq/labelq/worker/sync"
)

// Sizes of the sync benchmarks, overridable for a quick run on a small machine.
const (
	// DefaultBenchSyncObjects is BenchmarkSync100k's listing
	// (LABELQ_BENCH_SYNC_OBJECTS).
	DefaultBenchSyncObjects = 100_000
	// DefaultBenchSyncSmallObjects is the smaller sync whose peak RSS is put beside
	// the big one's (LABELQ_BENCH_SYNC_SMALL_OBJECTS).
	DefaultBenchSyncSmallObjects = 10_000
)

// syncBench is one benchmark's services: labelq's own bucket and an organization
// whose storages sync into projects of their own.
type syncBench struct {
	env *testenv.Env
	a   *app.App
	org db.Organization
	// pools are the named pools that wrote; closePools closes them.
	pools  []*pgxpool.Pool
	opened int
}

func newSyncBench(b *testing.B) *syncBench {
	b.Helper()
	env := testenv.New(b)
	cfg := env.Config(b, nil)
	a, err := app.New(context.Background(), cfg, testenv.Quiet())
	require.NoError(b, err)
	b.Cleanup(a.Close)
	return &syncBench{env: env, a: a, org: env.PG.Org(b)}
}

// rawList is the baseline: the same ListObjectsV2 walk of the prefix the sync
// makes (same client, page size and options), doing nothing with the keys.
func (s *syncBench) rawList(b *testing.B, prefix string) (int, time.Duration) {
	b.Helper()
	noOwner := false
	start := time.Now()
	n := 0
	for o := range s.a.Store.Client.ListObjects(context.Background(), s.a.Store.Bucket, minio.ListObjectsOptions{
		Prefix: prefix, Recursive: true, MaxKeys: storagesync.DefaultPageSize, FetchOwner: &noOwner,
	}) {
		require.NoError(b, o.Err)
		n++
	}
	return n, time.Since(start)
}

// bestRawList is the fastest of walks walks: the baseline labelq is held to is
// the best the listing did in this run. MinIO keeps a listing's metadata cached
// for a while, so the benchmarks walk both before and after the sync they
// compare with.
func (s *syncBench) bestRawList(b *testing.B, prefix string, want, walks int) time.Duration {
	b.Helper()
	best := time.Duration(1<<63 - 1)
	for range walks {
		n, d := s.rawList(b, prefix)
		require.Equal(b, want, n)
		best = min(best, d)
	}
	return best
}

// runResult is what a finished sync run recorded.
type runResult struct {
	Pages                   int32
	KeysNew, KeysUnchanged  int64
	KeysListed, KeysSkipped int64
}

// sync runs the storage:sync handler over run, with pool as its database, the
// way the sync worker runs the task, and returns what the run recorded and the
// time the handler took.
func (s *syncBench) sync(b *testing.B, pool *pgxpool.Pool, runID int64) (runResult, time.Duration) {
	b.Helper()
	ctx := context.Background()
	h := storagesync.NewHandler(storagesync.Deps{Pool: pool, Storages: s.a.Storages, Log: testenv.Quiet(), Now: s.a.Now})
	start := time.Now()
	require.NoError(b, h.Work(ctx, tasks.StorageSync{RunID: runID}))
	took := time.Since(start)
	var r runResult
	var status db.SyncRunStatus
	var reason *string
	require.NoError(b, s.env.PG.Pool.QueryRow(ctx, `SELECT status, error, pages, keys_listed, keys_new, keys_unchanged, keys_skipped
		FROM sync_runs WHERE id = $1`, runID).Scan(&status, &reason, &r.Pages, &r.KeysListed, &r.KeysNew, &r.KeysUnchanged, &r.KeysSkipped))
	require.Equal(b, db.SyncRunStatusCompleted, status, "sync run %d: %v", runID, reason)
	return r, took
}

// pool opens a pool of the workers' size whose backends ClosePool can wait for.
// closePools closes it with the others.
func (s *syncBench) pool(b *testing.B, name string) *pgxpool.Pool {
	b.Helper()
	s.opened++
	p, err := testenv.NamedPool(context.Background(), s.env.PG.URL, fmt.Sprintf("%s-%d", name, s.opened), s.a.Cfg.DatabaseMaxConns)
	require.NoError(b, err)
	b.Cleanup(p.Close) // a second Close is a no-op
	s.pools = append(s.pools, p)
	return p
}

// closePools closes every pool s.pool opened and waits until their backends have
// exited, so that what they wrote is in pg_stat_user_tables.
func (s *syncBench) closePools(b *testing.B) {
	b.Helper()
	for _, p := range s.pools {
		require.NoError(b, testenv.ClosePool(context.Background(), p, s.env.PG.Pool))
	}
	s.pools = nil
}

// freshPeak gives memory back and starts the peak-RSS mark again, so the next
// testenv.PeakRSS is the peak of what runs in between. It returns the RSS the
// mark starts from.
func freshPeak(b *testing.B) int64 {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	testenv.ResetPeakRSS(b)
	return testenv.RSS(b)
}

const mib = 1 << 20

// BenchmarkSync100k syncs a prefix of 100,000 small objects in labelq's own bucket
// into a project (sub-benchmark sync), then syncs it again unchanged
// (sub-benchmark resync). Baseline for both: a ListObjectsV2 walk of the same
// prefix with the same client and page size, measured in the same run (the
// fastest of three walks, two before and one after). Targets: the first sync registers at least 0.5 × the
// listing's keys per second, with peak RSS flat between a 10,000-key sync (run
// first, on another prefix) and the 100,000; the re-sync writes no row to files,
// file_versions, storage_links or outbox and takes at most 1.2 × the listing.
// What it does write (the run's own progress, its completion event) is
// reported beside it, per table.
//
// The sync runs the storage:sync handler in this process as the sync worker
// does, page transactions included; the relay is not running, so the
// file:validate outbox rows the sync writes stay unsent.
func BenchmarkSync100k(b *testing.B) {
	n := testenv.BenchSize(b, "LABELQ_BENCH_SYNC_OBJECTS", DefaultBenchSyncObjects)
	small := testenv.BenchSize(b, "LABELQ_BENCH_SYNC_SMALL_OBJECTS", DefaultBenchSyncSmallObjects)
	s := newSyncBench(b)
	own := storage.OwnPrefix(s.org.ID)
	bigPrefix, smallPrefix := own+"big/", own+"small/"
	seeded := testenv.Seed(b, s.a.Store, bigPrefix, n) + testenv.Seed(b, s.a.Store, smallPrefix, small)
	big := s.env.PG.OwnStorage(b, s.org.ID, "big", bigPrefix)

	synced := false
	b.Run("sync", func(b *testing.B) {
		listed := s.bestRawList(b, bigPrefix, n, 2)

		// The small sync first, for its peak.
		pool := s.pool(b, "labelq-bench-sync")
		smallRun := startSync(b, pool, s.env.PG.OwnStorage(b, s.org.ID, "small", smallPrefix))
		rssSmallStart := freshPeak(b)
		_, _ = s.sync(b, pool, smallRun)
		peakSmall := testenv.PeakRSS(b)

		run := startSync(b, pool, big)
		rssStart := freshPeak(b)
		cpuBefore := testenv.CPUSnapshot()
		b.ResetTimer()
		done, took := s.sync(b, pool, run)
		b.StopTimer()
		cpu := testenv.CPUSnapshot().Since(cpuBefore)
		peak := testenv.PeakRSS(b)
		require.EqualValues(b, n, done.KeysNew, "every key registered: %+v", done)
		synced = true
		listed = min(listed, s.bestRawList(b, bigPrefix, n, 1))

		keysPerSec := float64(n) / took.Seconds()
		listPerSec := float64(n) / listed.Seconds()
		b.ReportMetric(keysPerSec, "keys_per_s")
		b.ReportMetric(listPerSec, "raw_list_keys_per_s")
		b.ReportMetric(keysPerSec/listPerSec, "ratio")
		b.ReportMetric(0.5, "target_ratio")
		b.ReportMetric(float64(peak)/mib, "peak_RSS_MiB")
		smallName := strconv.Itoa(small)
		if small%1000 == 0 {
			smallName = strconv.Itoa(small/1000) + "k"
		}
		b.ReportMetric(float64(peakSmall)/mib, "peak_RSS_"+smallName+"_MiB")
		b.ReportMetric(cpu.Total()*1e6/float64(n), "cpu_us_per_key")
		b.Logf("seeded %d + %d objects in %s (%.0f objects/s; not part of any figure)",
			n, small, seeded.Round(time.Millisecond), float64(n+small)/seeded.Seconds())
		b.Logf("%d keys synced in %s (%d pages), listed raw in %s", n, took.Round(time.Millisecond), done.Pages, listed.Round(time.Millisecond))
		b.Logf("peak RSS %d MiB for %d keys (from %d MiB), %d MiB for %d keys (from %d MiB)",
			peak/mib, n, rssStart/mib, peakSmall/mib, small, rssSmallStart/mib)
		b.Logf("CPU of the sync (%d cores, %.1f CPU-s available): %s", runtime.NumCPU(), took.Seconds()*float64(runtime.NumCPU()), cpu)
	})

	b.Run("resync", func(b *testing.B) {
		ctx := context.Background()
		if !synced {
			p := s.pool(b, "labelq-bench-sync")
			_, _ = s.sync(b, p, startSync(b, p, big))
		}
		listed := s.bestRawList(b, bigPrefix, n, 2)
		// Statistics reach pg_stat_user_tables when a backend flushes them: at
		// once when it exits, within 10 s when it idles. Every pool that wrote
		// (the first syncs', the one that makes this run and its outbox row) is
		// closed and its backends gone before the first count, and the
		// re-sync's before the second, so the difference is the re-sync's alone.
		run := startSync(b, s.pool(b, "labelq-bench-start"), big)
		s.closePools(b)
		before, err := testenv.ReadTableWrites(ctx, s.env.PG.Pool)
		require.NoError(b, err)
		pool := s.pool(b, "labelq-bench-resync")
		cpuBefore := testenv.CPUSnapshot()
		b.ResetTimer()
		done, took := s.sync(b, pool, run)
		b.StopTimer()
		cpu := testenv.CPUSnapshot().Since(cpuBefore)
		s.closePools(b)
		after, err := testenv.ReadTableWrites(ctx, s.env.PG.Pool)
		require.NoError(b, err)
		writes := after.Since(before)
		require.EqualValues(b, n, done.KeysUnchanged, "every key unchanged: %+v", done)
		listed = min(listed, s.bestRawList(b, bigPrefix, n, 1))

		var data int64
		for _, t := range []string{"files", "file_versions", "storage_links", "outbox"} {
			data += writes[t].Total()
		}
		b.ReportMetric(float64(data), "rows_written")
		b.ReportMetric(float64(writes["sync_runs"].Total()), "sync_run_rows_written")
		b.ReportMetric(took.Seconds(), "resync_s")
		b.ReportMetric(listed.Seconds(), "raw_list_s")
		b.ReportMetric(took.Seconds()/listed.Seconds(), "time_ratio")
		b.ReportMetric(1.2, "target_time_ratio")
		b.Logf("re-sync of %d unchanged keys in %s (%d pages), listed raw in %s", n, took.Round(time.Millisecond), done.Pages, listed.Round(time.Millisecond))
		b.Logf("rows written during the re-sync, per table: %s", writesString(writes))
		b.Logf("CPU of the re-sync: %s", cpu)
	})
}

// writesString lists the tables with rows written, most first.
func writesString(w testenv.TableWrites) string {
	names := make([]string, 0, len(w))
	for k, v := range w {
		if v.Total() != 0 {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	sort.Slice(names, func(i, j int) bool { return w[names[i]].Total() > w[names[j]].Total() })
	parts := make([]string, len(names))
	for i, k := range names {
		v := w[k]
		parts[i] = fmt.Sprintf("%s %d inserted %d updated %d deleted", k, v.Inserted, v.Updated, v.Deleted)
	}
	return strings.Join(parts, ", ")
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
