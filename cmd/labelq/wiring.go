package main

import (
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/verify"
	"github.com/labelq/labelq/internal/webhook/delivery"
	"github.com/labelq/labelq/worker/consensus"
	"github.com/labelq/labelq/worker/export"
	"github.com/labelq/labelq/worker/match"
	"github.com/labelq/labelq/worker/preannotate"
	"github.com/labelq/labelq/worker/score"
	storagesync "github.com/labelq/labelq/worker/sync"
	"github.com/labelq/labelq/worker/validate"
	webhookdeliver "github.com/labelq/labelq/worker/webhook"
)

// mountWorkers is the one place the worker packages are linked: one line per task
// type (see the README's "Adding a task type").
func mountWorkers(a *app.App, mux *asynq.ServeMux) {
	tasks.Register(mux, validate.NewHandler(validate.Deps{Pool: a.Pool, Store: a.Store, Storages: a.Storages, Log: a.Log, Metrics: a.Metrics, Now: a.Now,
		Options: validate.Options{Verify: verify.Options{MaxArchiveDepth: a.Cfg.ArchiveMaxDepth}}}).Work)
	mountPreannotate(a, mux)
	tasks.Register(mux, match.NewHandler(match.Deps{Pool: a.Pool, Log: a.Log, Metrics: a.Metrics, Now: a.Now}).Work)
	tasks.Register(mux, score.NewHandler(score.Deps{Pool: a.Pool, Storages: a.Storages, Log: a.Log, Now: a.Now}).Work)
	tasks.Register(mux, consensus.NewHandler(consensus.Deps{Pool: a.Pool, Store: a.Store, Storages: a.Storages, Log: a.Log, Now: a.Now}).Work)
	tasks.Register(mux, export.NewHandler(export.Deps{Pool: a.Pool, Store: a.Store, Storages: a.Storages, Log: a.Log, Metrics: a.Metrics, Now: a.Now, Version: app.Version, Heartbeat: a.Cfg.HeartbeatInterval}).Work)
	tasks.Register(mux, storagesync.NewHandler(storagesync.Deps{Pool: a.Pool, Storages: a.Storages, Log: a.Log, Now: a.Now, Heartbeat: a.Cfg.HeartbeatInterval}).Work)
	mountWebhooks(a, mux)
	tasks.Register(mux, (&export.RetentionHandler{Pool: a.Pool, Store: a.Store, Storages: a.Storages, Log: a.Log, Retention: a.Cfg.ExportRetention, OrphanGrace: a.Cfg.ExportOrphanGrace, Now: a.Now}).Work)
}

// mountPreannotate builds file:preannotate from the LLM settings. Settings that
// cannot work are reported on every task (retried in a minute), not fatal to the
// other task types.
func mountPreannotate(a *app.App, mux *asynq.ServeMux) {
	kind := tasks.Preannotate{}.Kind()
	client, lim, err := a.LLMClient()
	if err != nil {
		a.Log.Error(kind+" is not available", slog.String("error", err.Error()))
		mux.Handle(kind, app.Unconfigured(kind, err))
		return
	}
	tasks.Register(mux, preannotate.NewHandler(preannotate.Deps{Pool: a.Pool, Store: a.Store, Storages: a.Storages, LLM: client, Limiter: lim,
		Log: a.Log, Metrics: a.Metrics, Now: a.Now}).Work)
}

// mountWebhooks builds webhook:deliver and its retention pass. The settings were
// validated at start-up; a Redis client that cannot be made is reported on every
// task, as for pre-annotation.
func mountWebhooks(a *app.App, mux *asynq.ServeMux) {
	tasks.Register(mux, (&webhookdeliver.RetentionHandler{Pool: a.Pool, Retention: a.Cfg.WebhookRetention, Log: a.Log, Now: a.Now}).Work)
	kind := tasks.WebhookDeliver{}.Kind()
	rdb, err := a.RedisClient()
	var pol *delivery.Policy
	var sched delivery.Schedule
	if err == nil {
		pol, err = delivery.ParsePolicy(a.Cfg.WebhookAllowHTTP, a.Cfg.WebhookAllowedNetworks)
	}
	if err == nil {
		sched, err = delivery.ParseSchedule(a.Cfg.WebhookRetrySchedule)
	}
	if err != nil {
		a.Log.Error(kind+" is not available", slog.String("error", err.Error()))
		mux.Handle(kind, app.Unconfigured(kind, err))
		return
	}
	tasks.Register(mux, webhookdeliver.NewHandler(webhookdeliver.Deps{
		Pool: a.Pool, Redis: rdb, Keys: a.Keys, Policy: pol, Schedule: sched, Timeout: a.Cfg.WebhookTimeout,
		Concurrency: a.Cfg.WebhookConcurrency, DisableAfter: a.Cfg.WebhookDisableAfter, Metrics: a.Metrics, Log: a.Log, Now: a.Now,
	}).Work)
}
