package validate_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
)

// Every outcome of a validation is told to the organization's subscribed
// endpoints: one file_version.* event with what a platform needs, written with
// the outcome, and never twice for one outcome.
func TestValidateEmitsWebhookEvents(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	pg := hs.env.PG
	ctx := context.Background()
	keys := testenv.StorageKeyring(t)
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	other := pg.Project(t, org.ID)
	all, _ := pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://example.com/all"})
	fileVersions, _ := pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://example.com/fv", EventTypes: []string{
		webhook.FileVersionValidated, webhook.FileVersionCorrupt, webhook.FileVersionRejected, webhook.FileVersionMissing,
	}})
	pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://example.com/exports", EventTypes: []string{webhook.ExportCompleted}})
	pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://example.com/other-project", ProjectIDs: []int64{other.ID}})
	pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "https://example.com/disabled", Disabled: true})
	subscribed := []int64{all.ID, fileVersions.ID}

	csv := csvBytes(20)
	elf := elfBytes()
	cases := []struct {
		name     string
		content  []byte // nil: no object at the key
		decl     testenv.Declared
		typ      string
		status   db.ValidationStatus
		code     string // one of the codes; "": none
		measured bool   // checksum and content type known
	}{
		{"valid", csv, declared(csv, "text/csv"), webhook.FileVersionValidated, db.ValidationStatusValid, "", true},
		{"corrupt", csv, testenv.Declared{SHA256: ptr(testenv.SHA256Hex([]byte("other bytes"))), Size: ptr(int64(len(csv)))}, webhook.FileVersionCorrupt, db.ValidationStatusCorrupt, "sha256_mismatch", true},
		{"rejected", elf, testenv.Declared{}, webhook.FileVersionRejected, db.ValidationStatusRejected, "type_blocked", true},
		{"missing", nil, declared(csv, "text/csv"), webhook.FileVersionMissing, db.ValidationStatusMissing, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := pg.File(t, pr, tc.name+".csv")
			key := fmt.Sprintf("orgs/%d/projects/%d/files/%d/v1", org.ID, pr.ID, f.ID)
			if tc.content != nil {
				hs.put(t, key, tc.content, minio.PutObjectOptions{})
			}
			v := pg.RegisterVersion(t, f, key, tc.decl)
			// A missing object is looked at MissingAttempts times.
			for i := 0; i < testOptions.MissingAttempts && hs.version(t, v.ID).ValidationStatus == db.ValidationStatusPending; i++ {
				_ = hs.process(t, v.ID)
			}
			got := hs.version(t, v.ID)
			require.Equal(t, tc.status, got.ValidationStatus)

			var data webhook.FileVersionData
			ev := testenv.RequireWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeFileVersion, v.ID, tc.typ, subscribed, &data)
			require.Equal(t, &pr.ID, ev.ProjectID)
			require.Equal(t, v.ID, data.FileVersionID)
			require.Equal(t, f.ID, data.FileID)
			require.Equal(t, pr.ID, data.ProjectID)
			require.Equal(t, int32(1), data.VersionNumber)
			require.Equal(t, "dataset", data.FileType)
			require.Equal(t, f.Name, data.Filename)
			require.Equal(t, key, data.StorageKey)
			require.Nil(t, data.StorageID)
			require.Equal(t, string(tc.status), data.Status)
			if tc.measured {
				require.Equal(t, got.SizeBytes, data.SizeBytes)
				require.Equal(t, got.Checksum, data.ChecksumSHA256)
				require.Equal(t, testenv.SHA256Hex(tc.content), *data.ChecksumSHA256)
				require.Equal(t, got.MimeType, data.ContentType)
			} else {
				require.Nil(t, data.SizeBytes)
				require.Nil(t, data.ChecksumSHA256)
			}
			if tc.status == db.ValidationStatusValid {
				require.Nil(t, data.Reason)
				require.Empty(t, data.Codes)
				jobs := hs.jobsFor(t, got)
				require.Len(t, jobs, 1)
				require.Equal(t, &jobs[0].ID, data.JobID)
			} else {
				require.Equal(t, got.ValidationError, data.Reason)
				require.Nil(t, data.JobID)
			}
			if tc.code != "" {
				require.Contains(t, data.Codes, tc.code)
			}

			// The same task again (a redelivery after the commit): no second event.
			_ = hs.process(t, v.ID)
			testenv.RequireWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeFileVersion, v.ID, tc.typ, subscribed, nil)
		})
	}

	// A version sent back to validation (its object changed) ends a new pending
	// spell under the same task id: its outcome is a second event.
	t.Run("revalidated", func(t *testing.T) {
		f := pg.File(t, pr, "revalidated.csv")
		v := pg.Upload(t, hs.env.S3, f, csv, testenv.Declared{})
		require.NoError(t, hs.process(t, v.ID))
		first := hs.version(t, v.ID)
		changed := csvBytes(30)
		hs.env.S3.Put(t, v.StoragePath, changed, minio.PutObjectOptions{})
		_, err := pg.Q.FileVersionRevalidate(ctx, db.FileVersionRevalidateParams{ID: v.ID, Checksum: *first.Checksum})
		require.NoError(t, err)
		require.NoError(t, hs.process(t, v.ID))
		require.NoError(t, hs.process(t, v.ID))

		evs, err := pg.Q.WebhookEventsOfEntity(ctx, db.WebhookEventsOfEntityParams{OrgID: org.ID, EntityType: db.EntityTypeFileVersion, EntityID: v.ID})
		require.NoError(t, err)
		require.Len(t, evs, 2, "one event per outcome")
		require.NotEqual(t, evs[0].PublicID, evs[1].PublicID)
		require.Contains(t, evs[0].Body, testenv.SHA256Hex(csv))
		require.Contains(t, evs[1].Body, testenv.SHA256Hex(changed))
	})

	// An organization with no endpoint gets no event, and nothing more queued.
	t.Run("no endpoint", func(t *testing.T) {
		org := pg.Org(t)
		f := pg.File(t, pg.Project(t, org.ID), "")
		v := pg.Upload(t, hs.env.S3, f, csv, testenv.Declared{})
		require.NoError(t, hs.process(t, v.ID))
		require.Equal(t, db.ValidationStatusValid, hs.version(t, v.ID).ValidationStatus)
		testenv.RequireNoWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeFileVersion, v.ID)
		require.NotContains(t, testenv.Kinds(testenv.OutboxRows(t, pg.Pool, org.ID)), tasks.WebhookDeliver{}.Kind())
	})
}
