package outbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

var quiet = testenv.Quiet()

type fixture struct {
	pg        *testenv.PG
	rd        *testenv.Redis
	client    *asynq.Client
	inspector *asynq.Inspector
	orgID     int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pg := testenv.Postgres(t)
	rd := testenv.RedisDB(t)
	f := &fixture{pg: pg, rd: rd, client: asynq.NewClient(rd.Opt()), inspector: asynq.NewInspector(rd.Opt())}
	t.Cleanup(func() { f.client.Close(); f.inspector.Close() })
	f.orgID = pg.Org(t).ID
	return f
}

func (f *fixture) relay() *Relay {
	return &Relay{Pool: f.pg.Pool, Client: f.client, Log: quiet, PollInterval: 50 * time.Millisecond, BatchSize: 100}
}

// testTask is a task kind of the tests' own, queued on the default queue.
type testTask struct {
	N int64 `json:"n"`
}

func (testTask) Kind() string { return "test:task" }
func (testTask) InsertOpts() tasks.InsertOpts {
	return tasks.InsertOpts{Queue: queue.QueueDefault, MaxRetry: 3}
}
func (testTask) Validate() error    { return nil }
func (a testTask) TaskID() string   { return fmt.Sprintf("test:task:%d", a.N) }
func (a testTask) SubjectID() int64 { return a.N }

func (f *fixture) intent(i int) testTask { return testTask{N: int64(i)} }

func (f *fixture) queueSize(t *testing.T) int {
	t.Helper()
	queues, err := f.inspector.Queues()
	require.NoError(t, err)
	if !slices.Contains(queues, "default") {
		return 0
	}
	info, err := f.inspector.GetQueueInfo("default")
	require.NoError(t, err)
	return info.Size
}

func TestRolledBackChangeQueuesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	boom := errors.New("the registration failed after writing its intent")
	err := database.Tx(ctx, f.pg.Pool, func(q *db.Queries, tx pgx.Tx) error {
		if err := Add(ctx, q, f.orgID, f.intent(1)); err != nil {
			return err
		}
		// The row is really written inside the transaction (this query sends it)...
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE enqueued_at IS NULL").Scan(&n); err != nil {
			return err
		}
		require.Equal(t, 1, n)
		return boom // ...and rolled back with it.
	})
	require.ErrorIs(t, err, boom)
	n, err := f.relay().RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, f.queueSize(t))
}

// TestRelayKilledBetweenEnqueueAndCommit: the first relay puts the task in Redis and
// dies before marking the row; the next relay finds the row unsent, enqueues it again
// under the same task id, and there is still exactly one task.
func TestRelayKilledBetweenEnqueueAndCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		err := Add(ctx, q, f.orgID, f.intent(7))
		return err
	}))
	dying := f.relay()
	dying.afterEnqueue = func(db.Outbox) error { return errors.New("kill -9") }
	_, err := dying.RelayOnce(ctx)
	require.Error(t, err)
	require.Equal(t, 1, f.queueSize(t), "the task reached Redis before the relay died")
	unsent, err := f.pg.Q.OutboxCountUnsent(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, unsent, "the row is still unsent after the crash")

	n, err := f.relay().RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, f.queueSize(t), "a restarted relay must not make a second task")
	unsent, err = f.pg.Q.OutboxCountUnsent(ctx)
	require.NoError(t, err)
	require.Zero(t, unsent)
}

func TestTwoRelaysNeverDoubleEnqueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const total = 1500
	require.NoError(t, database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		for i := range total {
			if err := Add(ctx, q, f.orgID, f.intent(i)); err != nil {
				return err
			}
		}
		return nil
	}))
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 2 {
		r := f.relay()
		r.BatchSize = 50
		r.afterEnqueue = func(row db.Outbox) error {
			mu.Lock()
			seen[row.ID]++
			mu.Unlock()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := r.RelayOnce(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, total)
	for id, c := range seen {
		require.Equal(t, 1, c, "row %d was enqueued by both relays", id)
	}
	require.Equal(t, total, f.queueSize(t))
	rows, err := f.pg.Pool.Query(ctx, "SELECT attempts FROM outbox")
	require.NoError(t, err)
	attempts, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	for _, a := range attempts {
		require.EqualValues(t, 1, a)
	}
}

// TestNotifyWakesTheRelay: with a poll interval far longer than the test, only
// LISTEN/NOTIFY can make the task appear quickly.
func TestNotifyWakesTheRelay(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.relay()
	r.PollInterval = time.Hour
	listening := make(chan struct{})
	var once sync.Once
	r.Listening = func() { once.Do(func() { close(listening) }) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-listening: // a notification from now on wakes the relay
	case <-time.After(10 * time.Second):
		t.Fatal("the relay never started listening")
	}

	for i := range 3 {
		require.NoError(t, database.Tx(context.Background(), f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
			err := Add(context.Background(), q, f.orgID, f.intent(100+i))
			return err
		}))
		require.Eventually(t, func() bool { return f.queueSize(t) == i+1 }, 5*time.Second, 10*time.Millisecond)
	}
}

func TestDelayedIntentWaitsInTheOutbox(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		err := Add(ctx, q, f.orgID, f.intent(1), At(time.Now().Add(time.Hour)))
		return err
	}))
	n, err := f.relay().RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, f.queueSize(t))
}

// TestRelayHoldsNoRowLockWhileEnqueueing: with Redis stalled mid-batch (a private
// server under CLIENT PAUSE), the batch's rows are not locked, so the API and the
// workers that update outbox rows never wait on a Redis call; the batch still
// reaches Redis once, after the pause.
func TestRelayHoldsNoRowLockWhileEnqueueing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	rd, err := testenv.StartPrivateRedis(ctx)
	require.NoError(t, err)
	t.Cleanup(rd.Stop)
	opt := asynq.RedisClientOpt{Addr: rd.Addr}
	client, inspector := asynq.NewClient(opt), asynq.NewInspector(opt)
	t.Cleanup(func() { client.Close(); inspector.Close() })
	orgID := pg.Org(t).ID
	require.NoError(t, database.Tx(ctx, pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		for i := range 3 {
			if err := Add(ctx, q, orgID, testTask{N: int64(i)}); err != nil {
				return err
			}
		}
		return nil
	}))

	ctl := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { ctl.Close() })
	// Under go-redis's 3 s read timeout, so the stalled enqueue waits instead
	// of failing.
	const pause = 2500 * time.Millisecond
	require.NoError(t, ctl.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err())
	paused := time.Now()
	r := &Relay{Pool: pg.Pool, Client: client, Log: quiet, BatchSize: 100}
	done := make(chan error, 1)
	go func() { _, err := r.RelayOnce(ctx); done <- err }()

	// The relay has taken the batch and waits on Redis: it committed its claim,
	// or (before the fix) sits in an open transaction holding the rows.
	require.Eventually(t, func() bool {
		var claimed, open int
		require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM outbox WHERE claimed_by IS NOT NULL),
			(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction')`,
		).Scan(&claimed, &open))
		return claimed == 3 || open > 0
	}, 2*time.Second, 10*time.Millisecond)
	lockNoWait := func() error {
		return database.Tx(ctx, pg.Pool, func(_ *db.Queries, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT id FROM outbox FOR UPDATE NOWAIT")
			return err
		})
	}
	require.NoError(t, lockNoWait(), "outbox rows are locked while the relay waits on Redis")
	_, err = pg.Pool.Exec(ctx, "UPDATE outbox SET last_error = 'touched' WHERE enqueued_at IS NULL")
	require.NoError(t, err)
	require.Less(t, time.Since(paused), pause, "the row checks ran while Redis was paused")
	select {
	case err := <-done:
		t.Fatalf("the relay finished during the pause (%v): Redis was not stalled", err)
	default:
	}

	require.NoError(t, <-done)
	info, err := inspector.GetQueueInfo("default")
	require.NoError(t, err)
	require.Equal(t, 3, info.Size)
	unsent, err := pg.Q.OutboxCountUnsent(ctx)
	require.NoError(t, err)
	require.Zero(t, unsent)
}

// TestRelayRetriesAnExpiredClaim: a relay that claimed rows and died leaves
// claims that other relays skip until the lease ends; then the rows are relayed,
// once.
func TestRelayRetriesAnExpiredClaim(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		return Add(ctx, q, f.orgID, f.intent(3))
	}))
	dead, err := f.pg.Q.OutboxClaimBatch(ctx, db.OutboxClaimBatchParams{ClaimedBy: "dead-relay", LeaseSeconds: 3600, MaxRows: 10})
	require.NoError(t, err)
	require.Len(t, dead, 1)

	n, err := f.relay().RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a live claim is left to its relay")
	require.Zero(t, f.queueSize(t))

	_, err = f.pg.Pool.Exec(ctx, "UPDATE outbox SET claimed_until = now() - interval '1 second'")
	require.NoError(t, err)
	n, err = f.relay().RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, f.queueSize(t))
	unsent, err := f.pg.Q.OutboxCountUnsent(ctx)
	require.NoError(t, err)
	require.Zero(t, unsent)
}
