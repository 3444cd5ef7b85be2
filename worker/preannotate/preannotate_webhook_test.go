package preannotate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
)

// Every end of a pre-annotation run (succeeded, failed, skipped) is told to the
// organization's subscribed endpoints, once, with the run's figures.
func TestPreannotateEmitsWebhookEvents(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	pg := w.env.PG
	ctx := context.Background()
	all, _ := pg.InsertWebhook(t, w.keys, w.org.ID, testenv.WebhookRow{URL: "https://example.com/all"})
	pre, _ := pg.InsertWebhook(t, w.keys, w.org.ID, testenv.WebhookRow{URL: "https://example.com/pre", EventTypes: []string{
		webhook.PreannotationSucceeded, webhook.PreannotationFailed, webhook.PreannotationSkipped,
	}})
	pg.InsertWebhook(t, w.keys, w.org.ID, testenv.WebhookRow{URL: "https://example.com/fv", EventTypes: []string{webhook.FileVersionValidated}})
	subscribed := []int64{all.ID, pre.ID}

	requireEvent := func(t *testing.T, v db.FileVersion, typ string, status db.LlmRunStatus) webhook.PreannotationData {
		t.Helper()
		var data webhook.PreannotationData
		testenv.RequireWebhookEvent(t, pg.Pool, w.org.ID, db.EntityTypeFileVersion, v.ID, typ, subscribed, &data)
		require.Equal(t, v.ID, data.FileVersionID)
		require.Equal(t, v.FileID, data.FileID)
		require.Equal(t, v.ProjectID, data.ProjectID)
		require.Equal(t, string(status), data.Status)
		return data
	}
	requireRun := func(t *testing.T, data webhook.PreannotationData, run db.LlmRun) {
		t.Helper()
		require.Equal(t, &run.ID, data.LLMRunID)
		require.Equal(t, run.Model, data.Model)
		require.Equal(t, run.OutputVersionID, data.OutputVersionID)
		require.Equal(t, run.Error, data.Reason)
		require.Equal(t, &run.PromptTokens, data.PromptTokens)
		require.Equal(t, &run.CompletionTokens, data.CompletionTokens)
		require.Equal(t, &run.CostUsd, data.CostUSD)
	}

	t.Run("succeeded", func(t *testing.T) {
		v := w.valid("good.txt", "text/plain", []byte("Great value."), nil)
		require.NoError(t, w.process(v))
		run := w.run(v)
		data := requireEvent(t, v, webhook.PreannotationSucceeded, db.LlmRunStatusSucceeded)
		requireRun(t, data, run)
		require.NotNil(t, data.OutputVersionID)
		require.Equal(t, "gpt-4o-mini", data.Model)
		require.Positive(t, *data.PromptTokens)
		require.Nil(t, data.Reason)

		// The same content again is a cache hit, told like a paid run.
		dup := w.valid("dup.txt", "text/plain", []byte("Great value."), &v.ID)
		require.NoError(t, w.process(dup))
		requireRun(t, requireEvent(t, dup, webhook.PreannotationSucceeded, db.LlmRunStatusSucceeded), w.run(dup))

		// The same task again (a redelivery after the commit): no second event.
		require.NoError(t, w.process(v))
		requireEvent(t, v, webhook.PreannotationSucceeded, db.LlmRunStatusSucceeded)
	})

	t.Run("failed", func(t *testing.T) {
		v := w.valid("unknown-model.txt", "text/plain", []byte("Hello."), nil)
		w.srv.Next(llmtest.Fault{Status: http.StatusNotFound})
		require.Error(t, w.process(v))
		run := w.run(v)
		require.Equal(t, db.LlmRunStatusFailed, run.Status)
		data := requireEvent(t, v, webhook.PreannotationFailed, db.LlmRunStatusFailed)
		requireRun(t, data, run)
		require.NotEmpty(t, *data.Reason)
		require.Nil(t, data.OutputVersionID)
	})

	t.Run("skipped", func(t *testing.T) {
		v := w.valid("archive.zip", "application/zip", []byte("PK"), nil)
		require.NoError(t, w.process(v))
		run := w.run(v)
		data := requireEvent(t, v, webhook.PreannotationSkipped, db.LlmRunStatusSkipped)
		requireRun(t, data, run)
		require.Contains(t, *data.Reason, "only text")
		require.NoError(t, w.process(v))
		requireEvent(t, v, webhook.PreannotationSkipped, db.LlmRunStatusSkipped)
	})

	t.Run("disabled project", func(t *testing.T) {
		off := pg.Project(t, w.org.ID)
		v := w.validVersion(pg.File(t, off, "off.txt"), "text/plain", []byte("Hi."), nil)
		require.NoError(t, w.process(v))
		require.NoError(t, w.process(v))
		data := requireEvent(t, v, webhook.PreannotationSkipped, db.LlmRunStatusSkipped)
		require.Nil(t, data.LLMRunID)
		require.Contains(t, *data.Reason, "disabled")
	})

	// A version whose object changed after validation: the run is skipped (told),
	// the version validated again, and the same run then succeeds (told too).
	t.Run("object changed", func(t *testing.T) {
		v := w.valid("swapped.txt", "text/plain", []byte("Validated bytes."), nil)
		swapped := []byte("Other bytes.")
		_, err := w.env.S3.Store.Client.PutObject(ctx, w.env.S3.Store.Bucket, v.StoragePath,
			bytes.NewReader(swapped), int64(len(swapped)), minio.PutObjectOptions{})
		require.NoError(t, err)
		require.NoError(t, w.process(v))
		data := requireEvent(t, v, webhook.PreannotationSkipped, db.LlmRunStatusSkipped)
		require.Contains(t, *data.Reason, "changed after validation")

		_, err = pg.Pool.Exec(ctx, `UPDATE file_versions SET validation_status = 'valid', checksum = $2,
			size_bytes = $3, mime_type = 'text/plain', validated_at = now() WHERE id = $1`,
			v.ID, testenv.SHA256Hex(swapped), len(swapped))
		require.NoError(t, err)
		require.NoError(t, w.process(v))
		evs, err := pg.Q.WebhookEventsOfEntity(ctx, db.WebhookEventsOfEntityParams{OrgID: w.org.ID, EntityType: db.EntityTypeFileVersion, EntityID: v.ID})
		require.NoError(t, err)
		require.Len(t, evs, 2)
		require.Equal(t, []string{webhook.PreannotationSkipped, webhook.PreannotationSucceeded}, []string{evs[0].EventType, evs[1].EventType})
		var env struct{ Data webhook.PreannotationData }
		require.NoError(t, json.Unmarshal([]byte(evs[1].Body), &env))
		require.Equal(t, w.run(v).OutputVersionID, env.Data.OutputVersionID)
	})

	t.Run("no endpoint", func(t *testing.T) {
		org := pg.Org(t)
		pr := pg.Project(t, org.ID, func(p *db.ProjectCreateParams) { p.LlmEnabled, p.LlmModel = true, "gpt-4o-mini" })
		v := w.validVersion(pg.File(t, pr, "quiet.txt"), "text/plain", []byte("Quiet."), nil)
		require.NoError(t, w.process(v))
		require.Equal(t, db.LlmRunStatusSucceeded, w.run(v).Status)
		testenv.RequireNoWebhookEvent(t, pg.Pool, org.ID, db.EntityTypeFileVersion, v.ID)
		require.NotContains(t, testenv.Kinds(testenv.OutboxRows(t, pg.Pool, org.ID)), tasks.WebhookDeliver{}.Kind())
	})
}
