package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/reconcile"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

func TestRequeuesOnlyWorkWhoseTaskIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	rd := testenv.RedisDB(t)
	client := asynq.NewClient(rd.Opt())
	defer client.Close()
	insp := asynq.NewInspector(rd.Opt())
	defer insp.Close()
	quiet := testenv.Quiet()
	relay := &outbox.Relay{Pool: pg.Pool, Client: client, Log: quiet, BatchSize: 500}

	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	f := pg.File(t, pr, "")
	var versions []db.FileVersion
	for range 10 {
		v := pg.RegisterVersion(t, f, "k", testenv.Declared{})
		versions = append(versions, v)
		require.NoError(t, database.Tx(ctx, pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
			err := outbox.Add(ctx, q, org.ID, tasks.Validate{VersionID: v.ID})
			return err
		}))
	}
	_, err := relay.RelayOnce(ctx)
	require.NoError(t, err)

	r := &reconcile.Reconciler{
		Pool: pg.Pool, Inspector: insp, Redis: rd.Opt(), Log: quiet, After: time.Minute,
		Now: func() time.Time { return time.Now().Add(2 * time.Minute) }, // every row is past the threshold
		Finders: []reconcile.Finder{{
			Kind: tasks.Validate{}.Kind(),
			Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]reconcile.Item, error) {
				rows, err := q.FileVersionListStuckPending(ctx, db.FileVersionListStuckPendingParams{OlderThan: olderThan, MaxRows: limit})
				items := make([]reconcile.Item, len(rows))
				for i, row := range rows {
					items[i] = reconcile.Item{OrgID: row.OrgID, EntityID: row.ID}
				}
				return items, err
			},
			Args: func(id int64, run string) tasks.Queued { return tasks.Validate{VersionID: id, Run: run} },
		}},
	}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "every version still has a live task: nothing to requeue")

	// Redis loses everything.
	require.NoError(t, rd.Client.FlushDB(ctx).Err())
	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, len(versions), n)
	for _, v := range versions {
		row := testenv.RequireLatestQueued(t, pg.Pool, org.ID, tasks.Validate{VersionID: v.ID})
		require.NotEqual(t, tasks.Validate{VersionID: v.ID}.TaskID(), row.TaskID, "a requeue is a task of its own")
		require.Nil(t, row.EnqueuedAt, "waiting for the relay")
	}
	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "requeued work waiting in the outbox counts as live")

	relayed, err := relay.RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, len(versions), relayed)
	info, err := insp.GetQueueInfo("validate")
	require.NoError(t, err)
	require.Equal(t, len(versions), info.Size, "every version has exactly one task again")

	// A version that is no longer pending is never requeued.
	_, err = pg.Pool.Exec(ctx, "UPDATE file_versions SET validation_status='missing', validation_error='gone', validated_at=now() WHERE id=$1", versions[0].ID)
	require.NoError(t, err)
	require.NoError(t, rd.Client.FlushDB(ctx).Err())
	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, len(versions)-1, n)
}

// finder is the production finder of kind.
func finder(t *testing.T, kind string) reconcile.Finder {
	t.Helper()
	for _, f := range reconcile.Finders() {
		if f.Kind == kind {
			return f
		}
	}
	t.Fatalf("no finder for %s", kind)
	return reconcile.Finder{}
}

// TestRequeuesSyncRunsWhoseTaskIsGone: a live sync run whose storage:sync task is
// alive is left alone; one whose task was lost before the relay, flushed or
// archived is queued again under a task id of its own; a finished run (failed
// after its last attempt, completed) is never queued again, whatever its task.
func TestRequeuesSyncRunsWhoseTaskIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	rd := testenv.RedisDB(t)
	client := asynq.NewClient(rd.Opt())
	defer client.Close()
	insp := asynq.NewInspector(rd.Opt())
	defer insp.Close()
	quiet := testenv.Quiet()
	relay := &outbox.Relay{Pool: pg.Pool, Client: client, Log: quiet, BatchSize: 500}

	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	// One storage per run: a storage has at most one live run.
	run := func(name, status string, queued bool) int64 {
		t.Helper()
		var id int64
		require.NoError(t, pg.Pool.QueryRow(ctx, `WITH s AS (INSERT INTO storages (org_id, project_id, name, prefix)
			VALUES ($1, $2, $3, 'orgs/' || $1::bigint || '/' || $3::text || '/') RETURNING id)
			INSERT INTO sync_runs (org_id, project_id, storage_id, status, error)
			SELECT $1, $2, s.id, $4::text::sync_run_status, CASE WHEN $4::text = 'failed' THEN 'gave up after 13 attempts' END FROM s
			RETURNING id`, org.ID, pr.ID, name, status).Scan(&id))
		if queued {
			require.NoError(t, database.Tx(ctx, pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
				return outbox.Add(ctx, q, org.ID, tasks.StorageSync{RunID: id})
			}))
		}
		return id
	}
	alive := run("alive", "running", true)
	archived := run("archived", "running", true)
	lost := run("lost", "pending", false) // its outbox row never committed
	failed := run("failed", "failed", true)
	completed := run("completed", "completed", false)
	_, err := relay.RelayOnce(ctx)
	require.NoError(t, err)
	// The worker was killed on the last retry of archived's task: asynq archived it.
	require.NoError(t, insp.ArchiveTask("sync", tasks.StorageSync{RunID: archived}.TaskID()))
	require.NoError(t, insp.ArchiveTask("sync", tasks.StorageSync{RunID: failed}.TaskID()))

	r := &reconcile.Reconciler{
		Pool: pg.Pool, Inspector: insp, Redis: rd.Opt(), Log: quiet, After: time.Minute,
		Finders: []reconcile.Finder{finder(t, tasks.StorageSync{}.Kind())},
	}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "no run is past the threshold yet")

	r.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "the archived and the lost run")
	for _, id := range []int64{archived, lost} {
		row := testenv.RequireLatestQueued(t, pg.Pool, org.ID, tasks.StorageSync{RunID: id})
		require.NotEqual(t, tasks.StorageSync{RunID: id}.TaskID(), row.TaskID, "a requeue is a task of its own")
		require.Equal(t, "sync", row.Queue)
	}
	for _, id := range []int64{alive, failed, completed} {
		row, err := pg.Q.OutboxLatestForSubject(ctx, db.OutboxLatestForSubjectParams{TaskType: tasks.StorageSync{}.Kind(), SubjectID: id})
		if err == nil {
			require.Equal(t, tasks.StorageSync{RunID: id}.TaskID(), row.TaskID, "run %d was requeued", id)
		}
	}
	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "requeued runs waiting in the outbox count as live")

	_, err = relay.RelayOnce(ctx)
	require.NoError(t, err)
	info, err := insp.GetQueueInfo("sync")
	require.NoError(t, err)
	require.Equal(t, 3, info.Pending, "alive's first task and the two requeues")
	require.Equal(t, 2, info.Archived)
}

// TestRequeuesSubmissionsWhoseTaskIsGone: a queued submission whose job:score
// task was lost is queued again once it is past the threshold; a completed one
// never is.
func TestRequeuesSubmissionsWhoseTaskIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	rd := testenv.RedisDB(t)
	insp := asynq.NewInspector(rd.Opt())
	defer insp.Close()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	f := pg.File(t, pr, "")
	v := pg.RegisterVersion(t, f, "k", testenv.Declared{})
	var job int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id) VALUES ($1,$2,$3,$4) RETURNING id`,
		org.ID, pr.ID, f.ID, v.ID).Scan(&job))
	sub := func(status string) int64 {
		u := pg.User(t, org.ID, testenv.Annotator)
		var id int64
		require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO submissions (org_id, project_id, job_id, user_id, result_version_id, kind, status, score, scored_at)
			VALUES ($1,$2,$3,$4,$5,'gold',$6::submission_status, CASE WHEN $6::text = 'completed' THEN 1 END, CASE WHEN $6::text = 'completed' THEN now() END) RETURNING id`,
			org.ID, pr.ID, job, u.ID, v.ID, status).Scan(&id))
		return id
	}
	lost, done := sub("queued"), sub("completed")
	r := &reconcile.Reconciler{
		Pool: pg.Pool, Inspector: insp, Redis: rd.Opt(), Log: testenv.Quiet(), After: time.Minute,
		Finders: []reconcile.Finder{finder(t, tasks.Score{}.Kind())},
	}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "not past the threshold yet")
	r.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	row := testenv.RequireLatestQueued(t, pg.Pool, org.ID, tasks.Score{SubmissionID: lost})
	require.Equal(t, "match", row.Queue)
	_, err = pg.Q.OutboxLatestForSubject(ctx, db.OutboxLatestForSubjectParams{TaskType: tasks.Score{}.Kind(), SubjectID: done})
	require.Error(t, err, "a completed submission is never queued")
}
