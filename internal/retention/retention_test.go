package retention_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/retention"
	"github.com/labelq/labelq/internal/testenv"
)

const day = 24 * time.Hour

// fixture is a private database, a pool as labelq_worker (the role passes run as
// in production: no DDL, so partitions are the definer functions' business) and
// one organization.
type fixture struct {
	pg     *testenv.PG
	worker *pgxpool.Pool
	org    int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pg := testenv.Postgres(t)
	worker, err := database.Open(context.Background(), testenv.WithUser(pg.URL, "labelq_worker"), 8)
	require.NoError(t, err)
	t.Cleanup(worker.Close)
	return &fixture{pg: pg, worker: worker, org: pg.Org(t).ID}
}

func (f *fixture) cleaner(keep retention.Settings) *retention.Cleaner {
	return &retention.Cleaner{Pool: f.worker, Keep: keep, Log: testenv.Quiet()}
}

// pastPartitions makes event_log's partitions from months ago on, as the migration
// does for the rows it moves.
func (f *fixture) pastPartitions(t *testing.T, months int) {
	t.Helper()
	_, err := f.pg.Pool.Exec(context.Background(),
		`SELECT labelq_event_log_ensure_partitions(3, now() - make_interval(months => $1))`, months)
	require.NoError(t, err)
}

// event writes an event that occurred at at and returns its id, or 0 when the
// dedup trigger dropped it.
func (f *fixture) event(t *testing.T, at time.Time, key string) int64 {
	t.Helper()
	var dedup *string
	if key != "" {
		dedup = &key
	}
	rows, err := f.pg.Pool.Query(context.Background(), `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key, occurred_at)
		VALUES ($1, 'project', 1, 'tested', $2, $3) RETURNING id`, f.org, dedup, at)
	require.NoError(t, err)
	defer rows.Close()
	var id int64
	for rows.Next() {
		require.NoError(t, rows.Scan(&id))
	}
	require.NoError(t, rows.Err())
	return id
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, f.pg.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (f *fixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := f.pg.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// backdate sets a row's updated_at in the past, past the trigger that keeps it.
func (f *fixture) backdate(t *testing.T, table string, id int64, age time.Duration) {
	t.Helper()
	ctx := context.Background()
	tx, err := f.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SET LOCAL session_replication_role = replica`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE `+table+` SET updated_at = now() - $2::interval WHERE id = $1`, id, age.String())
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
}

// partitions lists parent's monthly partitions.
func (f *fixture) partitions(t *testing.T, parent string) []string {
	t.Helper()
	rows, err := f.pg.Pool.Query(context.Background(), `SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass ORDER BY 1`, parent)
	require.NoError(t, err)
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	return names
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func partName(parent string, month time.Time) string { return parent + "_p" + month.Format("200601") }

// TestPassMakesPartitionsAhead: a pass leaves event_log partitions for this month
// and MonthsAhead more (dedup buckets one further), as labelq_worker, and a second
// pass has nothing to make.
func TestPassMakesPartitionsAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	c := f.cleaner(retention.Settings{})
	c.MonthsAhead = 5
	res, err := c.Run(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.PartitionsCreated, 2, "the migration made 3 months ahead")

	this := monthStart(time.Now())
	events, buckets := f.partitions(t, "event_log"), f.partitions(t, "event_log_dedup")
	for i := range 6 {
		require.Contains(t, events, partName("event_log", this.AddDate(0, i, 0)))
	}
	require.NotContains(t, events, partName("event_log", this.AddDate(0, 6, 0)))
	for i := range 7 {
		require.Contains(t, buckets, partName("event_log_dedup", this.AddDate(0, i, 0)))
	}
	require.NotZero(t, f.event(t, this.AddDate(0, 5, 20), "far-ahead"), "an event five months ahead has its partition")

	again, err := c.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, again.PartitionsCreated)
	require.Equal(t, events, f.partitions(t, "event_log"))
}

// TestPassDropsExpiredMonthsKeepsRecentRows: with a retention, the partitions (and
// dedup buckets) of months that ended before it are dropped whole; every event
// younger than the retention survives, and so does an older one in the month the
// retention falls in. Without a retention nothing is dropped.
func TestPassDropsExpiredMonthsKeepsRecentRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.pastPartitions(t, 8)
	now := time.Now().UTC()
	keep := 90 * day
	cutoff := now.Add(-keep)
	ages := []time.Duration{220 * day, 150 * day, 100 * day, 91 * day, 89 * day, 30 * day, day, 0}
	ids := map[time.Duration]int64{}
	for _, age := range ages {
		ids[age] = f.event(t, now.Add(-age), fmt.Sprintf("k%d", age/day))
		require.NotZero(t, ids[age])
	}

	forever, err := f.cleaner(retention.Settings{}).Run(ctx)
	require.NoError(t, err)
	require.Zero(t, forever.PartitionsDropped, "0 keeps event_log forever")
	require.Equal(t, int64(len(ages)), f.count(t, `SELECT count(*) FROM event_log`))

	before := f.partitions(t, "event_log")
	var expired []string
	for _, name := range before {
		m, err := time.Parse("200601", name[len("event_log_p"):])
		require.NoError(t, err)
		if !m.AddDate(0, 1, 0).After(cutoff) {
			expired = append(expired, name)
		}
	}
	require.NotEmpty(t, expired)

	res, err := f.cleaner(retention.Settings{EventLog: keep}).Run(ctx)
	require.NoError(t, err)
	require.Equal(t, len(expired), res.PartitionsDropped)
	after := f.partitions(t, "event_log")
	for _, name := range expired {
		require.NotContains(t, after, name)
		require.NotContains(t, f.partitions(t, "event_log_dedup"), "event_log_dedup"+name[len("event_log"):])
	}
	require.Len(t, after, len(before)-len(expired))
	for _, age := range ages {
		at := now.Add(-age)
		n := f.count(t, `SELECT count(*) FROM event_log WHERE id = $1`, ids[age])
		switch {
		case !at.Before(cutoff):
			require.EqualValues(t, 1, n, "an event %s old is within the retention", age)
		case at.Before(monthStart(cutoff)):
			require.Zero(t, n, "an event %s old went with its month", age)
		default:
			require.EqualValues(t, 1, n, "an event %s old shares its month with kept events", age)
		}
	}
	require.Zero(t, f.event(t, now.Add(-30*day), "k30"), "a kept event's key still makes a repeat a no-op")

	again, err := f.cleaner(retention.Settings{EventLog: keep}).Run(ctx)
	require.NoError(t, err)
	require.Zero(t, again.PartitionsDropped)
}

// TestBatchesDeleteOnlyExpiredRows: each table loses exactly its expired rows,
// over several batches, and keeps what is still needed: outbox rows not relayed
// (however old), LLM runs not finished, copied from, or of a version whose
// pre-annotation task is still in the outbox, and each storage's newest sync run.
func TestBatchesDeleteOnlyExpiredRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	org := f.org

	// outbox: relayed 2 days ago (expired at 24h), relayed an hour ago, never relayed.
	for i := range 7 {
		f.exec(t, `INSERT INTO outbox (task_id, task_type, payload, org_id, subject_id, enqueued_at, created_at)
			VALUES ($1, 'test:old', '{}', $2, $3, now() - interval '2 days', now() - interval '2 days')`, fmt.Sprintf("old:%d", i), org, i)
	}
	for i := range 2 {
		f.exec(t, `INSERT INTO outbox (task_id, task_type, payload, org_id, enqueued_at) VALUES ($1, 'test:recent', '{}', $2, now() - interval '1 hour')`,
			fmt.Sprintf("recent:%d", i), org)
	}
	for i := range 3 {
		f.exec(t, `INSERT INTO outbox (task_id, task_type, payload, org_id, created_at, available_at) VALUES ($1, 'test:pending', '{}', $2, now() - interval '30 days', now() - interval '30 days')`,
			fmt.Sprintf("pending:%d", i), org)
	}

	// idempotency keys: 40 days and 1 day old (30 days kept).
	for i := range 5 {
		f.exec(t, `INSERT INTO idempotency_keys (org_id, key, method, path, request_hash, status_code, response_body, created_at)
			VALUES ($1, $2::text, 'POST', '/v1/x', sha256(convert_to($2::text, 'UTF8')), 201, '{}', now() - interval '40 days')`, org, fmt.Sprintf("old-%d", i))
	}
	f.exec(t, `INSERT INTO idempotency_keys (org_id, key, method, path, request_hash, status_code, response_body, created_at)
		VALUES ($1, 'recent', 'POST', '/v1/x', sha256('recent'), 201, '{}', now() - interval '1 day')`, org)

	// LLM runs (365 days kept).
	pr := f.pg.Project(t, org)
	file := f.pg.File(t, pr, "a.txt")
	v1 := f.pg.RegisterVersion(t, file, "a.txt", testenv.Declared{})
	v2 := f.pg.RegisterVersion(t, file, "a.txt", testenv.Declared{})
	run := func(v db.FileVersion, status string, age time.Duration, cachedFrom *int64) int64 {
		t.Helper()
		var id int64
		require.NoError(t, f.pg.Pool.QueryRow(ctx, `INSERT INTO llm_runs (org_id, project_id, file_version_id, model, prompt_hash, input_sha256, status, error,
				output_version_id, cached_from_id, updated_at)
			VALUES ($1, $2, $3, 'm', encode(sha256(gen_random_uuid()::text::bytea), 'hex'), repeat('a', 64), $4::llm_run_status,
				CASE WHEN $4 IN ('failed', 'skipped') THEN 'why' END, CASE WHEN $4 = 'succeeded' THEN $3::bigint END, $5, now() - $6::interval)
			RETURNING id`, org, pr.ID, v.ID, status, cachedFrom, age.String()).Scan(&id))
		return id
	}
	oldFailed := run(v1, "failed", 400*day, nil)
	oldSkipped := run(v1, "skipped", 400*day, nil)
	oldRunning := run(v1, "running", 400*day, nil)
	paid := run(v1, "succeeded", 400*day, nil)
	copied := run(v1, "succeeded", 10*day, &paid)
	queued := run(v2, "failed", 400*day, nil)
	recent := run(v1, "failed", 10*day, nil)
	f.exec(t, `INSERT INTO outbox (task_id, task_type, payload, org_id, subject_id) VALUES ($1, 'file:preannotate', '{}', $2, $3)`,
		fmt.Sprintf("file:preannotate:%d", v2.ID), org, v2.ID)

	// Sync runs (90 days kept): s1 has three old finished runs, a recent one and
	// an old live one; s2's only run is old.
	storage := func(name string) int64 {
		t.Helper()
		var id int64
		require.NoError(t, f.pg.Pool.QueryRow(ctx, `INSERT INTO storages (org_id, project_id, name) VALUES ($1, $2, $3) RETURNING id`, org, pr.ID, name).Scan(&id))
		return id
	}
	s1, s2 := storage("s1"), storage("s2")
	syncRun := func(s int64, status string, age time.Duration) int64 {
		t.Helper()
		var id int64
		require.NoError(t, f.pg.Pool.QueryRow(ctx, `INSERT INTO sync_runs (org_id, project_id, storage_id, status, error, updated_at)
			VALUES ($1, $2, $3, $4::sync_run_status, CASE WHEN $4 = 'failed' THEN 'why' END, now() - $5::interval) RETURNING id`,
			org, pr.ID, s, status, age.String()).Scan(&id))
		return id
	}
	s1Old := []int64{syncRun(s1, "completed", 200*day), syncRun(s1, "failed", 150*day), syncRun(s1, "cancelled", 100*day)}
	s1Live := syncRun(s1, "running", 200*day)
	s1Recent := syncRun(s1, "completed", 10*day)
	s2Only := syncRun(s2, "completed", 200*day)

	keep := retention.Settings{Outbox: day, IdempotencyKeys: 30 * day, LLMRuns: 365 * day, SyncRuns: 90 * day}
	c := f.cleaner(keep)
	c.BatchSize = 2 // several batches per table
	res, err := c.Run(ctx)
	require.NoError(t, err)
	require.True(t, res.Done)
	require.Equal(t, map[string]int64{"outbox": 7, "idempotency_keys": 5, "llm_runs": 2, "sync_runs": 3}, res.Deleted)

	require.Zero(t, f.count(t, `SELECT count(*) FROM outbox WHERE task_type = 'test:old'`))
	require.EqualValues(t, 2, f.count(t, `SELECT count(*) FROM outbox WHERE task_type = 'test:recent'`))
	require.EqualValues(t, 3, f.count(t, `SELECT count(*) FROM outbox WHERE task_type = 'test:pending'`), "work not relayed yet is never deleted")
	require.EqualValues(t, 1, f.count(t, `SELECT count(*) FROM idempotency_keys`))
	require.EqualValues(t, 1, f.count(t, `SELECT count(*) FROM idempotency_keys WHERE key = 'recent'`))

	runs := func() []int64 {
		rows, err := f.pg.Pool.Query(ctx, `SELECT id FROM llm_runs ORDER BY id`)
		require.NoError(t, err)
		defer rows.Close()
		var ids []int64
		for rows.Next() {
			var id int64
			require.NoError(t, rows.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(t, rows.Err())
		return ids
	}
	require.Equal(t, []int64{oldRunning, paid, copied, queued, recent}, runs())
	require.NotContains(t, runs(), oldFailed)
	require.NotContains(t, runs(), oldSkipped)

	for _, id := range s1Old {
		require.Zero(t, f.count(t, `SELECT count(*) FROM sync_runs WHERE id = $1`, id))
	}
	for _, id := range []int64{s1Live, s1Recent, s2Only} {
		require.EqualValues(t, 1, f.count(t, `SELECT count(*) FROM sync_runs WHERE id = $1`, id), "sync run %d is kept", id)
	}

	// Once the copy expires it goes, and the run it was copied from on the next pass.
	f.backdate(t, "llm_runs", copied, 400*day)
	for _, want := range [][]int64{{oldRunning, paid, queued, recent}, {oldRunning, queued, recent}} {
		_, err := c.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, want, runs())
	}

	// A pass out of budget says it is not done.
	short := f.cleaner(keep)
	short.Budget = time.Nanosecond
	f.exec(t, `INSERT INTO outbox (task_id, task_type, payload, org_id, enqueued_at) VALUES ('late', 'test:old', '{}', $1, now() - interval '2 days')`, org)
	res, err = short.Run(ctx)
	require.NoError(t, err)
	require.False(t, res.Done)
}

// TestPendingOutboxRowsAreNeverDeleted: rows not relayed, claimed by a relay or
// not, stay whatever their age and however short the retention.
func TestPendingOutboxRowsAreNeverDeleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.exec(t, `INSERT INTO outbox (task_id, task_type, payload, org_id, created_at, available_at)
		SELECT 'p' || g, 'test:pending', '{}', $1, now() - interval '400 days', now() - interval '400 days' FROM generate_series(1, 20) g`, f.org)
	f.exec(t, `UPDATE outbox SET claimed_by = 'relay-1', claimed_until = now() - interval '1 day', last_error = 'redis down', attempts = 3
		WHERE task_id IN ('p1', 'p2', 'p3')`)
	f.exec(t, `INSERT INTO outbox (task_id, task_type, payload, org_id, enqueued_at) VALUES ('done', 'test:done', '{}', $1, now() - interval '1 minute')`, f.org)
	res, err := f.cleaner(retention.Settings{Outbox: time.Millisecond}).Run(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Deleted["outbox"], "only the relayed row")
	require.EqualValues(t, 20, f.count(t, `SELECT count(*) FROM outbox WHERE enqueued_at IS NULL`))
}

// TestConcurrentPassesShareTheWork: passes started together in four processes'
// worth of connections all succeed, and every expired row and partition is removed
// exactly once between them.
func TestConcurrentPassesShareTheWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.pastPartitions(t, 6)
	f.exec(t, `INSERT INTO outbox (task_id, task_type, payload, org_id, enqueued_at)
		SELECT 'o' || g, 'test:old', '{}', $1, now() - interval '2 days' FROM generate_series(1, 3000) g`, f.org)
	f.exec(t, `INSERT INTO idempotency_keys (org_id, key, method, path, request_hash, status_code, response_body, created_at)
		SELECT $1, 'k' || g, 'POST', '/v1/x', sha256(('k' || g)::bytea), 201, '{}', now() - interval '40 days' FROM generate_series(1, 2000) g`, f.org)
	f.exec(t, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key, occurred_at)
		SELECT $1, 'project', g % 10, 'tested', 'e' || g, now() - make_interval(days => g % 180) FROM generate_series(1, 2000) g`, f.org)
	keep := retention.Settings{EventLog: 60 * day, Outbox: day, IdempotencyKeys: 30 * day}
	partitionsBefore := len(f.partitions(t, "event_log"))

	const passes = 4
	results := make([]retention.Result, passes)
	errs := make([]error, passes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range passes {
		wg.Go(func() {
			c := f.cleaner(keep)
			c.BatchSize = 100
			<-start
			results[i], errs[i] = c.Run(ctx)
		})
	}
	close(start)
	wg.Wait()
	var dropped int
	deleted := map[string]int64{}
	for i := range passes {
		require.NoError(t, errs[i], "pass %d", i)
		dropped += results[i].PartitionsDropped
		for name, n := range results[i].Deleted {
			deleted[name] += n
		}
	}
	require.Equal(t, map[string]int64{"outbox": 3000, "idempotency_keys": 2000}, deleted)
	require.Zero(t, f.count(t, `SELECT count(*) FROM outbox`)+f.count(t, `SELECT count(*) FROM idempotency_keys`))
	require.Equal(t, partitionsBefore-len(f.partitions(t, "event_log")), dropped, "each partition dropped by one pass")
	require.Positive(t, dropped)
	cutoff := monthStart(time.Now().Add(-60 * day))
	require.Zero(t, f.count(t, `SELECT count(*) FROM event_log WHERE occurred_at < $1`, cutoff))
	expired := f.count(t, `SELECT count(*) FROM generate_series(1, 2000) g WHERE now() - make_interval(days => g % 180) < $1`, cutoff)
	require.Equal(t, 2000-expired, f.count(t, `SELECT count(*) FROM event_log`), "events of kept months all stay")
}
