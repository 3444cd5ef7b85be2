package database_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// sends counts what goes over the wire: one per Query/Exec sent alone, one per batch.
type sends struct {
	mu      sync.Mutex
	n       int
	batches [][]string
}

func (s *sends) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if _, ok := ctx.Value(inBatch{}).(bool); !ok {
		s.mu.Lock()
		s.n++
		s.batches = append(s.batches, []string{d.SQL})
		s.mu.Unlock()
	}
	return ctx
}
func (s *sends) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

type inBatch struct{}

func (s *sends) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	s.mu.Lock()
	s.n++
	var sqls []string
	for _, q := range d.Batch.QueuedQueries {
		sqls = append(sqls, q.SQL)
	}
	s.batches = append(s.batches, sqls)
	s.mu.Unlock()
	return context.WithValue(ctx, inBatch{}, true)
}
func (s *sends) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (s *sends) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (s *sends) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n, s.batches = 0, nil
}

func (s *sends) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// tracedPool is a pool of one connection on the test's database that counts sends.
func tracedPool(t *testing.T, pg *testenv.PG) (*pgxpool.Pool, *sends) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pg.URL)
	require.NoError(t, err)
	tr := &sends{}
	cfg.ConnConfig.Tracer = tr
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, pool.Ping(context.Background()))
	return pool, tr
}

// Statements written the way sqlc writes them: the name comment comes first.
const (
	insertEvent = "-- name: TestInsert :exec\nINSERT INTO event_log (org_id, entity_type, entity_id, event_type, metadata) VALUES ($1, 'project', $2, $3, '{}')"
	countEvents = "-- name: TestCount :one\nSELECT count(*) FROM event_log WHERE org_id = $1 AND event_type = $2"
	// No such organization: refused when it runs (a foreign key), not when prepared.
	badInsert = "-- name: TestBadInsert :exec\nINSERT INTO event_log (org_id, entity_type, entity_id, event_type, metadata) VALUES ($1 + 1000000, 'project', 1, 'x', '{}')"
)

func TestTxSendsHeldBackStatementsWithTheNextQuery(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pool, tr := tracedPool(t, pg)
	ctx := context.Background()
	org := pg.Org(t)
	tr.reset()

	var seen int
	err := database.Tx(ctx, pool, func(_ *db.Queries, tx pgx.Tx) error {
		for i := range 3 {
			tag, err := tx.Exec(ctx, insertEvent, org.ID, i, "held")
			require.NoError(t, err)
			require.Zero(t, tag.RowsAffected(), "a held-back statement has no result yet")
		}
		require.Zero(t, tr.count(), "nothing is sent before a result is needed")
		// The query sees the three rows: they reach the server first, in order.
		if err := tx.QueryRow(ctx, countEvents, org.ID, "held").Scan(&seen); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, insertEvent, org.ID, 9, "held")
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 3, seen)
	require.Equal(t, 2, tr.count(), "BEGIN + 3 inserts + the query in one send, the 4th insert with COMMIT in another: %q", tr.batches)
	require.Equal(t, "begin", tr.batches[0][0])
	require.Equal(t, "commit", tr.batches[1][len(tr.batches[1])-1])

	var n int
	require.NoError(t, pg.Pool.QueryRow(ctx, countEvents, org.ID, "held").Scan(&n))
	require.Equal(t, 4, n, "all four rows committed")
}

func TestTxHeldBackErrorFailsTheTransaction(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pool, _ := tracedPool(t, pg)
	ctx := context.Background()
	org := pg.Org(t)

	// The bad statement is only sent with COMMIT: the error shows there, named, and
	// nothing of the transaction is kept.
	err := database.Tx(ctx, pool, func(_ *db.Queries, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insertEvent, org.ID, 1, "doomed"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, badInsert, org.ID)
		return err
	})
	require.Error(t, err)
	require.ErrorContains(t, err, "TestBadInsert")
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "the server's error is kept for errors.As: %v", err)
	require.Equal(t, "23", pe.Code[:2], "an integrity constraint refused the row: %v", pe)

	// Sent with a later query instead, the query reports it.
	err = database.Tx(ctx, pool, func(_ *db.Queries, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, badInsert, org.ID); err != nil {
			return err
		}
		var n int
		return tx.QueryRow(ctx, countEvents, org.ID, "doomed").Scan(&n)
	})
	require.ErrorContains(t, err, "TestBadInsert")

	var n int
	require.NoError(t, pg.Pool.QueryRow(ctx, countEvents, org.ID, "doomed").Scan(&n))
	require.Zero(t, n, "the good insert before the bad one was rolled back")

	// The single connection is usable again: the failed transactions were ended.
	require.NoError(t, database.Tx(ctx, pool, func(_ *db.Queries, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, insertEvent, org.ID, 2, "after")
		return err
	}))
	require.NoError(t, pg.Pool.QueryRow(ctx, countEvents, org.ID, "after").Scan(&n))
	require.Equal(t, 1, n)
}

func TestTxRollsBackWhatWasSentWhenTheCallbackFails(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pool, tr := tracedPool(t, pg)
	ctx := context.Background()
	org := pg.Org(t)
	boom := errors.New("boom")

	tr.reset()
	require.ErrorIs(t, database.Tx(ctx, pool, func(_ *db.Queries, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, insertEvent, org.ID, 1, "unsent")
		require.NoError(t, err)
		return boom
	}), boom)
	require.Zero(t, tr.count(), "a transaction that never needed the server sends nothing, not even BEGIN")

	require.ErrorIs(t, database.Tx(ctx, pool, func(_ *db.Queries, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insertEvent, org.ID, 1, "sent"); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, countEvents, org.ID, "sent").Scan(&n); err != nil {
			return err
		}
		require.Equal(t, 1, n)
		return boom
	}), boom)
	var n int
	require.NoError(t, pg.Pool.QueryRow(ctx, countEvents, org.ID, "sent").Scan(&n))
	require.Zero(t, n, "rolled back")
	require.EqualValues(t, 1, pool.Stat().TotalConns(), "the connection went back to the pool, not closed")
}

func TestTenantTxSetsRoleAndOrganization(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pool, tr := tracedPool(t, pg)
	ctx := context.Background()
	org := pg.Org(t)
	tr.reset()
	var role, setting string
	require.NoError(t, database.TenantTx(ctx, pool, org.ID, func(_ *db.Queries, tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT current_user, current_setting('labelq.org_id')").Scan(&role, &setting)
	}))
	require.Equal(t, "labelq_api", role)
	require.Equal(t, org.ID, mustAtoi(t, setting))
	require.Equal(t, 2, tr.count(), "BEGIN, the tenant settings and the query travel together, then COMMIT: %q", tr.batches)
	require.Len(t, tr.batches[0], 3)
	// Both settings were LOCAL: the connection is itself again afterwards.
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_user, current_setting('labelq.org_id', true)").Scan(&role, &setting))
	require.NotEqual(t, "labelq_api", role)
	require.Empty(t, setting)
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', "not a number: %q", s)
		n = n*10 + int64(c-'0')
	}
	return n
}
