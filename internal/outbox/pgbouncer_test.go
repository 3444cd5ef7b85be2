package outbox

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// TestRelayThroughPgBouncer runs the relay as a deployment behind PgBouncer in
// transaction pooling does: its claims and marks through the pooler (cache_describe,
// two server sessions shared by every client), its LISTEN on a direct connection
// (ListenPool, LABELQ_DATABASE_DIRECT_URL). The intents are committed through the
// pooler too. The poll interval is far longer than the test, so each batch arrives
// only because its NOTIFY reached the LISTEN session; every row is enqueued once and
// marked.
func TestRelayThroughPgBouncer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := testenv.NewPgBouncer(t, testenv.PgBouncerConfig{PoolSize: 2})
	ctx := context.Background()
	pooled, err := database.Open(ctx, b.URL(f.pg.URL), 8, database.WithExecMode(pgx.QueryExecModeCacheDescribe))
	require.NoError(t, err, "pgbouncer log: %s", b.Log())
	t.Cleanup(pooled.Close)

	r := f.relay()
	r.Pool, r.ListenPool = pooled, f.pg.Pool
	r.PollInterval = time.Hour
	listening := make(chan struct{})
	var once sync.Once
	r.Listening = func() { once.Do(func() { close(listening) }) }
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay never started listening")
	}

	const rounds, perRound = 3, 20
	for round := range rounds {
		require.NoError(t, database.Tx(ctx, pooled, func(q *db.Queries, _ pgx.Tx) error {
			for i := range perRound {
				if err := Add(ctx, q, f.orgID, f.intent(round*perRound+i)); err != nil {
					return err
				}
			}
			return nil
		}))
		want := (round + 1) * perRound
		require.Eventually(t, func() bool { return f.queueSize(t) == want }, 10*time.Second, 10*time.Millisecond,
			"round %d: woken by NOTIFY, the relay moves the batch into asynq", round)
	}
	for i := range rounds * perRound {
		_, err := f.inspector.GetTaskInfo("default", f.intent(i).TaskID())
		require.NoError(t, err, "task %d is in asynq", i)
	}
	require.Eventually(t, func() bool {
		var left int
		require.NoError(t, f.pg.Pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE enqueued_at IS NULL").Scan(&left))
		return left == 0
	}, 5*time.Second, 10*time.Millisecond, "every row is marked enqueued")
	var attempts []int32
	rows, err := f.pg.Pool.Query(ctx, "SELECT attempts FROM outbox")
	require.NoError(t, err)
	attempts, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Len(t, attempts, rounds*perRound)
	for _, a := range attempts {
		require.EqualValues(t, 1, a, "each row was claimed once")
	}
}
