package preannotate_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/preannotate"
)

// The dashboard's LLM panels and LabelqLLMBudgetExhausted: a provider 429 is a
// rate_limited call, a reply an ok call with its price, and a task put off by a
// spent daily budget is counted without a call.
func TestCallsCostAndSpentBudgetsAreCounted(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{
		options: preannotate.Options{BudgetJitter: time.Second},
		project: []testenv.ProjectOpt{func(p *db.ProjectCreateParams) { p.LlmDailyTokenBudget = ptr(int64(50)) }},
	})
	m := metrics.New()
	w.h = preannotate.NewHandler(preannotate.Deps{
		Pool: w.env.PG.Pool, Store: w.env.S3.Store, Storages: w.res, LLM: w.client, Limiter: w.limiter,
		Log: w.log, Metrics: m,
	})
	first := w.valid("1.txt", "text/plain", []byte("First review of the day."), nil)
	second := w.valid("2.txt", "text/plain", []byte("Second review of the day."), nil)

	w.srv.Next(llmtest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	retryAfter(t, w.process(first))
	require.NoError(t, w.process(first))
	retryAfter(t, w.process(second)) // the first spent the day's 50 tokens

	calls := func(outcome string) float64 { return counted(t, m.LLMCalls.WithLabelValues(outcome)) }
	require.Equal(t, 1.0, calls("rate_limited"))
	require.Equal(t, 1.0, calls("ok"))
	require.Zero(t, calls("transient")+calls("permanent")+calls("refusal"))
	require.Equal(t, 1.0, counted(t, m.LLMBudgetExhausted))
	run := w.run(first)
	require.Positive(t, run.CostUsd)
	require.InDelta(t, run.CostUsd, counted(t, m.LLMCost), 1e-12, "the counter adds what the run was charged")
}

// counted is a counter's value.
func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
