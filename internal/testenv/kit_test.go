package testenv_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

func TestLogger(t *testing.T) {
	t.Parallel()
	log, logs := testenv.Logger(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				log.Debug("step", "worker", i, "n", j)
			}
		})
	}
	wg.Wait()
	log.Warn("calling the provider", "api_key", "sk-do-not-print", "version_id", int64(42))

	require.Len(t, logs.Records(t), 8*50+1, "every line whole, none interleaved")
	require.Len(t, logs.Records(t, `"worker":3`), 50)
	warn := logs.Messages(t, "calling the provider")
	require.Len(t, warn, 1)
	require.Equal(t, "WARN", warn[0]["level"])
	require.EqualValues(t, 42, warn[0]["version_id"])
	require.False(t, logs.Contains("sk-do-not-print"), "labelq's redaction applies")
	require.True(t, logs.Contains(`"msg":"step"`))
}

// failures runs check against a testing.TB that records failures instead of
// failing t, and returns what it reported.
func failures(t *testing.T, check func(tb testing.TB)) []string {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return r.msgs
}

type recorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); r.FailNow() }
func (r *recorder) FailNow()                          { runtime.Goexit() }

func TestRequireQueued(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	org, other := pg.Org(t), pg.Org(t)
	queued := []tasks.Queued{
		tasks.Validate{VersionID: 42},
		tasks.MatchTrigger{ProjectID: 7, Run: "42"},
		tasks.Export{ExportID: 5, Run: "rc1"},
	}
	require.NoError(t, database.Tx(ctx, pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		for _, a := range queued {
			if err := outbox.Add(ctx, q, org.ID, a); err != nil {
				return err
			}
		}
		// Rows that outbox.Add would not write: a payload that is not the task id's,
		// and options that are not the kind's.
		for id, p := range map[int64][2]string{43: {`{"version_id": 44}`, `{"max_retry": 25, "timeout": 7200000000000}`}, 45: {`{"version_id": 45}`, `{"max_retry": 3}`}} {
			if err := q.OutboxInsert(ctx, db.OutboxInsertParams{
				TaskID: tasks.Validate{VersionID: id}.TaskID(), TaskType: tasks.Validate{}.Kind(), Queue: tasks.Validate{}.InsertOpts().Queue,
				Payload: []byte(p[0]), Options: []byte(p[1]), OrgID: &org.ID, SubjectID: &id, AvailableAt: time.Now(),
			}); err != nil {
				return err
			}
		}
		return nil
	}))

	for _, a := range queued {
		row := testenv.RequireQueued(t, pg.Pool, org.ID, a)
		require.Equal(t, a.TaskID(), row.TaskID)
		testenv.RequireNotQueued(t, pg.Pool, other.ID, a)
	}
	require.Equal(t, []string{"file:validate", "project:match", "project:export", "file:validate", "file:validate"},
		testenv.Kinds(testenv.OutboxRows(t, pg.Pool, org.ID)))
	require.Empty(t, testenv.OutboxRows(t, pg.Pool, other.ID))
	testenv.RequireNotQueued(t, pg.Pool, org.ID, tasks.Validate{VersionID: 42, Run: "again"})
	latest := testenv.RequireLatestQueued(t, pg.Pool, org.ID, tasks.Export{ExportID: 5})
	require.Equal(t, "project:export:5:rc1", latest.TaskID)

	for name, tc := range map[string]struct {
		check func(tb testing.TB)
		says  string
	}{
		"another org":      {func(tb testing.TB) { testenv.RequireQueued(tb, pg.Pool, other.ID, queued[0]) }, "no file:validate task"},
		"another run":      {func(tb testing.TB) { testenv.RequireQueued(tb, pg.Pool, org.ID, tasks.Export{ExportID: 5}) }, "project:export:5:rc1"},
		"another kind":     {func(tb testing.TB) { testenv.RequireQueued(tb, pg.Pool, org.ID, tasks.Preannotate{VersionID: 42}) }, "no file:preannotate task"},
		"wrong payload":    {func(tb testing.TB) { testenv.RequireQueued(tb, pg.Pool, org.ID, tasks.Validate{VersionID: 43}) }, "payload"},
		"wrong options":    {func(tb testing.TB) { testenv.RequireQueued(tb, pg.Pool, org.ID, tasks.Validate{VersionID: 45}) }, "options"},
		"queued after all": {func(tb testing.TB) { testenv.RequireNotQueued(tb, pg.Pool, org.ID, queued[1]) }, "should not be"},
		"no such subject":  {func(tb testing.TB) { testenv.RequireLatestQueued(tb, pg.Pool, org.ID, tasks.Export{ExportID: 6}) }, "no project:export task for subject 6"},
	} {
		msgs := failures(t, tc.check)
		require.NotEmpty(t, msgs, "%s: the check must fail", name)
		require.Contains(t, strings.Join(msgs, "\n"), tc.says, name)
	}
}
