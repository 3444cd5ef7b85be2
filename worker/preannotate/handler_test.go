package preannotate_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/preannotate"
)

func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	var ra *queue.RetryAfterError
	require.ErrorAs(t, err, &ra, "want a RetryAfterError, got %v", err)
	require.NotErrorIs(t, err, asynq.SkipRetry)
	return ra.After
}

func TestStructuredOutputIsStoredAndLinked(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	v := w.valid("review-1.txt", "text/plain; charset=utf-8", []byte("Great value, would buy again."), nil)

	require.NoError(t, w.process(v))

	reqs := w.srv.Requests()
	require.Len(t, reqs, 1)
	require.True(t, reqs[0].Strict(), "structured output is requested strictly")
	require.JSONEq(t, labelSchema, string(reqs[0].Schema()))
	require.Contains(t, reqs[0].Messages[0].Content, "Label the sentiment of the review.", "requirements_text is the instructions")
	require.Contains(t, reqs[0].Messages[1].Content, "Great value, would buy again.")

	run := w.run(v)
	require.Equal(t, db.LlmRunStatusSucceeded, run.Status)
	require.Equal(t, int32(1), run.Attempts)
	require.Equal(t, "gpt-4o-mini", run.Model)
	require.Equal(t, *v.Checksum, run.InputSha256)
	require.Positive(t, run.PromptTokens)
	require.Positive(t, run.CompletionTokens)
	require.Positive(t, run.CostUsd)
	require.Nil(t, run.CachedFromID)
	require.Nil(t, run.Error)
	require.Nil(t, run.RawOutput)
	require.NotNil(t, run.FinishedAt)
	require.NotNil(t, run.OutputVersionID)

	ctx := context.Background()
	out, err := w.env.PG.Q.FileVersionGetByID(ctx, *run.OutputVersionID)
	require.NoError(t, err)
	require.Equal(t, db.GenerationMethodLlm, out.GenerationMethod)
	require.Equal(t, v.ID, *out.SourceFileVersionID)
	require.Equal(t, "gpt-4o-mini", *out.LlmModel)
	require.Equal(t, db.ValidationStatusValid, out.ValidationStatus)
	require.Equal(t, "application/json", *out.MimeType)
	var params map[string]any
	require.NoError(t, json.Unmarshal(out.LlmParams, &params))
	require.Equal(t, run.PromptHash, params["prompt_hash"])
	require.Equal(t, run.SchemaHash, params["schema_hash"])
	require.EqualValues(t, 1024, params["max_tokens"])
	require.EqualValues(t, 0, params["temperature"])

	body := w.object(out.StoragePath)
	require.JSONEq(t, `{"label":"positive","confidence":0}`, string(body), "the stored object is the model's reply")
	require.Equal(t, testenv.SHA256Hex(body), *out.Checksum)
	require.Equal(t, int64(len(body)), *out.SizeBytes)
	require.True(t, strings.HasPrefix(out.StoragePath, "orgs/"), out.StoragePath)

	f, err := w.env.PG.Q.FileGet(ctx, db.FileGetParams{ID: out.FileID, OrgID: v.OrgID})
	require.NoError(t, err)
	require.Equal(t, "review-1.txt.llm.json", f.Name)
	require.Equal(t, db.FileTypeLlmOutput, f.FileType)
	require.Equal(t, out.ID, *f.ActiveVersionID)
	require.Equal(t, db.FileStatusReadyForAnnotation, f.Status, "annotators see the output next to the raw file")
	require.Equal(t, []string{"preannotated"}, w.events(v))
	require.NotContains(t, w.logs.String(), llmtest.DefaultAPIKey)
}

func TestPlainTextAndImages(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{serverOpts: []llmtest.Option{llmtest.WithReply(func(llmtest.RecordedRequest) string {
		return "A short, positive review."
	})}})
	text := w.valid("notes.md", "text/markdown", []byte("# Notes\nThe product arrived on time."), nil)
	png := w.valid("photo.png", "image/png", []byte("\x89PNG\r\n\x1a\nnot really an image"), nil)

	require.NoError(t, w.process(text))
	require.NoError(t, w.process(png))

	reqs := w.srv.Requests()
	require.Len(t, reqs, 2)
	require.Nil(t, reqs[0].ResponseFormat, "no schema: a natural-language reply")
	require.Len(t, reqs[1].Messages[1].Parts, 2, "the image goes as an image part")
	require.True(t, strings.HasPrefix(reqs[1].Messages[1].Parts[1].ImageURL, "data:image/png;base64,"))

	out, err := w.env.PG.Q.FileVersionGetByID(context.Background(), *w.run(text).OutputVersionID)
	require.NoError(t, err)
	require.Equal(t, "text/plain; charset=utf-8", *out.MimeType)
	require.Equal(t, "A short, positive review.", string(w.object(out.StoragePath)))
	f, err := w.env.PG.Q.FileGet(context.Background(), db.FileGetParams{ID: out.FileID, OrgID: text.OrgID})
	require.NoError(t, err)
	require.Equal(t, "notes.md.llm.txt", f.Name)
	require.Equal(t, db.LlmRunStatusSucceeded, w.run(png).Status)
}

func TestDuplicateContentMakesNoSecondCall(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	content := []byte("Terrible. Broke after a day.")
	first := w.valid("a.txt", "text/plain", content, nil)
	dup := w.valid("b.txt", "text/plain", content, &first.ID) // marked duplicate_of by file:validate
	sameBytes := w.valid("c.csv", "text/plain", content, nil) // same bytes, another file
	sameName := w.validVersion(w.env.PG.File(t, w.project, "d.txt"), "text/plain", content, &first.ID)

	require.NoError(t, w.process(first))
	require.Equal(t, 1, w.srv.Stats().Requests)
	for _, v := range []db.FileVersion{dup, sameBytes, sameName} {
		require.NoError(t, w.process(v))
	}
	require.Equal(t, 1, w.srv.Stats().Requests, "identical content is paid for once")

	paid := w.run(first)
	want := w.object(mustVersion(t, w, *paid.OutputVersionID).StoragePath)
	for _, v := range []db.FileVersion{dup, sameBytes, sameName} {
		r := w.run(v)
		require.Equal(t, db.LlmRunStatusSucceeded, r.Status)
		require.Equal(t, paid.ID, *r.CachedFromID)
		require.Zero(t, r.Attempts)
		require.Zero(t, r.PromptTokens+r.CompletionTokens)
		out := mustVersion(t, w, *r.OutputVersionID)
		require.Equal(t, v.ID, *out.SourceFileVersionID, "the output is linked to this version")
		require.NotEqual(t, paid.OutputVersionID, r.OutputVersionID)
		require.Equal(t, want, w.object(out.StoragePath), "same output bytes, in this version's own object")
		require.Equal(t, []string{"preannotated"}, w.events(v))
	}

	usage, err := w.env.PG.Q.LLMUsageByProject(context.Background(), db.LLMUsageByProjectParams{ProjectID: w.project.ID, OrgID: w.org.ID})
	require.NoError(t, err)
	require.Equal(t, int64(1), usage.PaidCalls)
	require.Equal(t, int64(3), usage.CacheHits)
}

func mustVersion(t *testing.T, w *fixture, id int64) db.FileVersion {
	t.Helper()
	v, err := w.env.PG.Q.FileVersionGetByID(context.Background(), id)
	require.NoError(t, err)
	return v
}

func TestIdenticalContentAtOnceIsPaidOnce(t *testing.T) {
	t.Parallel()
	for _, sameVersion := range []bool{false, true} {
		name := "two versions with the same bytes"
		if sameVersion {
			name = "the same version twice (the pipeline's task and an explicit re-run)"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newFixture(t, fixtureOpts{
				serverOpts: []llmtest.Option{llmtest.WithLatency(500 * time.Millisecond)},
				options:    preannotate.Options{BusyRetry: 100 * time.Millisecond},
			})
			content := []byte("Same bytes, two tasks at the same moment.")
			a := w.valid("a.txt", "text/plain", content, nil)
			b := a
			if !sameVersion {
				b = w.valid("b.txt", "text/plain", content, nil)
			}

			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, v := range []db.FileVersion{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = w.process(v)
				}()
			}
			wg.Wait()
			waited := b
			if errs[0] != nil {
				errs[0], errs[1] = errs[1], errs[0]
				waited = a
			}
			require.NoError(t, errs[0])
			retryAfter(t, errs[1])
			require.Equal(t, 1, w.srv.Stats().Requests, "the second task did not call the model")

			// Its retry reuses the first one's output, or finds the run done.
			require.NoError(t, w.process(waited))
			require.Equal(t, 1, w.srv.Stats().Requests)
			var outputs int
			require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(),
				`SELECT count(*) FROM file_versions WHERE generation_method = 'llm'`).Scan(&outputs))
			if sameVersion {
				require.Equal(t, 1, outputs, "one output, not two")
				require.Nil(t, w.run(a).CachedFromID)
			} else {
				require.Equal(t, 2, outputs)
				require.NotNil(t, w.run(waited).CachedFromID)
			}
		})
	}
}

func TestRateLimitedThenSucceedsHonouringRetryAfter(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	v := w.valid("r.txt", "text/plain", []byte("Fine."), nil)
	w.srv.Next(llmtest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})

	err := w.process(v)
	after := retryAfter(t, err)
	require.GreaterOrEqual(t, after, time.Second, "never earlier than the provider asked")
	require.Less(t, after, 1200*time.Millisecond)
	run := w.run(v)
	require.Equal(t, db.LlmRunStatusRunning, run.Status)
	require.Equal(t, int32(1), run.Attempts)
	require.Contains(t, *run.Error, "rate limiting")

	// The 429 paused every worker sharing the limiter: the next call waits out
	// the rest of the provider's second even though this task came back early.
	require.NoError(t, w.process(v))
	reqs := w.srv.Requests()
	require.Len(t, reqs, 2)
	require.GreaterOrEqual(t, reqs[1].Time.Sub(reqs[0].Time), 900*time.Millisecond)
	run = w.run(v)
	require.Equal(t, db.LlmRunStatusSucceeded, run.Status)
	require.Equal(t, int32(2), run.Attempts)
	require.Nil(t, run.Error)
}

func TestServerErrorsRetryWithBackoff(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	v := w.valid("s.txt", "text/plain", []byte("Okay."), nil)
	w.srv.Next(llmtest.Fault{Status: http.StatusInternalServerError}, llmtest.Fault{Malformed: true})

	for _, want := range []string{"500", "malformed"} {
		err := w.process(v)
		require.Error(t, err)
		var ra *queue.RetryAfterError
		require.False(t, errors.As(err, &ra), "a plain error: asynq's exponential backoff applies")
		require.NotErrorIs(t, err, asynq.SkipRetry)
		run := w.run(v)
		require.Equal(t, db.LlmRunStatusRunning, run.Status)
		require.Contains(t, *run.Error, want)
	}
	require.NoError(t, w.process(v))
	run := w.run(v)
	require.Equal(t, db.LlmRunStatusSucceeded, run.Status)
	require.Equal(t, int32(3), run.Attempts, "every call is counted")
}

func TestPermanentProviderErrorsFailAtOnceWithoutTheKey(t *testing.T) {
	t.Parallel()
	const wrongKey = "sk-proj-wrongkey-0123456789abcdef0123456789"
	tests := []struct {
		name   string
		key    string
		fault  *llmtest.Fault
		reason string
	}{
		{name: "401 bad key", key: wrongKey, reason: "LABELQ_LLM_API_KEY"},
		{name: "403 echoing the credentials", fault: &llmtest.Fault{Status: http.StatusForbidden, EchoAuth: true}, reason: "LABELQ_LLM_API_KEY"},
		{name: "404 unknown model", fault: &llmtest.Fault{Status: http.StatusNotFound}, reason: "model"},
		{name: "400 context too long", fault: &llmtest.Fault{Status: http.StatusBadRequest, Code: "context_length_exceeded"}, reason: "too long"},
		{name: "refusal", fault: &llmtest.Fault{Refusal: true, EchoAuth: true}, reason: "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newFixture(t, fixtureOpts{clientKey: tc.key})
			v := w.valid("p.txt", "text/plain", []byte("Hello."), nil)
			if tc.fault != nil {
				w.srv.Next(*tc.fault)
			}
			err := w.process(v)
			require.ErrorIs(t, err, asynq.SkipRetry, "not retried")
			require.Contains(t, err.Error(), tc.reason)
			run := w.run(v)
			require.Equal(t, db.LlmRunStatusFailed, run.Status)
			require.Equal(t, int32(1), run.Attempts)
			require.Contains(t, *run.Error, tc.reason)
			require.Equal(t, []string{"preannotation_failed"}, w.events(v))
			require.Equal(t, 1, w.srv.Stats().Requests)

			for _, secret := range []string{llmtest.DefaultAPIKey, wrongKey} {
				require.NotContains(t, err.Error(), secret)
				require.NotContains(t, *run.Error, secret)
				require.NotContains(t, w.logs.String(), secret)
				require.NotContains(t, w.snapshot(), secret, "no row holds the key")
			}
		})
	}
}

func TestSchemaViolationIsRepairedOnce(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	v := w.valid("x.txt", "text/plain", []byte("Meh."), nil)
	w.srv.Next(llmtest.Fault{SchemaViolation: true})

	require.NoError(t, w.process(v))
	reqs := w.srv.Requests()
	require.Len(t, reqs, 2)
	repair := reqs[1].Messages
	require.Equal(t, "assistant", repair[len(repair)-2].Role, "the invalid reply is sent back")
	require.Contains(t, repair[len(repair)-1].Content, "previous reply is invalid")
	run := w.run(v)
	require.Equal(t, db.LlmRunStatusSucceeded, run.Status)
	require.Equal(t, int32(2), run.Attempts)
	require.Equal(t, int32(reqs[0].PromptTokens+reqs[1].PromptTokens), run.PromptTokens, "both calls are paid for")
	out := mustVersion(t, w, *run.OutputVersionID)
	require.NoError(t, llm.ValidateOutput(json.RawMessage(labelSchema), string(w.object(out.StoragePath))))
}

func TestFailedRepairKeepsTheRawReply(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	v := w.valid("y.txt", "text/plain", []byte("Meh."), nil)
	w.srv.Next(llmtest.Fault{SchemaViolation: true}, llmtest.Fault{Content: `{"label": "maybe", "confidence": 2}`})

	err := w.process(v)
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.Equal(t, 2, w.srv.Stats().Requests, "one repair attempt, no more")
	run := w.run(v)
	require.Equal(t, db.LlmRunStatusFailed, run.Status)
	require.Equal(t, int32(2), run.Attempts)
	require.Contains(t, *run.Error, "annotation schema")
	require.Contains(t, *run.Error, "/label")
	require.Equal(t, `{"label": "maybe", "confidence": 2}`, *run.RawOutput, "the raw reply is kept for inspection")
	require.Nil(t, run.OutputVersionID)
	require.Equal(t, []string{"preannotation_failed"}, w.events(v))
}

func TestUnsupportedContentIsSkipped(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	for _, tc := range []struct{ name, mime, reason string }{
		{"archive.zip", "application/zip", "only text"},
		{"talk.mp3", "audio/mpeg", "only text"},
		{"latin1.txt", "text/plain; charset=iso-8859-1", "UTF-8"},
	} {
		v := w.valid(tc.name, tc.mime, []byte("PK\x03\x04 some bytes"), nil)
		require.NoError(t, w.process(v), "skipped is not a failure")
		run := w.run(v)
		require.Equal(t, db.LlmRunStatusSkipped, run.Status, tc.name)
		require.Contains(t, *run.Error, tc.reason)
		require.Zero(t, run.Attempts)
		require.Equal(t, []string{"preannotation_skipped"}, w.events(v))
	}
	require.Zero(t, w.srv.Stats().Requests)
}

func TestSpentDailyBudgetDelaysToTheNextDay(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{
		options: preannotate.Options{BudgetJitter: time.Minute},
		project: []testenv.ProjectOpt{func(p *db.ProjectCreateParams) { p.LlmDailyTokenBudget = ptr(int64(50)) }},
	})
	first := w.valid("1.txt", "text/plain", []byte("First review of the day."), nil)
	second := w.valid("2.txt", "text/plain", []byte("Second review of the day."), nil)

	require.NoError(t, w.process(first), "under budget")
	require.GreaterOrEqual(t, w.run(first).PromptTokens+w.run(first).CompletionTokens, int32(50))

	before := time.Now().UTC()
	err := w.process(second)
	after := retryAfter(t, err)
	midnight := time.Date(before.Year(), before.Month(), before.Day()+1, 0, 0, 0, 0, time.UTC)
	require.GreaterOrEqual(t, before.Add(after), midnight.Add(-time.Second), "not before the next UTC day")
	require.LessOrEqual(t, before.Add(after), midnight.Add(time.Minute+time.Second), "within the jitter after midnight")
	require.Equal(t, 1, w.srv.Stats().Requests, "no call on a spent budget")
	run := w.run(second)
	require.Equal(t, db.LlmRunStatusPending, run.Status, "delayed, not failed")
	require.Contains(t, *run.Error, "daily token budget")
}

func TestDisabledProjectIsSkipped(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	v := w.valid("d.txt", "text/plain", []byte("Hi."), nil)
	_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE projects SET llm_enabled = false WHERE id = $1`, w.project.ID)
	require.NoError(t, err)

	require.NoError(t, w.process(v))
	require.NoError(t, w.process(v))
	require.Zero(t, w.srv.Stats().Requests)
	require.Empty(t, w.runs(v))
	require.Equal(t, []string{"preannotation_skipped"}, w.events(v), "logged once")
}

func TestRerunOfAFinishedTaskChangesNothing(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	done := w.valid("done.txt", "text/plain", []byte("Lovely."), nil)
	cached := w.valid("cached.txt", "text/plain", []byte("Lovely."), &done.ID)
	skipped := w.valid("skipped.zip", "application/zip", []byte("PK"), nil)
	for _, v := range []db.FileVersion{done, cached, skipped} {
		require.NoError(t, w.process(v))
	}
	before := w.snapshot()
	calls := w.srv.Stats().Requests

	for _, v := range []db.FileVersion{done, cached, skipped} {
		require.NoError(t, w.process(v))
	}
	require.Equal(t, calls, w.srv.Stats().Requests, "no call")
	require.Equal(t, before, w.snapshot(), "no row changed")
}

func TestBadTasksEndWithoutRetry(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	for _, payload := range []string{`not json`, `{}`, `{"version_id": -3}`} {
		err := tasks.Handle(w.h.Work).ProcessTask(ctx, asynq.NewTask(tasks.Preannotate{}.Kind(), []byte(payload)))
		require.ErrorIs(t, err, asynq.SkipRetry, payload)
		require.ErrorIs(t, err, tasks.ErrBadPayload)
	}
	err := tasks.Handle(w.h.Work).ProcessTask(ctx, task(t, 987654))
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorIs(t, err, preannotate.ErrVersionNotFound)

	pending := w.env.PG.Upload(t, w.env.S3, w.env.PG.File(t, w.project, ""), []byte("x"), testenv.Declared{})
	err = w.process(pending)
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorIs(t, err, preannotate.ErrNotEligible)
	require.Contains(t, err.Error(), "only valid versions")
	require.Zero(t, w.srv.Stats().Requests)
}

func TestChangedSettingsMakeANewRunAndCloseTheOld(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	v := w.valid("c.txt", "text/plain", []byte("Changing minds."), nil)
	w.srv.Next(llmtest.Fault{Status: http.StatusInternalServerError})
	require.Error(t, w.process(v)) // a run left running, to be retried

	_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE projects SET llm_temperature = 0.7 WHERE id = $1`, w.project.ID)
	require.NoError(t, err)
	require.NoError(t, w.process(v))
	runs := w.runs(v)
	require.Len(t, runs, 2)
	require.Equal(t, db.LlmRunStatusSkipped, runs[0].Status)
	require.Contains(t, *runs[0].Error, "superseded")
	require.Equal(t, db.LlmRunStatusSucceeded, runs[1].Status)
	require.NotEqual(t, runs[0].PromptHash, runs[1].PromptHash)
}

func ptr[T any](v T) *T { return &v }
