package preannotate_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/preannotate"
)

// minimal is the reply the test server generates for labelSchema.
func minimal(t *testing.T) string {
	t.Helper()
	v, err := llmtest.MinimalInstance(json.RawMessage(labelSchema))
	require.NoError(t, err)
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// preannotation reads the version's pre-annotation status and reason.
func (w *fixture) preannotation(v db.FileVersion) (*db.LlmRunStatus, *string) {
	w.t.Helper()
	got, err := w.env.PG.Q.FileVersionGetByID(context.Background(), v.ID)
	require.NoError(w.t, err)
	return got.PreannotationStatus, got.PreannotationReason
}

func TestWrappedRepliesAreStoredUnwrappedWithoutARepairCall(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	for i, tc := range []struct {
		wrap llmtest.Wrap
		how  string
	}{
		{llmtest.WrapFence, "code_fence"},
		{llmtest.WrapBareFence, "code_fence"},
		{llmtest.WrapChattyFence, "code_fence"},
		{llmtest.WrapProse, "prose"},
	} {
		t.Run(string(tc.wrap), func(t *testing.T) {
			before := w.srv.Stats().Requests
			v := w.valid(string(tc.wrap)+".txt", "text/plain", []byte(strings.Repeat("Good. ", i+1)), nil)
			w.srv.Next(llmtest.Fault{Wrap: tc.wrap})

			require.NoError(t, w.process(v))
			require.Equal(t, before+1, w.srv.Stats().Requests, "no repair call for a wrapped reply")
			rec, _ := w.srv.LastRequest()
			require.Len(t, rec.Messages, 2, "the call was the first attempt, not a repair")

			run := w.run(v)
			require.Equal(t, db.LlmRunStatusSucceeded, run.Status)
			require.Equal(t, int32(1), run.Attempts)
			require.True(t, run.OutputUnwrapped, "the run records that the reply was unwrapped")
			out, err := w.env.PG.Q.FileVersionGetByID(context.Background(), *run.OutputVersionID)
			require.NoError(t, err)
			require.Equal(t, minimal(t), string(w.object(out.StoragePath)), "the clean value is stored, not the wrapping")
			var params map[string]any
			require.NoError(t, json.Unmarshal(out.LlmParams, &params))
			require.Equal(t, tc.how, params["unwrapped"])
		})
	}

	t.Run("a bare reply is not marked", func(t *testing.T) {
		v := w.valid("bare.txt", "text/plain", []byte("Bare."), nil)
		require.NoError(t, w.process(v))
		run := w.run(v)
		require.False(t, run.OutputUnwrapped)
		out, err := w.env.PG.Q.FileVersionGetByID(context.Background(), *run.OutputVersionID)
		require.NoError(t, err)
		require.NotContains(t, string(out.LlmParams), "unwrapped")
	})
}

func TestRepliesStillInvalidAfterUnwrappingGetTheRepairCall(t *testing.T) {
	t.Parallel()
	good := minimal(t)
	for _, tc := range []struct {
		name  string
		fault llmtest.Fault
	}{
		{"a wrapped reply that fails the schema", llmtest.Fault{Wrap: llmtest.WrapFence, SchemaViolation: true}},
		{"two JSON values", llmtest.Fault{Content: "```json\n" + good + "\n```\nor\n```json\n" + good + "\n```"}},
		{"no JSON at all", llmtest.Fault{Content: "I think this review is positive."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
			v := w.valid("r.txt", "text/plain", []byte("Nice."), nil)
			w.srv.Next(tc.fault)

			require.NoError(t, w.process(v))
			reqs := w.srv.Requests()
			require.Len(t, reqs, 2, "one repair call")
			require.Len(t, reqs[1].Messages, 4)
			run := w.run(v)
			require.Equal(t, db.LlmRunStatusSucceeded, run.Status)
			require.Equal(t, int32(2), run.Attempts)
			require.False(t, run.OutputUnwrapped, "the repaired reply came bare")
		})
	}
}

func TestFailedRunKeepsABoundedRawReplyAndTheVersionSaysWhy(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema),
		func(p *db.ProjectCreateParams) { p.LlmMaxTokens = 16000 }}}) // the reply is not cut by max tokens
	v := w.valid("long.txt", "text/plain", []byte("Rambling."), nil)
	long := strings.Repeat("Let me think about this review step by step — ", 600) // ≈ 28 KB, not JSON
	w.srv.Next(llmtest.Fault{Content: long}, llmtest.Fault{Content: long})

	err := w.process(v)
	require.ErrorIs(t, err, asynq.SkipRetry)
	run := w.run(v)
	require.Equal(t, db.LlmRunStatusFailed, run.Status)
	require.NotNil(t, run.RawOutput)
	require.LessOrEqual(t, len(*run.RawOutput), preannotate.MaxRawOutput)
	require.Greater(t, len(*run.RawOutput), preannotate.MaxRawOutput-8, "cut at the bound, not far before")
	require.True(t, utf8.ValidString(*run.RawOutput), "cut on a character boundary")
	require.True(t, strings.HasPrefix(long, strings.TrimSuffix(*run.RawOutput, "…")))

	status, reason := w.preannotation(v)
	require.Equal(t, db.LlmRunStatusFailed, *status)
	require.Equal(t, *run.Error, *reason)
	require.Contains(t, *reason, "even after one repair attempt")
}

func TestVersionCarriesItsPreannotationStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("succeeded", func(t *testing.T) {
		t.Parallel()
		w := newFixture(t, fixtureOpts{})
		v := w.valid("ok.txt", "text/plain", []byte("Fine."), nil)
		status, _ := w.preannotation(v)
		require.Nil(t, status, "never asked")
		require.NoError(t, w.process(v))
		status, reason := w.preannotation(v)
		require.Equal(t, db.LlmRunStatusSucceeded, *status)
		require.Nil(t, reason)
	})

	t.Run("waiting for the daily budget", func(t *testing.T) {
		t.Parallel()
		w := newFixture(t, fixtureOpts{
			options: preannotate.Options{BudgetJitter: time.Minute},
			project: []testenv.ProjectOpt{func(p *db.ProjectCreateParams) { p.LlmDailyTokenBudget = ptr(int64(1)) }},
		})
		first := w.valid("a.txt", "text/plain", []byte("One."), nil)
		require.NoError(t, w.process(first))
		second := w.valid("b.txt", "text/plain", []byte("Two."), nil)
		retryAfter(t, w.process(second))
		status, reason := w.preannotation(second)
		require.Equal(t, db.LlmRunStatusPending, *status)
		require.Contains(t, *reason, "daily token budget")
	})

	t.Run("disabled project", func(t *testing.T) {
		t.Parallel()
		w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{func(p *db.ProjectCreateParams) { p.LlmEnabled = false; p.LlmModel = "" }}})
		v := w.valid("off.txt", "text/plain", []byte("Off."), nil)
		require.NoError(t, w.process(v))
		status, reason := w.preannotation(v)
		require.Equal(t, db.LlmRunStatusSkipped, *status)
		require.Contains(t, *reason, "disabled")
	})

	t.Run("a version that cannot be pre-annotated", func(t *testing.T) {
		t.Parallel()
		w := newFixture(t, fixtureOpts{})
		v := w.valid("corrupt.txt", "text/plain", []byte("x"), nil)
		_, err := w.env.PG.Pool.Exec(ctx, `UPDATE file_versions SET validation_status = 'corrupt', validation_error = 'bad' WHERE id = $1`, v.ID)
		require.NoError(t, err)
		require.ErrorIs(t, w.process(v), asynq.SkipRetry)
		status, reason := w.preannotation(v)
		require.Equal(t, db.LlmRunStatusSkipped, *status)
		require.Contains(t, *reason, "only valid versions are pre-annotated")
	})

	t.Run("settings changed: the latest run speaks for the version", func(t *testing.T) {
		t.Parallel()
		w := newFixture(t, fixtureOpts{})
		v := w.valid("s.txt", "text/plain", []byte("Settings."), nil)
		w.srv.Next(llmtest.Fault{Status: 400})
		require.ErrorIs(t, w.process(v), asynq.SkipRetry)
		status, _ := w.preannotation(v)
		require.Equal(t, db.LlmRunStatusFailed, *status)

		_, err := w.env.PG.Pool.Exec(ctx, `UPDATE projects SET requirements_text = 'Other instructions.' WHERE id = $1`, w.project.ID)
		require.NoError(t, err)
		require.NoError(t, w.process(v))
		runs := w.runs(v)
		require.Len(t, runs, 2)
		status, reason := w.preannotation(v)
		require.Equal(t, db.LlmRunStatusSucceeded, *status)
		require.Nil(t, reason)

		// The old run written again (a late task of the old settings) does not
		// speak for the version.
		old, err := w.env.PG.Q.LLMRunRecord(ctx, db.LLMRunRecordParams{ID: runs[0].ID, Status: db.LlmRunStatusRunning})
		require.NoError(t, err)
		require.Equal(t, db.LlmRunStatusRunning, old.Status)
		status, _ = w.preannotation(v)
		require.Equal(t, db.LlmRunStatusSucceeded, *status)
	})
}

func TestReservationsAreSettledAtWhatTheReplyUsed(t *testing.T) {
	t.Parallel()
	// A reservation is the prompt (≈100 tokens) plus 1,024 max tokens; a reply
	// uses ≈ 110. With a burst of 1,200 and 180 tokens a second, a second call
	// right after the first fits only if the first's unused tokens came back:
	// held, it waits about 5 s, past the 3 s the limiter sleeps through.
	limits := ratelimit.Config{TokensPerMinute: 12_000, TokenBurst: 1200, Headroom: -1}
	for _, tc := range []struct {
		name     string
		noRefund bool
	}{{"settled", false}, {"held (NoRefund)", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := limits
			l.NoRefund = tc.noRefund
			w := newFixture(t, fixtureOpts{limits: l})
			a := w.valid("a.txt", "text/plain", []byte("First."), nil)
			b := w.valid("b.txt", "text/plain", []byte("Second."), nil)
			require.NoError(t, w.process(a))
			err := w.process(b)
			if tc.noRefund {
				require.Greater(t, retryAfter(t, err), 3*time.Second, "the whole reservation stayed spent")
				require.Equal(t, 1, w.srv.Stats().Requests)
				return
			}
			require.NoError(t, err, "the first call's unused tokens came back")
			require.Equal(t, 2, w.srv.Stats().Requests)
		})
	}
}
