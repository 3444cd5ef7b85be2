package validate_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/validate"
)

// FuzzPayload gives the real handler arbitrary payloads against an empty database:
// nothing may panic, and every one must end the task for good (bad JSON, a bad id or
// an unknown version), never be retried.
func FuzzPayload(f *testing.F) {
	for _, s := range []string{`{"version_id": 1}`, `{"version_id": -1}`, `{"version_id": "1"}`, `{}`, `[]`, `null`, ``,
		`{"version_id": 1e400}`, `{"version_id": 9223372036854775807}`, `{"version_id": 1, "x": {}}`, "\x00\xff"} {
		f.Add([]byte(s))
	}
	env := testenv.New(f)
	h := validate.NewHandler(validate.Deps{Pool: env.PG.Pool, Store: env.S3.Store, Log: testenv.Quiet(),
		Storages: testenv.StorageResolver(f, env.PG, env.S3, testenv.StorageKeyring(f))})
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := tasks.Handle(h.Work).ProcessTask(context.Background(), asynq.NewTask(tasks.Validate{}.Kind(), payload))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("payload %q: want a permanent failure, got %v", payload, err)
		}
	})
}
