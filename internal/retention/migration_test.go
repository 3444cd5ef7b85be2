package retention_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

var quiet = testenv.Quiet()

// eventLogShape is what clients of event_log rely on, one sorted line per fact:
// columns, constraints (but the primary key), indexes' columns, triggers, policies,
// row-level security and grants.
func eventLogShape(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	const q = `
SELECT 'column ' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity || ' ' || coalesce(identity_generation, '')
  FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'event_log'
UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE conrelid = 'event_log'::regclass AND contype NOT IN ('p', 'u')
UNION ALL SELECT 'index ' || i.relname || ' ' || pg_get_indexdef(i.oid, 1, true) || ',' || coalesce(pg_get_indexdef(i.oid, 2, true), '') || ',' || coalesce(pg_get_indexdef(i.oid, 3, true), '')
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = 'event_log'::regclass AND NOT x.indisprimary AND NOT x.indisunique
UNION ALL SELECT 'trigger ' || tgname || ' ' || tgfoid::regproc FROM pg_trigger WHERE tgrelid = 'event_log'::regclass AND NOT tgisinternal AND tgname <> 'event_log_dedup'
UNION ALL SELECT 'policy ' || policyname || ' ' || cmd || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies WHERE tablename = 'event_log'
UNION ALL SELECT 'rls ' || relrowsecurity || ' force ' || relforcerowsecurity FROM pg_class WHERE oid = 'event_log'::regclass
UNION ALL SELECT 'grant ' || grantee || ' ' || privilege_type FROM information_schema.role_table_grants WHERE table_name = 'event_log' AND grantee IN ('labelq_api', 'labelq_worker')
UNION ALL SELECT 'sequence grant ' || a.grantee::regrole || ' ' || a.privilege_type
  FROM pg_class s, aclexplode(s.relacl) a WHERE s.oid = pg_get_serial_sequence('event_log', 'id')::regclass AND a.grantee <> s.relowner
ORDER BY 1`
	rows, err := conn.Query(context.Background(), q)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

// TestMigration00020PartitionsEventLog: going up, event_log's rows move into
// monthly partitions with their ids, keys and times; the table keeps its columns,
// checks, foreign keys, index, trigger, policy, row-level security and grants; the
// identity goes on after the last id; a moved key still makes its repeat a no-op.
// Going down gives the plain table back with every row and its unique key.
func TestMigration00020PartitionsEventLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.EmptyDatabase(t)
	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	version := func() int64 {
		var v int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v))
		return v
	}
	down := func() {
		for version() >= 20 {
			require.NoError(t, database.MigrateDown(ctx, url, 1, quiet))
		}
	}
	down()
	shape := eventLogShape(t, conn)
	require.Contains(t, shape, "policy tenant_isolation ALL")
	require.Contains(t, shape, "grant labelq_api INSERT")
	require.Contains(t, shape, "sequence grant labelq_worker USAGE")

	var org int64
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO organizations (name) VALUES ('mig') RETURNING id`).Scan(&org))
	_, err = conn.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key, occurred_at)
		SELECT $1, 'project', g, 'tested', CASE WHEN g % 2 = 0 THEN 'key-' || g END, now() - make_interval(days => g * 9)
		FROM generate_series(1, 40) g`, org)
	require.NoError(t, err)
	type row struct {
		ID         int64
		Key        *string
		OccurredAt time.Time
	}
	read := func() []row {
		rows, err := conn.Query(ctx, `SELECT id, dedup_key, occurred_at FROM event_log ORDER BY id`)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		require.NoError(t, err)
		return out
	}
	before := read()
	require.Len(t, before, 40)

	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	var kind string
	require.NoError(t, conn.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'event_log'::regclass`).Scan(&kind))
	require.Equal(t, "p", kind, "event_log is partitioned")
	require.Equal(t, before, read(), "every row moved with its id, key and time")
	require.Equal(t, shape, eventLogShape(t, conn), "columns, checks, foreign keys, index, trigger, policy, RLS and grants as before")
	var parts int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_log'::regclass`).Scan(&parts))
	require.GreaterOrEqual(t, parts, 13+3, "a partition per month from the oldest row's (360 days back) to 3 months ahead")

	var id int64
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type) VALUES ($1, 'project', 1, 'tested') RETURNING id`, org).Scan(&id))
	require.Greater(t, id, before[len(before)-1].ID, "the identity goes on after the moved ids")
	tag, err := conn.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key, occurred_at)
		VALUES ($1, 'project', 2, 'tested', 'key-2', now() - interval '18 days')`, org)
	require.NoError(t, err)
	require.Zero(t, tag.RowsAffected(), "a moved key makes its repeat a no-op")

	down()
	require.Equal(t, shape, eventLogShape(t, conn), "down restores the table")
	require.NoError(t, conn.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'event_log'::regclass`).Scan(&kind))
	require.Equal(t, "r", kind)
	require.Len(t, read(), 41)
	_, err = conn.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key) VALUES ($1, 'project', 2, 'tested', 'key-2')`, org)
	require.Equal(t, "event_log_dedup_key", database.ConstraintViolation(err), "the unique key is back: %v", err)
	require.NoError(t, database.MigrateUp(ctx, url, quiet))
}

// TestDedupKeyKeepsOneEvent: the trigger that replaced UNIQUE (dedup_key) keeps one
// event per key, for a repeat in another statement, in the same statement, in a
// concurrent transaction (which waits for the first and then writes nothing) and
// from the API role, across a month boundary; only keys more than a calendar
// month apart are no longer compared.
func TestDedupKeyKeepsOneEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.pastPartitions(t, 4)
	now := time.Now().UTC()

	require.NotZero(t, f.event(t, now, "a"))
	require.Zero(t, f.event(t, now, "a"), "a repeat")
	f.exec(t, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key) SELECT $1, 'project', 1, 'tested', k FROM unnest('{b,b,c}'::text[]) k`, f.org)
	require.EqualValues(t, 1, f.count(t, `SELECT count(*) FROM event_log WHERE dedup_key = 'b'`), "a repeat in the same statement")

	// Concurrent: the second writer waits for the first, then keeps nothing.
	first, err := f.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = first.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key) VALUES ($1, 'project', 1, 'tested', 'race')`, f.org)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var second int64
	var secondErr error
	wg.Go(func() {
		tag, err := f.pg.Pool.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key) VALUES ($1, 'project', 1, 'tested', 'race')`, f.org)
		second, secondErr = tag.RowsAffected(), err
	})
	require.Eventually(t, func() bool {
		return f.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
	}, 10*time.Second, 10*time.Millisecond, "the second writer waits on the first")
	require.NoError(t, first.Commit(ctx))
	wg.Wait()
	require.NoError(t, secondErr)
	require.Zero(t, second)
	require.EqualValues(t, 1, f.count(t, `SELECT count(*) FROM event_log WHERE dedup_key = 'race'`))

	// As the API role, under row-level security: the trigger writes the key as owner.
	api := func(key string) int64 {
		var n int64
		require.NoError(t, database.TenantTx(ctx, f.pg.APIPool, f.org, func(_ *db.Queries, tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key) VALUES ($1, 'project', 1, 'tested', $2)`, f.org, key)
			n = tag.RowsAffected()
			return err
		}))
		return n
	}
	require.EqualValues(t, 1, api("from-api"))
	require.Zero(t, api("from-api"))
	_, err = f.pg.APIPool.Exec(ctx, `SELECT * FROM event_log_dedup`)
	require.ErrorContains(t, err, "permission denied", "another organization's keys are not the API's to read")

	lastMonth := monthStart(now).Add(-time.Hour)
	require.NotZero(t, f.event(t, lastMonth, "boundary"))
	require.Zero(t, f.event(t, monthStart(now).Add(time.Hour), "boundary"), "an hour apart across a month's end")
	require.Zero(t, f.event(t, now, "boundary"), "in the next month")
	old := monthStart(now).AddDate(0, -3, 0)
	require.NotZero(t, f.event(t, old, "far"))
	require.NotZero(t, f.event(t, old.AddDate(0, 2, 1), "far"), "more than a calendar month apart: not compared")
}
