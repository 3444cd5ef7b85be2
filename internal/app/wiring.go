package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/reconcile"
	"github.com/labelq/labelq/internal/retention"
	"github.com/labelq/labelq/internal/schedule"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// Mount registers task handlers on a worker's mux, one tasks.Register line per
// task type. cmd/labelq supplies it: the worker packages are linked there, not
// here, so nothing under internal/ imports a worker.
type Mount func(a *App, mux *asynq.ServeMux)

// MountMaintenance registers the handlers of the maintenance kinds this package
// owns (reconciler, export and storage sync schedules).
func (a *App) MountMaintenance(mux *asynq.ServeMux) {
	tasks.Register(mux, a.Reconciler().Work)
	// No Now: a firing's tick is read from the database's clock, whatever this
	// host's says.
	tasks.Register(mux, (&schedule.Handler{Pool: a.Pool, Log: a.Log}).Work)
	tasks.Register(mux, (&schedule.SyncHandler{Pool: a.Pool, Log: a.Log}).Work)
	tasks.Register(mux, a.Retention().Work)
}

// Retention is the maintenance:retention handler with the configured retentions.
func (a *App) Retention() *retention.Cleaner {
	return &retention.Cleaner{Pool: a.Pool, Log: a.Log, Now: a.Now, Keep: retention.Settings{
		EventLog: a.Cfg.EventLogRetention, Outbox: a.Cfg.OutboxRetention, IdempotencyKeys: a.Cfg.IdempotencyRetention,
		LLMRuns: a.Cfg.LLMRunRetention, SyncRuns: a.Cfg.SyncRunRetention,
	}}
}

// Unconfigured is the handler of a task type whose settings cannot work: every
// task is retried in a minute with the reason, and other task types go on.
func Unconfigured(kind string, err error) asynq.Handler {
	return asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return queue.RetryAfter(time.Minute, fmt.Errorf("%s is not configured: %w", kind, err))
	})
}

// LLMClient builds the model client and the shared rate limiter from the
// settings.
func (a *App) LLMClient() (*llm.Client, *ratelimit.Limiter, error) {
	prices, err := llm.ParsePrices(a.Cfg.LLMPrices) // checked by config already
	if err != nil {
		return nil, nil, err
	}
	reasoning, err := llm.ParseReasoningModels(a.Cfg.LLMReasoningModels) // checked by config already
	if err != nil {
		return nil, nil, err
	}
	client, err := llm.NewClient(llm.Config{BaseURL: a.Cfg.LLMBaseURL, APIKey: a.Cfg.LLMAPIKey, Timeout: a.Cfg.LLMTimeout, Prices: prices,
		ReasoningModels: reasoning})
	if err != nil {
		return nil, nil, err
	}
	rdb, err := a.redisClient()
	if err != nil {
		return nil, nil, err
	}
	lim, err := ratelimit.New(rdb, ratelimit.Config{
		Prefix:            ratelimit.PrefixFor(a.Cfg.LLMBaseURL),
		RequestsPerMinute: a.Cfg.LLMRequestsPerMinute,
		TokensPerMinute:   a.Cfg.LLMTokensPerMinute,
		MaxConcurrent:     a.Cfg.LLMMaxConcurrent,
	})
	if err != nil {
		return nil, nil, err
	}
	return client, lim, nil
}

// Reconciler is the maintenance:reconcile handler with every kind of stuck row.
func (a *App) Reconciler() *reconcile.Reconciler {
	return &reconcile.Reconciler{
		// No OutboxKeep: Retention deletes relayed outbox rows, in batches.
		Pool: a.Pool, Inspector: a.Inspector, Redis: a.Redis, Log: a.Log, After: a.Cfg.ReconcileAfter, Now: a.Now,
		Finders: reconcile.Finders(), Metrics: a.Metrics,
	}
}

// periodicTasks lists the scheduler's periodic tasks: maintenance plus one per
// enabled export schedule and one per scheduled import storage. Uniqueness makes a
// second scheduler copy harmless for maintenance; export and sync ticks are made
// unique by the database (see internal/schedule).
func (a *App) periodicTasks() asynq.PeriodicTaskConfigProvider {
	return &schedule.Provider{Pool: a.Pool, Log: a.Log, MinInterval: a.Cfg.ScheduleMinInterval, Static: func() ([]*asynq.PeriodicTaskConfig, error) {
		reconcile, err := tasks.Periodic(tasks.Reconcile{}, a.Cfg.ReconcileInterval)
		if err != nil {
			return nil, err
		}
		retention, err := tasks.Periodic(tasks.ExportRetention{}, time.Hour)
		if err != nil {
			return nil, err
		}
		webhooks, err := tasks.Periodic(tasks.WebhookRetention{}, time.Hour)
		if err != nil {
			return nil, err
		}
		tables, err := tasks.Periodic(tasks.Retention{}, time.Hour)
		if err != nil {
			return nil, err
		}
		return []*asynq.PeriodicTaskConfig{reconcile, retention, webhooks, tables}, nil
	}}
}

// mountAPI mounts the /v1 API and its OpenAPI document.
func (a *App) mountAPI(mux *http.ServeMux) {
	s := &api.Server{
		Pool: a.APIPool, Store: a.Store, Inspector: a.Inspector, Log: a.Log, Metrics: a.Metrics,
		MaxBodyBytes: a.Cfg.MaxBodyBytes, UploadURLTTL: a.Cfg.UploadURLTTL, ExportURLTTL: a.Cfg.ExportURLTTL, Now: a.Now,
		Quotas: a.apiQuotas(), Storages: a.Storages, PublicURL: a.Cfg.PublicURL,
		WebhookPolicy: a.webhookPolicy(), WebhookSecretOverlap: a.Cfg.WebhookSecretOverlap,
		HeartbeatInterval: a.Cfg.HeartbeatInterval,
	}
	s.Register(mux)
}

// webhookPolicy is the webhook URL and address policy of the settings (validated
// when they were loaded, so an error here is a bug: the strictest policy then).
func (a *App) webhookPolicy() *delivery.Policy {
	p, err := delivery.ParsePolicy(a.Cfg.WebhookAllowHTTP, a.Cfg.WebhookAllowedNetworks)
	if err != nil {
		a.Log.Error("webhook policy", slog.String("error", err.Error()))
		p, _ = delivery.ParsePolicy("", "")
	}
	return p
}
