package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/reconcile"
	"github.com/labelq/labelq/internal/schedule"
	"github.com/labelq/labelq/worker/export"
	"github.com/labelq/labelq/worker/match"
	"github.com/labelq/labelq/worker/preannotate"
	"github.com/labelq/labelq/worker/validate"
)

// handlers maps each task type to its handler.
func (a *App) handlers() map[string]asynq.Handler {
	return map[string]asynq.Handler{
		reconcile.TypeName:   a.Reconciler(),
		schedule.TypeName:    &schedule.Handler{Pool: a.Pool, Log: a.Log, Now: a.Now},
		match.TypeName:       match.NewHandler(match.Deps{Pool: a.Pool, Log: a.Log, Metrics: a.Metrics, Now: a.Now}),
		validate.TypeName:    validate.NewHandler(validate.Deps{Pool: a.Pool, Store: a.Store, Log: a.Log, Metrics: a.Metrics, Now: a.Now}),
		preannotate.TypeName: a.preannotateHandler(),
		export.TypeName:      export.NewHandler(export.Deps{Pool: a.Pool, Store: a.Store, Log: a.Log, Metrics: a.Metrics, Now: a.Now, Version: Version}),
		export.RetentionTypeName: &export.RetentionHandler{Pool: a.Pool, Store: a.Store, Log: a.Log,
			Retention: a.Cfg.ExportRetention, Now: a.Now},
	}
}

// preannotateHandler builds file:preannotate from the LLM settings. Settings that cannot
// work are reported on every task (retried in a minute), not fatal to other task types.
func (a *App) preannotateHandler() asynq.Handler {
	h, err := a.newPreannotate()
	if err != nil {
		a.Log.Error("file:preannotate is not available", slog.String("error", err.Error()))
		return asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			return queue.RetryAfter(time.Minute, fmt.Errorf("file:preannotate is not configured: %w", err))
		})
	}
	return h
}

func (a *App) newPreannotate() (*preannotate.Handler, error) {
	prices, err := llm.ParsePrices(a.Cfg.LLMPrices) // checked by config already
	if err != nil {
		return nil, err
	}
	client, err := llm.NewClient(llm.Config{BaseURL: a.Cfg.LLMBaseURL, APIKey: a.Cfg.LLMAPIKey, Timeout: a.Cfg.LLMTimeout, Prices: prices})
	if err != nil {
		return nil, err
	}
	rdb, ok := a.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("redis connection option %T makes no go-redis client", a.Redis)
	}
	lim, err := ratelimit.New(rdb, ratelimit.Config{
		Prefix:            ratelimit.PrefixFor(a.Cfg.LLMBaseURL),
		RequestsPerMinute: a.Cfg.LLMRequestsPerMinute,
		TokensPerMinute:   a.Cfg.LLMTokensPerMinute,
		MaxConcurrent:     a.Cfg.LLMMaxConcurrent,
	})
	if err != nil {
		return nil, err
	}
	return preannotate.NewHandler(preannotate.Deps{Pool: a.Pool, Store: a.Store, LLM: client, Limiter: lim,
		Log: a.Log, Metrics: a.Metrics, Now: a.Now}), nil
}

// Reconciler is the maintenance:reconcile handler with every kind of stuck row.
func (a *App) Reconciler() *reconcile.Reconciler {
	return &reconcile.Reconciler{
		Pool: a.Pool, Inspector: a.Inspector, Redis: a.Redis, Log: a.Log, After: a.Cfg.ReconcileAfter,
		OutboxKeep: 24 * time.Hour, Now: a.Now,
		Finders: []reconcile.Finder{
			{
				TaskType: validate.TypeName,
				Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]reconcile.Item, error) {
					rows, err := q.FileVersionListStuckPending(ctx, db.FileVersionListStuckPendingParams{OlderThan: olderThan, MaxRows: limit})
					items := make([]reconcile.Item, len(rows))
					for i, r := range rows {
						items[i] = reconcile.Item{OrgID: r.OrgID, EntityID: r.ID}
					}
					return items, err
				},
				Prefix: validate.TaskIDPrefix,
				Intent: validate.Intent,
			},
			{
				TaskType: export.TypeName,
				Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]reconcile.Item, error) {
					rows, err := q.ExportLogListStuck(ctx, db.ExportLogListStuckParams{OlderThan: olderThan, MaxRows: limit})
					items := make([]reconcile.Item, len(rows))
					for i, r := range rows {
						items[i] = reconcile.Item{OrgID: r.OrgID, EntityID: r.ID}
					}
					return items, err
				},
				Prefix: export.TaskIDPrefix,
				Intent: export.Intent,
			},
			{
				TaskType: preannotate.TypeName,
				Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]reconcile.Item, error) {
					rows, err := q.LLMRunListStuck(ctx, db.LLMRunListStuckParams{OlderThan: olderThan, MaxRows: limit})
					items := make([]reconcile.Item, len(rows))
					for i, r := range rows {
						items[i] = reconcile.Item{OrgID: r.OrgID, EntityID: r.FileVersionID}
					}
					if err != nil {
						return nil, err
					}
					lost, err := q.FileVersionListPreannotationLost(ctx, db.FileVersionListPreannotationLostParams{OlderThan: olderThan, MaxRows: limit})
					for _, r := range lost {
						items = append(items, reconcile.Item{OrgID: r.OrgID, EntityID: r.ID})
					}
					return items, err
				},
				Prefix: preannotate.TaskIDPrefix,
				Intent: preannotate.Intent,
			},
			{
				TaskType: match.TypeName,
				Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]reconcile.Item, error) {
					rows, err := q.ProjectListWithUnmatchedJobs(ctx, db.ProjectListWithUnmatchedJobsParams{OlderThan: olderThan, MaxRows: limit})
					items := make([]reconcile.Item, len(rows))
					for i, r := range rows {
						items[i] = reconcile.Item{OrgID: r.OrgID, EntityID: r.ID}
					}
					return items, err
				},
				Prefix: func(projectID int64) string { return fmt.Sprintf("%s:%d", match.TypeName, projectID) },
				Intent: match.NowIntent,
			},
		},
	}
}

// periodicTasks lists the scheduler's periodic tasks: maintenance plus one per
// enabled export schedule. Uniqueness makes a second scheduler copy harmless for
// maintenance; export ticks are made unique by the database (see internal/schedule).
func (a *App) periodicTasks() asynq.PeriodicTaskConfigProvider {
	return &schedule.Provider{Pool: a.Pool, Log: a.Log, Static: func() []*asynq.PeriodicTaskConfig {
		every := a.Cfg.ReconcileInterval
		return []*asynq.PeriodicTaskConfig{{
			Cronspec: "@every " + every.String(),
			Task:     asynq.NewTask(reconcile.TypeName, []byte(`{}`)),
			Opts:     []asynq.Option{asynq.Queue(queue.QueueDefault), asynq.Unique(every), asynq.MaxRetry(0), asynq.Timeout(every)},
		}, export.RetentionPeriodicTask(time.Hour)}
	}}
}

// mountAPI mounts the /v1 API and its OpenAPI document.
func (a *App) mountAPI(mux *http.ServeMux) {
	s := &api.Server{
		Pool: a.Pool, Store: a.Store, Inspector: a.Inspector, Log: a.Log, Metrics: a.Metrics,
		MaxBodyBytes: a.Cfg.MaxBodyBytes, UploadURLTTL: time.Hour, ExportURLTTL: a.Cfg.ExportURLTTL, Now: a.Now,
	}
	s.Register(mux)
}
