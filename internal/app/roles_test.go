package app

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/testenv"
)

// TestEachFailureIsLoggedOnce runs the worker's middleware and asynq's logger, as
// the worker role sets them up, on a real server: a failed attempt is one line
// with its attempt and outcome, a permanent failure is one error line (asynq's
// own "Retry exhausted" line is no second copy), and a retry-later is debug.
func TestEachFailureIsLoggedOnce(t *testing.T) {
	t.Parallel()
	rd := testenv.RedisDB(t)
	log, out := testenv.Logger(t)
	a := &App{Log: log}

	cfg := queue.ServerConfig(2, 5*time.Second, log, context.Background)
	cfg.TaskCheckInterval = 50 * time.Millisecond
	cfg.RetryDelayFunc = func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond }
	srv := asynq.NewServer(rd.Opt(), cfg)
	mux := asynq.NewServeMux()
	mux.Use(a.taskLogging)
	mux.HandleFunc("test:permanent", func(context.Context, *asynq.Task) error {
		return queue.Permanent(errors.New("the input is bad for good"))
	})
	mux.HandleFunc("test:transient", func(context.Context, *asynq.Task) error {
		return errors.New("storage hiccup")
	})
	var laterCalls atomic.Int32
	mux.HandleFunc("test:later", func(context.Context, *asynq.Task) error {
		if laterCalls.Add(1) == 1 {
			return queue.RetryAfter(10*time.Millisecond, errors.New("busy"))
		}
		return nil
	})
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)
	client := asynq.NewClient(rd.Opt())
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(rd.Opt())
	t.Cleanup(func() { _ = insp.Close() })

	enqueue := func(typ, id string, retries int) {
		_, err := client.Enqueue(asynq.NewTask(typ, []byte(`{}`)), asynq.TaskID(id), asynq.MaxRetry(retries), asynq.Retention(time.Minute))
		require.NoError(t, err)
	}
	waitState := func(id string, st asynq.TaskState) {
		require.Eventually(t, func() bool {
			info, err := insp.GetTaskInfo(queue.QueueDefault, id)
			return err == nil && info.State == st
		}, 10*time.Second, 20*time.Millisecond, "%s never reached %s", id, st)
	}
	enqueue("test:permanent", "perm-1", 5)
	enqueue("test:transient", "trans-1", 1)
	enqueue("test:later", "later-1", 5)
	waitState("perm-1", asynq.TaskStateArchived)
	waitState("trans-1", asynq.TaskStateArchived)
	waitState("later-1", asynq.TaskStateCompleted)
	srv.Shutdown()

	perm := out.Records(t, "perm-1")
	require.Len(t, perm, 2, "one failure line, and asynq's archive note at debug: %v", perm)
	require.Equal(t, "ERROR", perm[0]["level"])
	require.Equal(t, "archived", perm[0]["outcome"])
	require.Equal(t, float64(1), perm[0]["attempt"])
	require.Contains(t, perm[0]["error"], "the input is bad for good")
	require.Equal(t, "DEBUG", perm[1]["level"], "asynq's own line is no second warning")

	var levels, outcomes []string
	for _, r := range out.Records(t, "trans-1") {
		if r["msg"] == "task did not succeed" {
			levels = append(levels, r["level"].(string))
			outcomes = append(outcomes, r["outcome"].(string))
		}
	}
	require.Equal(t, []string{"WARN", "ERROR"}, levels, "one line per attempt")
	require.Equal(t, []string{"retry", "archived"}, outcomes)

	lat := out.Records(t, "later-1")
	require.Len(t, lat, 1)
	require.Equal(t, "DEBUG", lat[0]["level"], "a retry-later is no failure")
	require.Equal(t, "retry_after", lat[0]["outcome"])
}
