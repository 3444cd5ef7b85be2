package match_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/match"
)

// TestMatchBurstIsAggregated: 1,000 registrations in a burst, each committing
// its job with a trigger through the outbox as the validation worker does, go
// through the real relay and a real asynq server with labelq's group settings,
// and cause at most five matching runs that between them assign every job.
func TestMatchBurstIsAggregated(t *testing.T) {
	t.Parallel()
	const registrations = 1000
	f := newFixture(t)
	rd := testenv.RedisDB(t)
	for range 20 {
		f.user(person{langs: `{"en": 4, "de": 4}`, skill: 0.7, qa: 0.8, capacity: 100})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testLogger(t)

	var runs atomic.Int64
	counting := asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		runs.Add(1)
		return tasks.Handle(f.handler.Work).ProcessTask(ctx, task)
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.Match{}.Kind(), counting)
	srv := asynq.NewServer(rd.Opt(), queue.ServerConfig(4, 5*time.Second, log, nil))
	require.NoError(t, srv.Start(mux))
	defer srv.Shutdown()

	client := asynq.NewClient(rd.Opt())
	defer client.Close()
	relay := &outbox.Relay{Pool: f.pg.Pool, Client: client, Log: log, PollInterval: 200 * time.Millisecond}
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		_ = relay.Run(ctx)
	}()
	defer func() { cancel(); <-relayDone }()

	// The burst: each registration is its own transaction, several at a time,
	// as many upload validations finishing together would be.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, registrations)
	next := atomic.Int64{}
	for range 6 {
		wg.Go(func() {
			for n := next.Add(1); n <= registrations; n = next.Add(1) {
				if err := register(ctx, f, n); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d registrations committed in %s", registrations, time.Since(start).Round(time.Millisecond))

	require.Eventually(t, func() bool {
		return len(f.liveMap(db.AssignmentRoleAnnotator)) == registrations
	}, 45*time.Second, 250*time.Millisecond, "every job ends assigned")

	// Let any run still queued or aggregating finish before counting.
	insp := asynq.NewInspector(rd.Opt())
	defer insp.Close()
	require.Eventually(t, func() bool {
		qi, err := insp.GetQueueInfo(queue.QueueMatch)
		if err != nil {
			return false
		}
		return qi.Pending+qi.Active+qi.Scheduled+qi.Retry+qi.Aggregating == 0
	}, 30*time.Second, 100*time.Millisecond)
	qi, err := insp.GetQueueInfo(queue.QueueMatch)
	require.NoError(t, err)
	assert.Zero(t, qi.Archived, "no run failed")

	t.Logf("%d registrations → %d matching runs, all assigned %s after the burst began",
		registrations, runs.Load(), time.Since(start).Round(time.Millisecond))
	assert.GreaterOrEqual(t, runs.Load(), int64(1))
	assert.LessOrEqual(t, runs.Load(), int64(5))
	assert.Len(t, f.events(match.EventAssigned), registrations)
}

// register is what a successful validation commits for one upload: the file,
// its version and job, and the project's match trigger.
func register(ctx context.Context, f *fixture, n int64) error {
	return database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		file, err := q.FileCreate(ctx, db.FileCreateParams{
			OrgID: f.org.ID, ProjectID: f.pr.ID, Name: fmt.Sprintf("burst-%04d.txt", n), FileType: db.FileTypeDataset,
		})
		if err != nil {
			return fmt.Errorf("file %d: %w", n, err)
		}
		v, err := q.FileVersionCreate(ctx, db.FileVersionCreateParams{
			OrgID: f.org.ID, ProjectID: f.pr.ID, FileID: file.ID, StoragePath: fmt.Sprintf("uploads/burst/%d", n),
		})
		if err != nil {
			return fmt.Errorf("version %d: %w", n, err)
		}
		lang := []string{"en", "de"}[n%2]
		if _, err := q.AnnotationJobCreate(ctx, db.AnnotationJobCreateParams{
			OrgID: f.org.ID, ProjectID: f.pr.ID, FileID: file.ID, FileVersionID: v.ID,
			Language: &lang, Priority: db.JobPriorityMedium,
		}); err != nil {
			return fmt.Errorf("job %d: %w", n, err)
		}
		err = outbox.Add(ctx, q, f.org.ID, tasks.MatchTrigger{ProjectID: f.pr.ID, Run: fmt.Sprint(v.ID)})
		return err
	})
}
