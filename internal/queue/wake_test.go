package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/testenv"
)

// wakerServer starts a real asynq server on rd whose client carries a Waker with
// the given idle wait, subscribed to the wake-ups; started receives the id of
// every task its handler starts.
func wakerServer(t *testing.T, rd *testenv.Redis, idle time.Duration) (*queue.Waker, <-chan string) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr, DB: rd.DB})
	cfg := queue.ServerConfig(2, time.Second, testenv.Quiet(), context.Background)
	w := queue.NewWaker(queue.Names(), idle)
	rc.AddHook(w)
	ctx, cancel := context.WithCancel(context.Background())
	go w.Listen(ctx, rc)
	srv := asynq.NewServerFromRedisClient(rc, cfg)
	started := make(chan string, 10)
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		started <- id
		return nil
	})))
	t.Cleanup(func() {
		w.Close()
		srv.Shutdown()
		cancel()
		_ = rc.Close()
	})
	return w, started
}

// waiting waits until the worker has found every queue empty and sits in a
// dequeue call: the hook recognised asynq's dequeue.
func waiting(t *testing.T, w *queue.Waker, more int64) {
	t.Helper()
	require.Eventually(t, func() bool { return w.Waits() >= more }, 30*time.Second, 5*time.Millisecond,
		"the worker never waited: the Waker does not recognise asynq's dequeue call, so the worker polls")
}

// TestWakerPicksUpOnWake: an idle worker whose idle wait is longer than the test
// starts a task as soon as the relay's wake-up comes, in whichever queue the task
// is, and goes back to waiting after it. Without the wake-up the task would wait
// out the ten minutes and the test its deadline.
func TestWakerPicksUpOnWake(t *testing.T) {
	rd := testenv.RedisDB(t)
	w, started := wakerServer(t, rd, 10*time.Minute)
	c := asynq.NewClient(rd.Opt())
	defer c.Close()
	pub := redis.NewClient(&redis.Options{Addr: rd.Addr, DB: rd.DB})
	defer pub.Close()
	ctx := context.Background()
	for i, q := range queue.Names() {
		waiting(t, w, int64(i+1))
		id := "wake-" + q
		_, err := c.Enqueue(asynq.NewTask("wake:test", nil), asynq.Queue(q), asynq.TaskID(id))
		require.NoError(t, err)
		require.NoError(t, queue.PublishWake(ctx, pub))
		select {
		case got := <-started:
			require.Equal(t, id, got)
		case <-time.After(time.Minute):
			t.Fatalf("task %s in queue %s did not start on the wake-up", id, q)
		}
	}
}

// TestWakerFallsBackToIdlePoll: a task enqueued without a wake-up (a retry the
// forwarder moved, a periodic task) still starts, at the idle wait's poll; and
// Close ends a wait at once.
func TestWakerFallsBackToIdlePoll(t *testing.T) {
	rd := testenv.RedisDB(t)
	w, started := wakerServer(t, rd, 100*time.Millisecond)
	c := asynq.NewClient(rd.Opt())
	defer c.Close()
	waiting(t, w, 1)
	_, err := c.Enqueue(asynq.NewTask("wake:test", nil), asynq.Queue(queue.QueueDefault), asynq.TaskID("no-wake"))
	require.NoError(t, err)
	select {
	case got := <-started:
		require.Equal(t, "no-wake", got)
	case <-time.After(time.Minute):
		t.Fatal("a task enqueued without a wake-up never started")
	}

	closing := queue.NewWaker([]string{"only"}, time.Hour)
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr, DB: rd.DB})
	defer rc.Close()
	rc.AddHook(closing)
	dequeue := func() error {
		// asynq's dequeue call as the hook sees it: EVALSHA with its four keys.
		return rc.Do(context.Background(), "evalsha", "0000000000000000000000000000000000000000", 4,
			"asynq:{only}:pending", "asynq:{only}:paused", "asynq:{only}:active", "asynq:{only}:lease", 0, "x").Err()
	}
	require.Error(t, dequeue()) // NOSCRIPT: not an empty answer, nothing noted
	require.Zero(t, closing.Waits())
	sha, err := rc.ScriptLoad(context.Background(), "return nil").Result()
	require.NoError(t, err)
	empty := func() error {
		return rc.EvalSha(context.Background(), sha, []string{"asynq:{only}:pending", "asynq:{only}:paused", "asynq:{only}:active", "asynq:{only}:lease"}, 0, "x").Err()
	}
	require.ErrorIs(t, empty(), redis.Nil) // the queue answered empty
	require.Zero(t, closing.Waits())
	done := make(chan error, 1)
	go func() { done <- empty() }() // every queue empty: this one waits
	waiting(t, closing, 1)
	closing.Close()
	select {
	case err := <-done:
		require.ErrorIs(t, err, redis.Nil)
	case <-time.After(time.Minute):
		t.Fatal("Close did not end the wait")
	}
}
