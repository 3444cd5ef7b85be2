package preannotate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/config"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/reconcile"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/preannotate"
)

// handlerFromConfig is how internal/app builds the handler from its
// configuration; it lives here so that those lines compile and run in a test.
func handlerFromConfig(cfg *config.Config, deps preannotate.Deps, redisOpt asynq.RedisConnOpt) (*preannotate.Handler, error) {
	prices, err := llm.ParsePrices(cfg.LLMPrices)
	if err != nil {
		return nil, err
	}
	reasoning, err := llm.ParseReasoningModels(cfg.LLMReasoningModels)
	if err != nil {
		return nil, err
	}
	client, err := llm.NewClient(llm.Config{BaseURL: cfg.LLMBaseURL, APIKey: cfg.LLMAPIKey, Timeout: cfg.LLMTimeout, Prices: prices,
		ReasoningModels: reasoning})
	if err != nil {
		return nil, err
	}
	rdb, ok := redisOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("redis connection option %T makes no go-redis client", redisOpt)
	}
	lim, err := ratelimit.New(rdb, ratelimit.Config{
		Prefix:            ratelimit.PrefixFor(cfg.LLMBaseURL),
		RequestsPerMinute: cfg.LLMRequestsPerMinute,
		TokensPerMinute:   cfg.LLMTokensPerMinute,
		MaxConcurrent:     cfg.LLMMaxConcurrent,
	})
	if err != nil {
		return nil, err
	}
	deps.LLM, deps.Limiter = client, lim
	return preannotate.NewHandler(deps), nil
}

// preannotateFinder is the reconciler's finder for stuck pre-annotation runs, as
// the app runs it.
func preannotateFinder() reconcile.Finder {
	for _, f := range reconcile.Finders() {
		if f.Kind == (tasks.Preannotate{}).Kind() {
			return f
		}
	}
	panic("reconcile.Finders has no finder for file:preannotate")
}

func TestHandlerFromConfig(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	const key = "sk-from-the-environment-0123456789"
	srv := llmtest.New(t, llmtest.WithAPIKey(key))
	cfg := w.env.Config(t, map[string]string{
		"LABELQ_LLM_BASE_URL": srv.BaseURL(), "LABELQ_LLM_API_KEY": key,
		"LABELQ_LLM_RPM": "600", "LABELQ_LLM_TPM": "200000", "LABELQ_LLM_MAX_CONCURRENT": "2",
		"LABELQ_LLM_PRICES": "gpt-4o=2.50/10, gpt-4o-mini=0.15/0.60",
	})
	redisOpt, err := cfg.RedisConnOpt()
	require.NoError(t, err)
	m := metrics.New()
	h, err := handlerFromConfig(cfg, preannotate.Deps{
		Pool: w.env.PG.Pool, Store: w.env.S3.Store, Storages: w.res, Log: testenv.Quiet(), Metrics: m, Now: time.Now,
	}, redisOpt)
	require.NoError(t, err)

	v := w.valid("cfg.txt", "text/plain", []byte("Configured from the environment."), nil)
	require.NoError(t, tasks.Handle(h.Work).ProcessTask(context.Background(), task(t, v.ID)))
	require.Equal(t, 1, srv.Stats().Succeeded)
	run := w.run(v)
	require.Equal(t, db.LlmRunStatusSucceeded, run.Status)
	// Priced from LABELQ_LLM_PRICES: the gpt-4o-mini entry, not the gpt-4o one.
	want := (float64(run.PromptTokens)*0.15 + float64(run.CompletionTokens)*0.60) / 1e6
	require.InDelta(t, want, run.CostUsd, 1e-12)
	require.Positive(t, run.CostUsd)

	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	var counted bool
	for _, mf := range mfs {
		if mf.GetName() == "labelq_llm_tokens_total" {
			counted = len(mf.GetMetric()) == 2
		}
	}
	require.True(t, counted, "prompt and completion tokens are counted")
}

func TestReconcilerRequeuesStuckRuns(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	stuck := w.valid("stuck.txt", "text/plain", []byte("Left running when Redis was flushed."), nil)
	done := w.valid("done.txt", "text/plain", []byte("Finished."), nil)
	w.srv.Next(llmtest.Fault{Status: 500})
	require.Error(t, w.process(stuck)) // its retry would have lived in Redis
	require.NoError(t, w.process(done))

	inspector := asynq.NewInspector(w.env.Redis.Opt())
	defer inspector.Close()
	r := &reconcile.Reconciler{
		Pool: w.env.PG.Pool, Inspector: inspector, Log: testenv.Quiet(), After: 5 * time.Minute,
		Finders: []reconcile.Finder{preannotateFinder()},
		// An hour later (updated_at is kept by a trigger, so rows cannot be aged).
		Now: func() time.Time { return time.Now().Add(time.Hour) },
	}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the unfinished run is requeued")

	row := testenv.RequireLatestQueued(t, w.env.PG.Pool, w.org.ID, tasks.Preannotate{VersionID: stuck.ID})
	require.True(t, strings.HasPrefix(row.TaskID, tasks.Preannotate{VersionID: stuck.ID}.TaskID()+":"), "a re-run's task id: %s", row.TaskID)
	require.Len(t, testenv.OutboxRows(t, w.env.PG.Pool, w.org.ID), 1, "only the unfinished run is requeued")

	n, err = r.Run(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "its new task is waiting in the outbox")
}
