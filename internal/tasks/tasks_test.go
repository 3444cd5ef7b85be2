package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// TestShippedContracts pins what tasks already in Redis and outbox rows carry:
// kinds, payload field names, queues and task ids never change once shipped.
func TestShippedContracts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args    tasks.Queued
		kind    string
		payload string
		queue   string
		taskID  string
		subject int64
	}{
		{tasks.Validate{VersionID: 42}, "file:validate", `{"version_id":42}`, "validate", "file:validate:42", 42},
		{tasks.Validate{VersionID: 42, Run: "re1"}, "file:validate", `{"version_id":42}`, "validate", "file:validate:42:re1", 42},
		{tasks.Preannotate{VersionID: 7}, "file:preannotate", `{"version_id":7}`, "preannotate", "file:preannotate:7", 7},
		{tasks.Preannotate{VersionID: 7, Run: "now9"}, "file:preannotate", `{"version_id":7}`, "preannotate", "file:preannotate:7:now9", 7},
		{tasks.Match{ProjectID: 3, Run: "r"}, "project:match", `{"project_id":3}`, "match", "project:match:3:now:r", 3},
		{tasks.MatchTrigger{ProjectID: 3, Run: "42"}, "project:match", `{"project_id":3}`, "match", "project:match:3:t:42", 3},
		{tasks.Export{ExportID: 5}, "project:export", `{"export_id":5}`, "export", "project:export:5", 5},
		{tasks.Export{ExportID: 5, Run: "rc1"}, "project:export", `{"export_id":5}`, "export", "project:export:5:rc1", 5},
		{tasks.StorageSync{RunID: 9}, "storage:sync", `{"run_id":9}`, "sync", "storage:sync:9", 9},
		{tasks.WebhookDeliver{DeliveryID: 11}, "webhook:deliver", `{"delivery_id":11}`, "webhook", "webhook:deliver:11", 11},
		{tasks.WebhookDeliver{DeliveryID: 11, Run: tasks.RedeliverRun(2)}, "webhook:deliver", `{"delivery_id":11}`, "webhook", "webhook:deliver:11:r2", 11},
		{tasks.Score{SubmissionID: 13}, "job:score", `{"submission_id":13}`, "match", "job:score:13", 13},
		{tasks.Score{SubmissionID: 13, Run: "rc2"}, "job:score", `{"submission_id":13}`, "match", "job:score:13:rc2", 13},
		{tasks.Consensus{ProjectID: 4, Run: "r1"}, "project:consensus", `{"project_id":4}`, "match", "project:consensus:4:r1", 4},
	}
	for _, tc := range cases {
		t.Run(tc.taskID, func(t *testing.T) {
			require.Equal(t, tc.kind, tc.args.Kind())
			b, err := tasks.Payload(tc.args)
			require.NoError(t, err)
			require.JSONEq(t, tc.payload, string(b), "the run tag is not part of the payload")
			require.Equal(t, tc.queue, tc.args.InsertOpts().Queue)
			require.Contains(t, queue.Names(), tc.args.InsertOpts().Queue, "a queue the workers serve")
			require.Equal(t, tc.taskID, tc.args.TaskID())
			require.Equal(t, tc.subject, tc.args.SubjectID())
			require.NoError(t, tc.args.Validate())
		})
	}
	require.Equal(t, "project:3", tasks.MatchTrigger{ProjectID: 3}.InsertOpts().Group, "triggers aggregate per project")
	require.Empty(t, tasks.Match{ProjectID: 3}.InsertOpts().Group, "run-now is not held for the group")
	require.Equal(t, "schedule:export", tasks.ScheduleExport{}.Kind())
	require.Equal(t, "schedule:storage_sync", tasks.ScheduleSync{}.Kind())
	require.Equal(t, "maintenance:reconcile", tasks.Reconcile{}.Kind())
	require.Equal(t, "maintenance:export_retention", tasks.ExportRetention{}.Kind())
	require.Equal(t, "maintenance:webhook_retention", tasks.WebhookRetention{}.Kind())
}

func TestDecodeRefusesWhatCanNeverRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, typ, payload, why string
	}{
		{"not JSON", "file:validate", `version 42 please`, "not a JSON object"},
		{"empty", "file:validate", ``, "not a JSON object"},
		{"array", "file:validate", `[42]`, "not a JSON object"},
		{"string id", "file:validate", `{"version_id": "42"}`, "not a JSON object of this kind: json: cannot unmarshal string"},
		{"missing id", "file:validate", `{"id": 42}`, "version_id is missing"},
		{"zero id", "file:validate", `{"version_id": 0}`, "version_id is missing"},
		{"null", "file:validate", `null`, "version_id is missing"},
		{"other kind", "file:preannotate", `{"version_id": 42}`, `task of type "file:preannotate" handed to the file:validate handler`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tasks.Decode[tasks.Validate](asynq.NewTask(tc.typ, []byte(tc.payload)))
			require.ErrorIs(t, err, tasks.ErrBadPayload)
			require.ErrorIs(t, err, asynq.SkipRetry, "permanent")
			require.ErrorContains(t, err, "bad file:validate payload: "+tc.why)
			var bad *tasks.BadPayloadError
			require.True(t, errors.As(err, &bad))
			require.Equal(t, "file:validate", bad.Kind)
		})
	}
	a, err := tasks.Decode[tasks.Validate](asynq.NewTask("file:validate", []byte(`{"version_id": 9, "added_later": true}`)))
	require.NoError(t, err, "a field added by a newer version does not make the task bad")
	require.Equal(t, tasks.Validate{VersionID: 9}, a)
}

// TestBadPayloadIsArchivedNotRetried runs every outbox kind's handler through the
// adapter on a real asynq server: a bad payload is archived at once with its
// reason, its handler never runs, and a good one reaches it typed.
func TestBadPayloadIsArchivedNotRetried(t *testing.T) {
	t.Parallel()
	rd := testenv.RedisDB(t)
	var calls atomic.Int64
	got := make(chan any, 8)
	mux := asynq.NewServeMux()
	register := func(mux *asynq.ServeMux) {
		tasks.Register(mux, func(_ context.Context, a tasks.Validate) error { calls.Add(1); got <- a; return nil })
		tasks.Register(mux, func(_ context.Context, a tasks.Preannotate) error { calls.Add(1); got <- a; return nil })
		tasks.Register(mux, func(_ context.Context, a tasks.Match) error { calls.Add(1); got <- a; return nil })
		tasks.Register(mux, func(_ context.Context, a tasks.Export) error { calls.Add(1); got <- a; return nil })
		tasks.Register(mux, func(_ context.Context, a tasks.ScheduleExport) error { calls.Add(1); got <- a; return nil })
	}
	register(mux)
	srv := asynq.NewServer(rd.Opt(), asynq.Config{
		Concurrency: 2, Queues: queue.Weights, TaskCheckInterval: 50 * time.Millisecond,
		LogLevel: asynq.FatalLevel, RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Millisecond },
	})
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)
	client := asynq.NewClient(rd.Opt())
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(rd.Opt())
	t.Cleanup(func() { _ = insp.Close() })

	type bad struct{ kind, q, payload, why string }
	for i, b := range []bad{
		{"file:validate", "validate", `{"version_id": -1}`, "bad file:validate payload: version_id is missing"},
		{"file:preannotate", "preannotate", `nope`, "bad file:preannotate payload: not a JSON object"},
		{"project:match", "match", `{}`, "bad project:match payload: project_id is missing"},
		{"project:export", "export", `{"export_id": "x"}`, "bad project:export payload: not a JSON object"},
		{"schedule:export", "export", `[]`, "bad schedule:export payload: not a JSON object"},
	} {
		id := "bad-" + string(rune('a'+i))
		_, err := client.Enqueue(asynq.NewTask(b.kind, []byte(b.payload)), asynq.Queue(b.q), asynq.TaskID(id), asynq.MaxRetry(5))
		require.NoError(t, err)
		var info *asynq.TaskInfo
		require.Eventually(t, func() bool {
			info, err = insp.GetTaskInfo(b.q, id)
			return err == nil && info.State == asynq.TaskStateArchived
		}, 10*time.Second, 20*time.Millisecond, "%s archived", b.kind)
		require.Zero(t, info.Retried, "%s: never retried", b.kind)
		require.Contains(t, info.LastErr, b.why)
	}
	require.Zero(t, calls.Load(), "no handler ran on a bad payload")

	good, err := tasks.NewTask(tasks.Validate{VersionID: 11})
	require.NoError(t, err)
	_, err = client.Enqueue(good)
	require.NoError(t, err)
	select {
	case a := <-got:
		require.Equal(t, tasks.Validate{VersionID: 11}, a)
	case <-time.After(10 * time.Second):
		t.Fatal("a good payload never reached its handler")
	}
}

func TestNewTaskCarriesTheContract(t *testing.T) {
	t.Parallel()
	tk, err := tasks.NewTask(tasks.MatchTrigger{ProjectID: 8, Run: "1"})
	require.NoError(t, err)
	require.Equal(t, "project:match", tk.Type())
	var p map[string]any
	require.NoError(t, json.Unmarshal(tk.Payload(), &p))
	require.Equal(t, map[string]any{"project_id": float64(8)}, p)

	c, err := tasks.Periodic(tasks.Reconcile{}, time.Minute)
	require.NoError(t, err)
	require.Equal(t, "@every 1m0s", c.Cronspec)
	require.Equal(t, "maintenance:reconcile", c.Task.Type())
	_, err = tasks.Decode[tasks.Reconcile](c.Task)
	require.NoError(t, err, "the scheduler's payload decodes")
}
