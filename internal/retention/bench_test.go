package retention_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/retention"
	"github.com/labelq/labelq/internal/testenv"
)

// plainEventLog is event_log as it was before migrations/00020 (one table, UNIQUE
// (dedup_key)), plus the occurred_at index a batched retention DELETE needs.
const plainEventLog = `
CREATE TABLE event_log_plain (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    org_id      bigint NOT NULL,
    entity_type entity_type NOT NULL,
    entity_id   bigint NOT NULL,
    event_type  text NOT NULL CHECK (event_type ~ '^[a-z][a-z_]{1,62}$'),
    user_id     bigint,
    dedup_key   text CHECK (length(dedup_key) <= 300),
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
)`

// plainEventLogKeys are its keys and indexes, built once the rows are in.
const plainEventLogKeys = `
ALTER TABLE event_log_plain ADD PRIMARY KEY (id),
    ADD CONSTRAINT event_log_plain_dedup_key UNIQUE (dedup_key),
    ADD FOREIGN KEY (org_id) REFERENCES organizations (id),
    ADD FOREIGN KEY (user_id) REFERENCES users (id);
CREATE INDEX event_log_plain_entity_idx ON event_log_plain (entity_type, entity_id, id);
CREATE INDEX event_log_plain_occurred_idx ON event_log_plain (occurred_at);
CREATE TRIGGER event_log_plain_updated_at BEFORE UPDATE ON event_log_plain FOR EACH ROW EXECUTE FUNCTION labelq_set_updated_at()`

// The API's list query (queries/event_log.sql, EventLogListByEntity) and the
// inserts of 00019 (EventLogInsertBatch with its ON CONFLICT), on the plain table.
const (
	plainList = `SELECT id, org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata, occurred_at, created_at, updated_at
FROM event_log_plain WHERE org_id = $1 AND entity_type = $2 AND entity_id = $3 AND id > $4 ORDER BY id LIMIT $5`
	plainInsertBatch = `INSERT INTO event_log_plain (org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata)
SELECT $1, $2, unnest($3::bigint[]), $4, unnest($5::bigint[]), unnest($6::text[]), unnest($7::jsonb[])
ON CONFLICT (dedup_key) DO NOTHING`
	plainDeleteBatch = `DELETE FROM event_log_plain WHERE id IN (
    SELECT id FROM event_log_plain WHERE occurred_at < $1 ORDER BY occurred_at LIMIT $2 FOR UPDATE SKIP LOCKED)`
)

// BenchmarkEventLog10M fills event_log (partitioned by month, migrations/00020) and
// the same rows into a copy of the table it replaced, in one private database: 10
// million events (LABELQ_BENCH_EVENTLOG_ROWS) over the last 12 months, 100 per
// entity, 4 in 5 with a dedup key. Beside each other it measures:
//
//   - listing one entity's events, p50 and p99 of the API's query (first page of
//     100, random entities, the two tables alternating);
//   - one retention pass: the real pass (retention.Cleaner) dropping the oldest
//     month, against deleting the same rows from the plain table in batches of
//     5,000 over an occurred_at index, and the VACUUM that DELETE leaves owed;
//   - writing events with dedup keys (EventLogInsertBatch, 1,000 a statement): the
//     dedup trigger against the unique index.
func BenchmarkEventLog10M(b *testing.B) {
	rows := 10_000_000
	if v := os.Getenv("LABELQ_BENCH_EVENTLOG_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10_000 {
			b.Fatalf("LABELQ_BENCH_EVENTLOG_ROWS=%q: want a whole number of at least 10000", v)
		}
		rows = n
	}
	ctx := context.Background()
	pg := testenv.Postgres(b)
	org := pg.Org(b).ID
	entities := rows / 100
	now := time.Now().UTC()
	start := monthStart(now).AddDate(0, -12, 0)
	step := now.Add(-time.Hour).Sub(start) / time.Duration(rows)
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := pg.Pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}

	loadStart := time.Now()
	exec(`SELECT labelq_event_log_ensure_partitions(3, $1)`, start)
	conn, err := pg.Pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// Triggers (the dedup one, foreign keys) off for the load: the keys are written
	// straight to their buckets below, and every row is valid by construction.
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		b.Fatal(err)
	}
	const chunk = 1_000_000
	for from := 1; from <= rows; from += chunk {
		to := min(from+chunk-1, rows)
		load := []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO event_log (id, org_id, entity_type, entity_id, event_type, dedup_key, metadata, occurred_at, created_at, updated_at)
			  OVERRIDING SYSTEM VALUE
			  SELECT g, $1, 'file_version', 1 + (g * 2654435761) % $2, 'validated',
			         CASE WHEN g % 5 <> 0 THEN 'file_version:' || g || ':validated' END,
			         jsonb_build_object('checksum', md5(g::text) || md5((g + 1)::text), 'size', g % 100000, 'mime_type', 'image/jpeg'),
			         t, t, t
			  FROM generate_series($3::bigint, $4::bigint) g, LATERAL (SELECT $5::timestamptz + make_interval(secs => (g - 1) * $6::float8) AS t) ts`,
				[]any{org, entities, from, to, start, step.Seconds()}},
			{`INSERT INTO event_log_dedup (bucket, dedup_key)
			  SELECT (date_trunc('month', t AT TIME ZONE 'UTC') + m * interval '1 month')::date, 'file_version:' || g || ':validated'
			  FROM generate_series($1::bigint, $2::bigint) g, LATERAL (SELECT $3::timestamptz + make_interval(secs => (g - 1) * $4::float8) AS t) ts,
			       (VALUES (0), (1)) AS b (m)
			  WHERE g % 5 <> 0`,
				[]any{from, to, start, step.Seconds()}},
		}
		for _, l := range load {
			if _, err := conn.Exec(ctx, l.sql, l.args...); err != nil {
				b.Fatalf("load rows %d-%d: %v", from, to, err)
			}
		}
	}
	conn.Release()
	exec(`SELECT setval(pg_get_serial_sequence('event_log', 'id'), $1)`, rows+1)
	b.Logf("partitioned table loaded in %v", time.Since(loadStart).Round(time.Second))
	exec(plainEventLog)
	exec(`INSERT INTO event_log_plain (id, org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata, occurred_at, created_at, updated_at)
		OVERRIDING SYSTEM VALUE SELECT * FROM event_log ORDER BY id`)
	exec(plainEventLogKeys)
	b.Logf("plain table loaded and indexed at %v", time.Since(loadStart).Round(time.Second))
	exec(`SELECT setval(pg_get_serial_sequence('event_log_plain', 'id'), $1)`, rows+1)
	exec(`VACUUM ANALYZE event_log`)
	exec(`VACUUM ANALYZE event_log_dedup`)
	exec(`VACUUM ANALYZE event_log_plain`)
	var partitions int
	if err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_log'::regclass`).Scan(&partitions); err != nil {
		b.Fatal(err)
	}
	var partSize, plainSize int64
	if err := pg.Pool.QueryRow(ctx, `SELECT (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent IN ('event_log'::regclass, 'event_log_dedup'::regclass)),
		pg_total_relation_size('event_log_plain')`).Scan(&partSize, &plainSize); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d events (%d partitions, %d MiB with the dedup buckets; plain %d MiB) in %v",
		rows, partitions, partSize>>20, plainSize>>20, time.Since(loadStart).Round(time.Second))

	// Writes with dedup keys: the trigger against the unique index.
	const batches, perBatch = 20, 1000
	insert := func(plain bool, round int) time.Duration {
		ids, keys, metas := make([]int64, perBatch), make([]string, perBatch), make([]json.RawMessage, perBatch)
		var users []int64 // no user: NULL, as a worker writes
		var took time.Duration
		for i := range batches {
			for j := range perBatch {
				n := int64(rows + 1 + (round*batches+i)*perBatch + j)
				ids[j] = 1 + n%int64(entities)
				keys[j] = fmt.Sprintf("file_version:%d:validated", n)
				metas[j] = json.RawMessage(`{"checksum": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "size": 1, "mime_type": "image/jpeg"}`)
			}
			t0 := time.Now()
			var err error
			if plain {
				_, err = pg.Pool.Exec(ctx, plainInsertBatch, org, db.EntityTypeFileVersion, ids, "validated", users, keys, metas)
			} else {
				err = pg.Q.EventLogInsertBatch(ctx, db.EventLogInsertBatchParams{OrgID: org, EntityType: db.EntityTypeFileVersion, EntityIds: ids,
					EventType: "validated", UserIds: users, DedupKeys: keys, Metadata: metas})
			}
			took += time.Since(t0)
			if err != nil {
				b.Fatalf("insert events (plain %v): %v", plain, err)
			}
		}
		return took
	}
	var partInsert, plainInsert time.Duration
	for round := range 2 {
		partInsert += insert(false, round)
		plainInsert += insert(true, round)
	}
	inserted := float64(2 * batches * perBatch)

	// Listing one entity's events.
	const lists = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	var part, plain []time.Duration
	for i := range lists {
		entity := 1 + rng.Int64N(int64(entities))
		for _, usePlain := range []bool{i%2 == 0, i%2 != 0} {
			t0 := time.Now()
			var got int
			if usePlain {
				r, err := pg.Pool.Query(ctx, plainList, org, db.EntityTypeFileVersion, entity, int64(0), int32(100))
				if err != nil {
					b.Fatal(err)
				}
				for r.Next() {
					got++
				}
				r.Close()
				if err := r.Err(); err != nil {
					b.Fatal(err)
				}
				plain = append(plain, time.Since(t0))
			} else {
				es, err := pg.Q.EventLogListByEntity(ctx, db.EventLogListByEntityParams{OrgID: org, EntityType: db.EntityTypeFileVersion,
					EntityID: entity, AfterID: 0, MaxRows: 100})
				if err != nil {
					b.Fatal(err)
				}
				got = len(es)
				part = append(part, time.Since(t0))
			}
			if got == 0 {
				b.Fatalf("entity %d has no events", entity)
			}
		}
	}

	// One retention pass: the oldest month goes.
	cutoff := start.AddDate(0, 1, 0)
	var expired int64
	if err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM event_log_plain WHERE occurred_at < $1`, cutoff).Scan(&expired); err != nil {
		b.Fatal(err)
	}
	c := &retention.Cleaner{Pool: pg.Pool, Log: testenv.Quiet(), Now: func() time.Time { return cutoff.Add(90 * day) },
		Keep: retention.Settings{EventLog: 90 * day}}
	b.ResetTimer()
	t0 := time.Now()
	res, err := c.Run(ctx)
	passTook := time.Since(t0)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.PartitionsDropped != 1 {
		b.Fatalf("the pass dropped %d partitions, want the oldest month's", res.PartitionsDropped)
	}
	var left int64
	if err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM event_log WHERE occurred_at < $1`, cutoff).Scan(&left); err != nil || left != 0 {
		b.Fatalf("%d events of the dropped month left (%v)", left, err)
	}
	t0 = time.Now()
	var deleted int64
	for {
		tag, err := pg.Pool.Exec(ctx, plainDeleteBatch, cutoff, retention.DefaultBatchSize)
		if err != nil {
			b.Fatal(err)
		}
		deleted += tag.RowsAffected()
		if tag.RowsAffected() < retention.DefaultBatchSize {
			break
		}
	}
	plainTook := time.Since(t0)
	if deleted != expired {
		b.Fatalf("the plain DELETE removed %d rows, want %d", deleted, expired)
	}
	t0 = time.Now()
	exec(`VACUUM event_log_plain`)
	vacuumTook := time.Since(t0)

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(ds []time.Duration, p int) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[(len(s)-1)*p/100]
	}
	b.ReportMetric(float64(rows), "rows")
	b.ReportMetric(float64(partitions), "partitions")
	b.ReportMetric(ms(pct(part, 50)), "list_p50_ms")
	b.ReportMetric(ms(pct(plain, 50)), "plain_list_p50_ms")
	b.ReportMetric(ms(pct(part, 99)), "list_p99_ms")
	b.ReportMetric(ms(pct(plain, 99)), "plain_list_p99_ms")
	b.ReportMetric(float64(pct(part, 99))/float64(pct(plain, 99)), "list_p99_ratio")
	b.ReportMetric(float64(expired), "rows_expired")
	b.ReportMetric(ms(passTook), "retention_pass_ms")
	b.ReportMetric(ms(plainTook), "plain_delete_ms")
	b.ReportMetric(passTook.Seconds()/plainTook.Seconds(), "retention_ratio")
	b.ReportMetric(ms(vacuumTook), "plain_vacuum_ms")
	b.ReportMetric(float64(partInsert.Microseconds())/inserted, "insert_us_per_event")
	b.ReportMetric(float64(plainInsert.Microseconds())/inserted, "plain_insert_us_per_event")
	b.ReportMetric(partInsert.Seconds()/plainInsert.Seconds(), "insert_ratio")
	b.Logf("retention: pass %v (1 partition, %d rows) vs plain DELETE %v + VACUUM %v", passTook, expired, plainTook, vacuumTook)
}
