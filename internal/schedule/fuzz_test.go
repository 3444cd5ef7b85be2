package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/schedule"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// FuzzPayload: no payload panics the handler; one that does not name a schedule
// ends the task for good, and one that names an unknown schedule is a no-op.
func FuzzPayload(f *testing.F) {
	for _, s := range []string{`{"schedule_id": 1}`, `{"schedule_id": 0}`, `{"schedule_id": "x"}`, `{}`, `[]`, ``, `{"schedule_id": 1e99}`} {
		f.Add([]byte(s))
	}
	pg := testenv.Postgres(f)
	h := &schedule.Handler{Pool: pg.Pool, Log: quiet}
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := tasks.Handle(h.Work).ProcessTask(context.Background(), asynq.NewTask(tasks.ScheduleExport{}.Kind(), payload))
		var p tasks.ScheduleExport
		decodable := json.Unmarshal(payload, &p) == nil && p.ScheduleID > 0
		if decodable && err != nil {
			t.Fatalf("payload %q names an unknown schedule: want a no-op, got %v", payload, err)
		}
		if !decodable && !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("payload %q: want a permanent failure, got %v", payload, err)
		}
	})
}
