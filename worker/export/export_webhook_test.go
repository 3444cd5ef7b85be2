package export_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/worker/export"
)

// The end of an export (completed, failed) is told to the organization's
// subscribed endpoints, once, with where to get the archive and never a URL
// that would let anyone fetch it.
func TestExportEmitsWebhookEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	all, _ := f.pg.InsertWebhook(t, f.keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/all"})
	ex, _ := f.pg.InsertWebhook(t, f.keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/ex", EventTypes: []string{
		webhook.ExportCompleted, webhook.ExportFailed, webhook.ExportCancelled,
	}})
	f.pg.InsertWebhook(t, f.keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/fv", EventTypes: []string{webhook.FileVersionValidated}})
	subscribed := []int64{all.ID, ex.ID}
	h := f.handler(export.Options{})
	f.dataset("a.txt", []byte("hello"), "text/plain")
	f.dataset("b.txt", []byte("world"), "text/plain")

	requireEvent := func(t *testing.T, e db.ExportLog, typ string) webhook.ExportData {
		t.Helper()
		var data webhook.ExportData
		ev := testenv.RequireWebhookEvent(t, f.pg.Pool, f.org.ID, db.EntityTypeExport, e.ID, typ, subscribed, &data)
		require.Equal(t, e.ID, data.ExportID)
		require.Equal(t, f.pr.ID, data.ProjectID)
		for _, secret := range []string{f.s3.SecretKey, "X-Amz-", "Signature=", "http://", "https://"} {
			require.NotContains(t, ev.Body, secret, "no credential and no URL in the event")
		}
		return data
	}

	t.Run("completed", func(t *testing.T) {
		e := f.newExport(filesOnly)
		require.NoError(t, f.run(ctx, h, e.ID))
		row := f.row(e.ID)
		require.Equal(t, db.ExportStatusCompleted, row.Status)
		data := requireEvent(t, e, webhook.ExportCompleted)
		require.Equal(t, webhook.ExportData{
			ExportID: e.ID, ProjectID: f.pr.ID, Status: "completed", Trigger: "api", Format: "labelq",
			DownloadPath: ptr(fmt.Sprintf("/v1/exports/%d/download", e.ID)),
			SizeBytes:    row.SizeBytes, ChecksumSHA256: row.ArchiveSha256, Files: ptr(int64(2)),
		}, data, "labelq's own bucket: no storage id or key")
		require.Equal(t, int32(2), *row.FileCount)

		// The same task again (a redelivery after the commit): no second event.
		require.NoError(t, f.run(ctx, h, e.ID))
		requireEvent(t, e, webhook.ExportCompleted)
	})

	t.Run("failed", func(t *testing.T) {
		bad := f.dataset("gone.txt", []byte("soon gone"), "text/plain")
		require.NoError(t, f.s3.Store.Client.RemoveObject(ctx, f.s3.Store.Bucket, bad.StoragePath, minio.RemoveObjectOptions{}))
		t.Cleanup(func() {
			_, err := f.pg.Pool.Exec(ctx, `UPDATE files SET deleted_at = now() WHERE id = $1`, bad.File.ID)
			require.NoError(t, err)
		})
		e := f.newExport(filesOnly)
		require.Error(t, f.run(ctx, h, e.ID))
		row := f.row(e.ID)
		require.Equal(t, db.ExportStatusFailed, row.Status)
		data := requireEvent(t, e, webhook.ExportFailed)
		require.Equal(t, "failed", data.Status)
		require.Equal(t, row.Error, data.Reason)
		require.Contains(t, *data.Reason, "gone.txt")
		require.Nil(t, data.DownloadPath)
		require.Nil(t, data.ChecksumSHA256)

		require.NoError(t, f.run(ctx, h, e.ID))
		requireEvent(t, e, webhook.ExportFailed)
	})

	// An export storage is the tenant's bucket: the event says which and where.
	t.Run("to an export storage", func(t *testing.T) {
		st := f.pg.InsertStorage(t, f.res, f.pr, testenv.StorageRow{Kind: db.StorageKindExport, Prefix: storage.OwnPrefix(f.org.ID) + "out/"})
		h := f.handler(export.Options{}) // built after the storage, so its resolver knows it
		e := f.exportTo(st, filesOnly)
		require.NoError(t, f.run(ctx, h, e.ID))
		row := f.row(e.ID)
		require.Equal(t, db.ExportStatusCompleted, row.Status, "error: %v", row.Error)
		data := requireEvent(t, e, webhook.ExportCompleted)
		require.Equal(t, &st.ID, data.StorageID)
		require.Equal(t, row.StoragePath, data.StorageKey)
		require.True(t, strings.HasPrefix(*data.StorageKey, storage.OwnPrefix(f.org.ID)+"out/exports/"), *data.StorageKey)
		require.Equal(t, ptr(fmt.Sprintf("/v1/exports/%d/download", e.ID)), data.DownloadPath)
	})

	// A schedule's export goes the same way, and says it came from a schedule.
	t.Run("scheduled", func(t *testing.T) {
		s, err := f.pg.Q.ExportScheduleCreate(ctx, db.ExportScheduleCreateParams{
			OrgID: f.org.ID, ProjectID: f.pr.ID, CronSpec: "@daily", Timezone: "UTC", Options: json.RawMessage(filesOnly), Enabled: true,
		})
		require.NoError(t, err)
		tick := time.Now().UTC().Truncate(24 * time.Hour)
		e, err := f.pg.Q.ExportLogCreateForTick(ctx, db.ExportLogCreateForTickParams{
			OrgID: f.org.ID, ProjectID: f.pr.ID, ScheduleID: &s.ID, ScheduledFor: &tick, Options: json.RawMessage(filesOnly),
		})
		require.NoError(t, err)
		require.NoError(t, f.run(ctx, h, e.ID))
		data := requireEvent(t, e, webhook.ExportCompleted)
		require.Equal(t, "schedule", data.Trigger)
	})

	t.Run("no endpoint", func(t *testing.T) {
		g := newFixture(t)
		g.dataset("a.txt", []byte("hello"), "text/plain")
		e := g.newExport(filesOnly)
		require.NoError(t, g.run(ctx, g.handler(export.Options{}), e.ID))
		require.Equal(t, db.ExportStatusCompleted, g.row(e.ID).Status)
		testenv.RequireNoWebhookEvent(t, g.pg.Pool, g.org.ID, db.EntityTypeExport, e.ID)
		require.NotContains(t, testenv.Kinds(testenv.OutboxRows(t, g.pg.Pool, g.org.ID)), tasks.WebhookDeliver{}.Kind())
	})
}

func ptr[T any](v T) *T { return &v }
