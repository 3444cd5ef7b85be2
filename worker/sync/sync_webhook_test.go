package storagesync_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
	storagesync "github.com/labelq/labelq/worker/sync"
)

// The end of a sync run (completed, failed) is told to the organization's
// subscribed endpoints, once, with the run's counts.
func TestSyncEmitsWebhookEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	all, _ := f.pg.InsertWebhook(t, f.keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/all"})
	ss, _ := f.pg.InsertWebhook(t, f.keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/ss", EventTypes: []string{
		webhook.StorageSyncCompleted, webhook.StorageSyncFailed,
	}})
	f.pg.InsertWebhook(t, f.keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/fv", EventTypes: []string{webhook.FileVersionValidated}})
	subscribed := []int64{all.ID, ss.ID}
	h := f.handler(storagesync.Deps{})

	requireEvent := func(t *testing.T, id int64, typ string) (db.SyncRun, webhook.StorageSyncData, db.WebhookEvent) {
		t.Helper()
		r := f.run(t, id)
		var data webhook.StorageSyncData
		ev := testenv.RequireWebhookEvent(t, f.pg.Pool, f.org.ID, db.EntityTypeSyncRun, id, typ, subscribed, &data)
		require.Equal(t, webhook.StorageSyncData{
			SyncRunID: r.ID, StorageID: r.StorageID, ProjectID: f.pr.ID, Status: string(r.Status), Trigger: "api",
			Pages: r.Pages, KeysListed: r.KeysListed, KeysNew: r.KeysNew, KeysChanged: r.KeysChanged,
			KeysUnchanged: r.KeysUnchanged, KeysFiltered: r.KeysFiltered, KeysGone: r.KeysGone, KeysSkipped: r.KeysSkipped,
			Reason: r.Error,
		}, data, "the run's counts as committed")
		return r, data, ev
	}

	t.Run("completed", func(t *testing.T) {
		st := f.ownStorage(t, nil)
		f.putN(t, st.Prefix, 13)
		id := f.newRun(t, st)
		require.NoError(t, process(t, h, id))
		r, data, _ := requireEvent(t, id, webhook.StorageSyncCompleted)
		require.Equal(t, db.SyncRunStatusCompleted, r.Status)
		require.EqualValues(t, 2, data.Pages, "10 + 3 keys")
		require.EqualValues(t, 13, data.KeysListed)
		require.EqualValues(t, 13, data.KeysNew)

		// The same task again (a redelivery after the commit): no second event.
		require.NoError(t, process(t, h, id))
		requireEvent(t, id, webhook.StorageSyncCompleted)
	})

	t.Run("failed", func(t *testing.T) {
		const secret = "wrong-secret-Zq8x1v"
		st := f.remoteStorage(t, storage.Credentials{AccessKeyID: f.s3.AccessKey, SecretAccessKey: secret}, nil)
		id := f.newRun(t, st)
		require.Error(t, process(t, h, id))
		r, data, ev := requireEvent(t, id, webhook.StorageSyncFailed)
		require.Equal(t, db.SyncRunStatusFailed, r.Status)
		require.Contains(t, *data.Reason, "SignatureDoesNotMatch")
		require.NotContains(t, ev.Body, secret)
		require.NotContains(t, ev.Body, f.s3.SecretKey)

		require.NoError(t, process(t, h, id))
		requireEvent(t, id, webhook.StorageSyncFailed)
	})

	t.Run("failed at the start", func(t *testing.T) {
		st := f.ownStorage(t, nil)
		id := f.newRun(t, st)
		_, err := f.pg.Pool.Exec(context.Background(), `UPDATE storages SET enabled = false WHERE id = $1`, st.ID)
		require.NoError(t, err)
		require.Error(t, process(t, h, id))
		_, data, _ := requireEvent(t, id, webhook.StorageSyncFailed)
		require.Contains(t, *data.Reason, "is disabled")
	})

	// There is no storage_sync.cancelled event type: a cancelled run tells nothing.
	t.Run("cancelled", func(t *testing.T) {
		st := f.ownStorage(t, nil)
		id := f.newRun(t, st)
		_, err := f.pg.Pool.Exec(context.Background(), `UPDATE sync_runs SET cancel_requested_at = now() WHERE id = $1`, id)
		require.NoError(t, err)
		require.NoError(t, process(t, h, id))
		require.Equal(t, db.SyncRunStatusCancelled, f.run(t, id).Status)
		testenv.RequireNoWebhookEvent(t, f.pg.Pool, f.org.ID, db.EntityTypeSyncRun, id)
	})

	t.Run("no endpoint", func(t *testing.T) {
		g := newFixture(t)
		st := g.ownStorage(t, nil)
		g.putN(t, st.Prefix, 3)
		r := g.sync(t, g.handler(storagesync.Deps{}), st)
		testenv.RequireNoWebhookEvent(t, g.pg.Pool, g.org.ID, db.EntityTypeSyncRun, r.ID)
		require.NotContains(t, testenv.Kinds(testenv.OutboxRows(t, g.pg.Pool, g.org.ID)), tasks.WebhookDeliver{}.Kind())
	})
}
