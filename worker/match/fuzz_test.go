package match_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/match"
)

// FuzzPayload gives the real handler arbitrary payloads against an empty database:
// nothing may panic, and every one must end the task for good (bad JSON, a bad id or
// an unknown project), never be retried.
func FuzzPayload(f *testing.F) {
	for _, s := range []string{`{"project_id": 1}`, `{"project_id": -1}`, `{"project_id": "1"}`, `{}`, `[]`, `null`, ``,
		`{"project_id": 1e400}`, `{"project_id": 9223372036854775807}`, `{"project_id": 1, "x": {}}`, "\x00\xff"} {
		f.Add([]byte(s))
	}
	env := &testenv.Env{PG: testenv.Postgres(f)}
	h := match.NewHandler(match.Deps{Pool: env.PG.Pool, Log: testenv.Quiet()})
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := tasks.Handle(h.Work).ProcessTask(context.Background(), asynq.NewTask(tasks.Match{}.Kind(), payload))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("payload %q: want a permanent failure, got %v", payload, err)
		}
	})
}
