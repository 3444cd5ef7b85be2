package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admission"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
)

// orgTask is a test kind whose task id names its organization, so a test can tell
// whose a task in Redis is.
type orgTask struct {
	Org int64 `json:"org"`
	N   int   `json:"n"`
	// Retries is the task's MaxRetry. Not part of the payload.
	Retries int `json:"-"`
}

func (orgTask) Kind() string { return "test:org" }
func (a orgTask) InsertOpts() tasks.InsertOpts {
	return tasks.InsertOpts{Queue: queue.QueueDefault, MaxRetry: a.Retries}
}
func (orgTask) Validate() error    { return nil }
func (a orgTask) TaskID() string   { return fmt.Sprintf("test:org:%d:%d", a.Org, a.N) }
func (a orgTask) SubjectID() int64 { return int64(a.N) }

func orgOf(t *testing.T, payload []byte) int64 {
	t.Helper()
	var a orgTask
	require.NoError(t, json.Unmarshal(payload, &a))
	return a.Org
}

// add queues n tasks of org with priority p, numbered from first.
func (f *fixture) add(t *testing.T, org int64, first, n int, p Priority) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		args := make([]tasks.Queued, n)
		for i := range args {
			args[i] = orgTask{Org: org, N: first + i}
		}
		return AddMany(ctx, q, org, args, As(p))
	}))
}

// held is how many slots org holds in the database.
func (f *fixture) held(t *testing.T, org int64) int {
	t.Helper()
	var n int
	require.NoError(t, f.pg.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM outbox WHERE org_id = $1 AND admitted_at IS NOT NULL AND finished_at IS NULL", org).Scan(&n))
	return n
}

// finishAll plays the workers: every task in Redis runs and finishes (removed
// from Redis, its slot given back as the Finisher gives it).
func (f *fixture) finishAll(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	pending, err := f.inspector.ListPendingTasks(queue.QueueDefault, asynq.PageSize(10000))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return
	}
	require.NoError(t, err)
	for _, ti := range pending {
		require.NoError(t, f.inspector.DeleteTask(queue.QueueDefault, ti.ID))
		_, err := f.pg.Q.OutboxFinish(ctx, []string{ti.ID})
		require.NoError(t, err)
	}
}

// TestAdmissionInterleavesOrganizations: two organizations' backlogs, queued one
// after the other, drain in turns: at no point has one been served more than a
// limit's worth ahead of the other. Without admission the same backlogs drain
// first in, first out, the whole of the first before any of the second.
func TestAdmissionInterleavesOrganizations(t *testing.T) {
	t.Parallel()
	const each, limit = 60, 5
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("admission=%v", on), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			a, b := f.orgID, f.pg.Org(t).ID
			f.add(t, a, 0, each, PriorityInteractive)
			f.add(t, b, 0, each, PriorityInteractive)
			var order []int64
			r := f.relay()
			r.BatchSize = 20
			if on {
				r.Admission = admission.Limits{Default: limit}
			}
			r.afterEnqueue = func(row db.Outbox) error { order = append(order, *row.OrgID); return nil }
			for range 100 {
				n, err := r.RelayOnce(context.Background())
				require.NoError(t, err)
				if on {
					require.LessOrEqual(t, f.held(t, a), limit)
					require.LessOrEqual(t, f.held(t, b), limit)
				}
				if n == 0 && len(order) == 2*each {
					break
				}
				f.finishAll(t)
			}
			require.Len(t, order, 2*each, "every row relayed once")
			served := map[int64]int{}
			maxLead := 0
			for _, org := range order {
				served[org]++
				maxLead = max(maxLead, served[a]-served[b], served[b]-served[a])
			}
			if on {
				require.LessOrEqual(t, maxLead, limit, "one organization got ahead of the other by more than a limit: %v", order)
			} else {
				require.Equal(t, each, maxLead, "first in, first out: all of the first organization before the second")
			}
		})
	}
}

// TestLateOrganizationAdmittedWithinOneCycle: a third organization's first task,
// queued behind two large backlogs, is in the very next batch, both when the
// backlogs' organizations are at their limits and when the batch is the scarce
// thing.
func TestLateOrganizationAdmittedWithinOneCycle(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		limit int
		batch int
	}{
		{"the others at their limit", 10, 100},
		{"the batch full of the others' rows", 1000, 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			a, b, c := f.orgID, f.pg.Org(t).ID, f.pg.Org(t).ID
			f.add(t, a, 0, 300, PriorityBulk)
			f.add(t, b, 0, 300, PriorityBulk)
			r := f.relay()
			r.BatchSize, r.Admission = tt.batch, admission.Limits{Default: tt.limit}
			n, err := r.RelayOnce(context.Background())
			require.NoError(t, err)
			require.Equal(t, min(tt.batch, 2*tt.limit), n)

			f.add(t, c, 0, 1, PriorityBulk)
			var orgs []int64
			r.afterEnqueue = func(row db.Outbox) error { orgs = append(orgs, *row.OrgID); return nil }
			_, err = r.RelayOnce(context.Background())
			require.NoError(t, err)
			require.Contains(t, orgs, c, "the late organization's task waits for another cycle")
			require.Equal(t, 1, f.held(t, c))
		})
	}
}

// TestInteractiveBeforeBulk: an organization's interactive tasks, queued after its
// bulk backlog, are admitted first; the bulk ones follow oldest first.
func TestInteractiveBeforeBulk(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.add(t, f.orgID, 0, 10, PriorityBulk)
	f.add(t, f.orgID, 100, 3, PriorityInteractive)
	r := f.relay()
	r.Admission = admission.Limits{Default: 3}
	var got []int
	r.afterEnqueue = func(row db.Outbox) error {
		var a orgTask
		require.NoError(t, json.Unmarshal(row.Payload, &a))
		got = append(got, a.N)
		return nil
	}
	_, err := r.RelayOnce(context.Background())
	require.NoError(t, err)
	require.ElementsMatch(t, []int{100, 101, 102}, got, "the interactive tasks first")
	f.finishAll(t)
	got = nil
	_, err = r.RelayOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2}, got, "then the bulk ones, oldest first")

	// The relay tells the worker a task is bulk, and the Finisher tells the
	// handler, so what it queues next is bulk too.
	pending, err := f.inspector.ListPendingTasks(queue.QueueDefault)
	require.NoError(t, err)
	require.NotEmpty(t, pending)
	require.Equal(t, PriorityBulk.String(), pending[0].Headers[headerPriority])
	var inHandler Priority = -1
	h := (&Finisher{Pool: f.pg.Pool, Log: quiet}).Middleware(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		inHandler = PriorityOf(ctx)
		return nil
	}))
	require.NoError(t, h.ProcessTask(context.Background(), asynq.NewTaskWithHeaders("test:org", nil, pending[0].Headers)))
	require.Equal(t, PriorityBulk, inHandler)
	require.NoError(t, h.ProcessTask(context.Background(), asynq.NewTask("test:org", nil)))
	require.Equal(t, PriorityInteractive, inHandler)
}

// TestManyRelaysNeverAdmitPastTheLimit: four relays admit three organizations'
// backlogs side by side while tasks finish at random; counted in Redis (and in the
// database) no organization ever has more than its limit, and every row is relayed
// exactly once.
func TestManyRelaysNeverAdmitPastTheLimit(t *testing.T) {
	t.Parallel()
	const each, limit = 150, 4
	f := newFixture(t)
	orgs := []int64{f.orgID, f.pg.Org(t).ID, f.pg.Org(t).ID}
	for _, org := range orgs {
		f.add(t, org, 0, each, PriorityBulk)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 4 {
		r := f.relay()
		r.BatchSize, r.Admission = 10, admission.Limits{Default: limit}
		r.afterEnqueue = func(row db.Outbox) error {
			mu.Lock()
			seen[row.ID]++
			mu.Unlock()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := r.RelayOnce(ctx); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := 0
	deadline := time.Now().Add(40 * time.Second)
	for done < len(orgs)*each {
		require.True(t, time.Now().Before(deadline), "only %d of %d tasks done", done, len(orgs)*each)
		pending, err := f.inspector.ListPendingTasks(queue.QueueDefault, asynq.PageSize(1000))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		require.NoError(t, err)
		inRedis := map[int64]int{}
		for _, ti := range pending {
			inRedis[orgOf(t, ti.Payload)]++
		}
		for _, org := range orgs {
			require.LessOrEqual(t, inRedis[org], limit, "organization %d has %d tasks in Redis", org, inRedis[org])
			require.LessOrEqual(t, f.held(t, org), limit, "organization %d holds too many slots", org)
		}
		for _, ti := range pending {
			if rand.IntN(2) == 0 {
				continue
			}
			require.NoError(t, f.inspector.DeleteTask(queue.QueueDefault, ti.ID))
			_, err := f.pg.Q.OutboxFinish(context.Background(), []string{ti.ID})
			require.NoError(t, err)
			done++
		}
	}
	cancel()
	wg.Wait()
	require.Len(t, seen, len(orgs)*each)
	for id, n := range seen {
		require.Equal(t, 1, n, "row %d was enqueued %d times", id, n)
	}
}

// TestFinisherEndsTheSlot: a task that succeeds, is refused for good, or fails its
// last retry gives its slot back; one that will be retried keeps it. A freed slot
// wakes the relay (its poll interval is an hour here), which admits the next task.
func TestFinisherEndsTheSlot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	outcome := map[int]error{
		1: nil,                                    // succeeds
		2: queue.Permanent(errors.New("refused")), // archived at once
		3: errors.New("transient"),                // retried: keeps its slot
		4: errors.New("transient, last attempt"),  // MaxRetry 0: archived
	}
	require.NoError(t, database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		for n := 1; n <= 4; n++ {
			retries := 3
			if n == 4 {
				retries = 0
			}
			if err := Add(ctx, q, f.orgID, orgTask{Org: f.orgID, N: n, Retries: retries}); err != nil {
				return err
			}
		}
		return Add(ctx, q, f.orgID, orgTask{Org: f.orgID, N: 5, Retries: 3}) // waits: the limit is 4
	}))
	r := f.relay()
	r.PollInterval, r.Admission = time.Hour, admission.Limits{Default: 4}
	listening := make(chan struct{})
	var once sync.Once
	r.Listening = func() { once.Do(func() { close(listening) }) }
	rctx, stop := context.WithCancel(ctx)
	relayDone := make(chan struct{})
	go func() { _ = r.Run(rctx); close(relayDone) }()
	t.Cleanup(func() { stop(); <-relayDone })
	<-listening
	require.Eventually(t, func() bool { return f.held(t, f.orgID) == 4 }, 10*time.Second, 10*time.Millisecond)

	ran := make(chan int, 10)
	cfg := queue.ServerConfig(4, time.Second, quiet, nil)
	cfg.Queues = map[string]int{queue.QueueDefault: 1}
	cfg.RetryDelayFunc = func(int, error, *asynq.Task) time.Duration { return time.Hour }
	srv := asynq.NewServer(f.rd.Opt(), cfg)
	mux := asynq.NewServeMux()
	mux.Use((&Finisher{Pool: f.pg.Pool, Log: quiet}).Middleware)
	mux.Handle("test:org", asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		var a orgTask
		if err := json.Unmarshal(t.Payload(), &a); err != nil {
			return err
		}
		ran <- a.N
		return outcome[a.N]
	}))
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)

	finished := func(n int) bool {
		var done bool
		require.NoError(t, f.pg.Pool.QueryRow(ctx, "SELECT finished_at IS NOT NULL FROM outbox WHERE task_id = $1",
			orgTask{Org: f.orgID, N: n}.TaskID()).Scan(&done))
		return done
	}
	require.Eventually(t, func() bool { return finished(1) && finished(2) && finished(4) }, 10*time.Second, 10*time.Millisecond)
	// The freed slots admitted task 5 (only a wake could, in this time), which ran.
	require.Eventually(t, func() bool { return finished(5) }, 10*time.Second, 10*time.Millisecond)
	require.False(t, finished(3), "a task waiting for its retry keeps its slot")
	require.Equal(t, 1, f.held(t, f.orgID))
	info, err := f.inspector.GetTaskInfo(queue.QueueDefault, orgTask{Org: f.orgID, N: 3}.TaskID())
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateRetry, info.State)
}

// TestFinisherGivesSlotsBackTogether: tasks that end together give their slots
// back in a few statements rather than one each, and once the worker has stopped,
// Close returns only when every slot is back: no slot is left to the reconciler
// by a clean shutdown.
func TestFinisherGivesSlotsBackTogether(t *testing.T) {
	t.Parallel()
	const n = 120
	f := newFixture(t)
	f.add(t, f.orgID, 0, n, PriorityBulk)
	r := f.relay()
	r.Admission, r.BatchSize = admission.Limits{Default: n}, n
	got, err := r.RelayOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, n, got)
	require.Equal(t, n, f.held(t, f.orgID))

	var ran sync.WaitGroup
	ran.Add(n)
	// A gathering longer than the server's shutdown: only Close can wait it out.
	fin := &Finisher{Pool: f.pg.Pool, Log: quiet, Gather: time.Second}
	cfg := queue.ServerConfig(20, 5*time.Second, quiet, nil)
	cfg.Queues = map[string]int{queue.QueueDefault: 1}
	srv := asynq.NewServer(f.rd.Opt(), cfg)
	mux := asynq.NewServeMux()
	mux.Use(fin.Middleware)
	mux.Handle("test:org", asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		ran.Done()
		return nil
	}))
	require.NoError(t, srv.Start(mux))
	ran.Wait()
	srv.Shutdown()
	fin.Close()
	require.Zero(t, f.held(t, f.orgID), "every slot given back by the time Close returns")
	require.Less(t, fin.statements.Load(), int64(n/4), "the %d slots given back in a few statements", n)
}
