package main

import (
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/verify"
	"github.com/labelq/labelq/worker/export"
	"github.com/labelq/labelq/worker/match"
	"github.com/labelq/labelq/worker/preannotate"
	storagesync "github.com/labelq/labelq/worker/sync"
	"github.com/labelq/labelq/worker/validate"
)

// mountWorkers is the one place the worker packages are linked: one line per task
// type (see the README's "Adding a task type").
func mountWorkers(a *app.App, mux *asynq.ServeMux) {
	tasks.Register(mux, validate.NewHandler(validate.Deps{Pool: a.Pool, Store: a.Store, Storages: a.Storages, Log: a.Log, Metrics: a.Metrics, Now: a.Now,
		Options: validate.Options{Verify: verify.Options{MaxArchiveDepth: a.Cfg.ArchiveMaxDepth}}}).Work)
	mountPreannotate(a, mux)
	tasks.Register(mux, match.NewHandler(match.Deps{Pool: a.Pool, Log: a.Log, Metrics: a.Metrics, Now: a.Now}).Work)
	tasks.Register(mux, export.NewHandler(export.Deps{Pool: a.Pool, Store: a.Store, Storages: a.Storages, Log: a.Log, Metrics: a.Metrics, Now: a.Now, Version: app.Version}).Work)
	tasks.Register(mux, storagesync.NewHandler(storagesync.Deps{Pool: a.Pool, Storages: a.Storages, Log: a.Log, Now: a.Now}).Work)
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
