package export_test

import (
	"context"
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
