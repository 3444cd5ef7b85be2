package export_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/worker/export"
)

// TestRetentionPurgesOldArchives: archives of completed exports older than the
// retention are deleted and their rows marked; newer ones, unfinished ones and
// a retention of 0 are left alone, and a second pass has nothing to do.
func TestRetentionPurgesOldArchives(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	raw := f.dataset("a.txt", []byte("hello"), "text/plain")
	f.approved(raw, "a.json", []byte(`{}`))
	h := f.handler(export.Options{})
	age := map[int64]time.Duration{}
	var ids []int64
	for _, d := range []time.Duration{72 * time.Hour, 49 * time.Hour, 25 * time.Hour, time.Hour} {
		e := f.newExport(`{}`)
		require.NoError(t, f.run(ctx, h, e.ID))
		_, err := f.pg.Pool.Exec(ctx, `UPDATE export_logs SET completed_at = now() - $2::interval WHERE id = $1`, e.ID, d.String())
		require.NoError(t, err)
		age[e.ID] = d
		ids = append(ids, e.ID)
	}
	// An old export that failed has no archive to purge.
	failed := f.newExport(`{}`)
	_, err := f.pg.Pool.Exec(ctx, `UPDATE export_logs SET status = 'failed', error = 'x', completed_at = now() - interval '100 hours' WHERE id = $1`, failed.ID)
	require.NoError(t, err)
	// One archive is already gone from the bucket: still marked, not an error.
	require.NoError(t, f.s3.Store.Client.RemoveObject(ctx, f.s3.Store.Bucket, f.exportKey(ids[1]), minio.RemoveObjectOptions{}))

	r := &export.RetentionHandler{Pool: f.pg.Pool, Store: f.s3.Store, Log: f.log}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "retention 0 keeps everything")

	r.Retention, r.BatchSize = 24*time.Hour, 1 // one row per query, to cross batches
	require.NoError(t, tasks.Handle(r.Work).ProcessTask(ctx, asynq.NewTask(tasks.ExportRetention{}.Kind(), []byte(`{}`))))
	for _, id := range ids {
		row := f.row(id)
		require.Equal(t, db.ExportStatusCompleted, row.Status)
		if age[id] > 24*time.Hour {
			require.NotNil(t, row.PurgedAt, "export %d is %s old", id, age[id])
			require.Empty(t, f.objects(f.exportKey(id)))
			require.Equal(t, 1, f.events(id)[export.EventPurged])
		} else {
			require.Nil(t, row.PurgedAt)
			require.Equal(t, []string{f.exportKey(id)}, f.objects(f.exportKey(id)))
			require.Zero(t, f.events(id)[export.EventPurged])
		}
	}
	require.Nil(t, f.row(failed.ID).PurgedAt)

	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a second pass has nothing left to purge")
}

// TestRetentionPeriodicTask checks the scheduler entry the app mounts.
func TestRetentionPeriodicTask(t *testing.T) {
	t.Parallel()
	c, err := tasks.Periodic(tasks.ExportRetention{}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, "@every 1h0m0s", c.Cronspec)
	require.Equal(t, tasks.ExportRetention{}.Kind(), c.Task.Type())
	opts := map[asynq.OptionType]any{}
	for _, o := range c.Opts {
		opts[o.Type()] = o.Value()
	}
	require.Equal(t, queue.QueueDefault, opts[asynq.QueueOpt])
	require.Equal(t, 0, opts[asynq.MaxRetryOpt])
}

// TestRetentionSweepsOrphanedArchives: objects under an exports/ prefix that
// are not the archive of a completed export (no row at all, a failed or
// cancelled row, a run that never recorded its upload) are deleted once older
// than the grace period; younger ones, and completed exports' archives, stay.
func TestRetentionSweepsOrphanedArchives(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	raw := f.dataset("a.txt", []byte("hello"), "text/plain")
	f.approved(raw, "a.json", []byte(`{}`))
	completed := f.newExport(`{}`)
	require.NoError(t, f.run(ctx, f.handler(export.Options{}), completed.ID))
	kept := f.exportKey(completed.ID)

	failed := f.newExport(`{}`)
	_, err := f.pg.Pool.Exec(ctx, `UPDATE export_logs SET status = 'failed', error = 'x', attempts = 1, completed_at = now() WHERE id = $1`, failed.ID)
	require.NoError(t, err)
	orphans := []string{
		f.attemptKey(failed.ID, 1),       // a failed export's archive
		f.attemptKey(completed.ID, 7),    // a run of a completed export that lost
		f.attemptKey(completed.ID+99, 1), // no row at all
		fmt.Sprintf("orgs/%d/projects/%d/exports/%d.zip", f.org.ID, f.pr.ID, failed.ID), // the old layout
	}
	for _, k := range orphans {
		f.s3.Put(t, k, []byte("PK orphan"), minio.PutObjectOptions{})
	}
	// Not an export object: never looked at.
	other := fmt.Sprintf("orgs/%d/projects/%d/files/1/v1", f.org.ID, f.pr.ID)
	f.s3.Put(t, other, []byte("a file"), minio.PutObjectOptions{})

	r := &export.RetentionHandler{Pool: f.pg.Pool, Store: f.s3.Store, Log: f.log, OrphanGrace: time.Hour}
	n, err := r.SweepOrphans(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "objects younger than the grace period may belong to a live run")
	require.Len(t, f.exportObjects(), 1+len(orphans))

	r.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	require.NoError(t, tasks.Handle(r.Work).ProcessTask(ctx, asynq.NewTask(tasks.ExportRetention{}.Kind(), []byte(`{}`))))
	require.Equal(t, []string{kept}, f.exportObjects(), "only the completed export's archive is left")
	require.Equal(t, []string{other}, f.objects(other))
	f.completedArchive(completed.ID)

	n, err = r.SweepOrphans(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a second pass has nothing left to sweep")
}
