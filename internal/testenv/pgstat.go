package testenv

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Writes is rows inserted, updated (HOT included) and deleted in one table, as
// pg_stat_user_tables counts them.
type Writes struct{ Inserted, Updated, Deleted int64 }

// Total is every row written.
func (w Writes) Total() int64 { return w.Inserted + w.Updated + w.Deleted }

// TableWrites is Writes per table name.
type TableWrites map[string]Writes

// Since is what was written between before and w.
func (w TableWrites) Since(before TableWrites) TableWrites {
	d := TableWrites{}
	for k, v := range w {
		b := before[k]
		d[k] = Writes{Inserted: v.Inserted - b.Inserted, Updated: v.Updated - b.Updated, Deleted: v.Deleted - b.Deleted}
	}
	return d
}

// ReadTableWrites reads the cumulative counters of the named tables (none named:
// every table of the schema). They only
// hold what backends have flushed: a backend flushes its counts at most once a
// second while busy, within 10 s once idle (PGSTAT_IDLE_INTERVAL) and always when
// it exits. So write through a NamedPool and ClosePool it before reading.
func ReadTableWrites(ctx context.Context, q *pgxpool.Pool, tables ...string) (TableWrites, error) {
	if tables == nil {
		tables = []string{} // NULL would match nothing
	}
	if _, err := q.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return nil, fmt.Errorf("clear the statistics snapshot: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_del
		FROM pg_stat_user_tables
		WHERE schemaname = current_schema() AND (cardinality($1::text[]) = 0 OR relname = ANY($1))`, tables)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_user_tables: %w", err)
	}
	out := TableWrites{}
	for _, t := range tables {
		out[t] = Writes{}
	}
	var name string
	var w Writes
	_, err = pgx.ForEachRow(rows, []any{&name, &w.Inserted, &w.Updated, &w.Deleted}, func() error {
		out[name] = w
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_user_tables: %w", err)
	}
	return out, nil
}

// NamedPool opens a pool of conns connections whose backends carry application
// name app, so ClosePool can tell when they have gone.
func NamedPool(ctx context.Context, databaseURL, app string, conns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = conns
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	return pool, nil
}

// ClosePool closes pool (a NamedPool) and waits, asking through observer, until
// the server has no backend of its application name left: a backend flushes its
// statistics before it leaves pg_stat_activity, so afterwards ReadTableWrites
// counts everything pool wrote.
func ClosePool(ctx context.Context, pool, observer *pgxpool.Pool) error {
	app := pool.Config().ConnConfig.RuntimeParams["application_name"]
	pool.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := observer.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1`, app).Scan(&n); err != nil {
			return fmt.Errorf("wait for the backends of %s: %w", app, err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d backends of %s still there 30 s after their pool closed", n, app)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
