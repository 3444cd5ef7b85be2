package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/labelq/labelq/internal/admission"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
)

// runWorker runs the asynq server with every task handler until ctx ends, then hands
// unfinished tasks back to Redis (asynq's Shutdown re-queues active tasks).
func (a *App) runWorker(ctx context.Context) error {
	if err := queue.Register(ctx, a.Redis); err != nil {
		return err
	}
	cfg := queue.ServerConfig(a.Cfg.WorkerConcurrency, a.Cfg.ShutdownTimeout, a.Log,
		func() context.Context { return context.WithoutCancel(ctx) })
	cfg.TaskCheckInterval = a.Cfg.WorkerPollInterval
	srv, stop, err := a.workerServer(ctx, cfg)
	if err != nil {
		return err
	}
	mux := asynq.NewServeMux()
	finisher := &outbox.Finisher{Pool: a.Pool, Log: a.Log}
	mux.Use(a.Metrics.Middleware, a.taskLogging, finisher.Middleware)
	if err := a.registerHandlers(mux); err != nil {
		return err
	}
	if err := srv.Start(mux); err != nil {
		stop()
		return err
	}
	<-ctx.Done()
	stop()
	// The tasks that ended during the shutdown give their slots back now rather
	// than at the reconciler's next pass.
	finisher.Close()
	return nil
}

// taskLogging gives every line a handler logs through logging.From the task's id
// and type, and is the one place a task's failure is logged: handlers return their
// errors with context and do not log them too.
func (a *App) taskLogging(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		ctx = logging.WithAttrs(ctx, slog.String("task_id", id), slog.String("task_type", t.Type()))
		err := next.ProcessTask(ctx, t)
		if err != nil {
			logTaskError(ctx, logging.From(ctx, a.Log), err)
		}
		return err
	})
}

// logTaskError writes the one line of a failed attempt: its attempt number and
// what happens next (retry, archived, or a later try the handler asked for, which
// is no failure and goes to debug).
func logTaskError(ctx context.Context, log *slog.Logger, err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	lvl, outcome := slog.LevelWarn, "retry"
	var ra *queue.RetryAfterError
	switch {
	case errors.As(err, &ra):
		lvl, outcome = slog.LevelDebug, "retry_after"
	case errors.Is(err, asynq.SkipRetry):
		lvl, outcome = slog.LevelError, "archived"
	case retried >= maxRetry:
		lvl, outcome = slog.LevelError, "archived"
	}
	attrs := []slog.Attr{
		slog.Int("attempt", retried+1), slog.Int("max_retry", maxRetry),
		slog.String("outcome", outcome), slog.String("error", err.Error()),
	}
	if ra != nil {
		attrs = append(attrs, slog.Duration("retry_in", ra.After))
	}
	log.LogAttrs(ctx, lvl, "task did not succeed", attrs...)
}

// registerHandlers mounts every task handler: the maintenance kinds of this
// package and the workers cmd/labelq wires in through Mount.
func (a *App) registerHandlers(mux *asynq.ServeMux) error {
	if a.Mount == nil {
		return errors.New("worker role started with no task handlers wired (App.Mount is nil)")
	}
	a.MountMaintenance(mux)
	a.Mount(a, mux)
	return nil
}

// Admission is LABELQ_ADMIT_PER_ORG (checked when the settings were loaded).
func (a *App) Admission() admission.Limits {
	adm, err := admission.Parse(a.Cfg.AdmitPerOrg)
	if err != nil {
		a.Log.Error("LABELQ_ADMIT_PER_ORG", slog.String("error", err.Error()))
	}
	return adm
}

func (a *App) runRelay(ctx context.Context) error {
	r := &outbox.Relay{
		Pool: a.Pool, ListenPool: a.DirectPool, Client: a.Client, Log: a.Log.With(slog.String("role", "relay")), Metrics: a.Metrics,
		PollInterval: a.Cfg.RelayPollInterval, BatchSize: a.Cfg.RelayBatchSize, Admission: a.Admission(),
		Wake: a.wakeWorkers,
	}
	return r.Run(ctx)
}

// runScheduler turns periodic work (maintenance, export schedules) into tasks.
func (a *App) runScheduler(ctx context.Context) error {
	mgr, err := asynq.NewPeriodicTaskManager(asynq.PeriodicTaskManagerOpts{
		RedisConnOpt:               a.Redis,
		PeriodicTaskConfigProvider: a.periodicTasks(),
		SyncInterval:               a.Cfg.ScheduleSync,
		SchedulerOpts:              &asynq.SchedulerOpts{Logger: logging.Asynq{Log: a.Log}, LogLevel: asynq.WarnLevel},
	})
	if err != nil {
		return err
	}
	if err := mgr.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	mgr.Shutdown()
	return nil
}

// runHTTP serves the API, the operator pages and the health checks until ctx ends,
// then lets in-flight requests finish.
func (a *App) runHTTP(ctx context.Context) error {
	srv := &http.Server{
		Addr:              a.Cfg.HTTPAddr,
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.Cfg.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

// Handler is the whole HTTP surface of a labelq api process.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": Version})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.Handle("/monitoring/", a.operatorOnly(a.monitoring()))
	mux.Handle("/monitoring", http.RedirectHandler("/monitoring/", http.StatusMovedPermanently))
	mux.Handle("GET /metrics", a.operatorOnly(promhttp.HandlerFor(a.Metrics.Registry, promhttp.HandlerOpts{})))
	a.mountAPI(mux)
	return mux
}

// ready answers 200 only when Postgres, Redis and S3 all answer; paused queues are
// listed (see readyPaused) without failing it.
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]any{}
	ok := true
	if err := a.Pool.Ping(ctx); err != nil {
		checks["postgres"], ok = "unreachable", false
	} else {
		checks["postgres"] = "ok"
	}
	if _, err := a.Inspector.Queues(); err != nil {
		checks["redis"], ok = "unreachable", false
	} else {
		checks["redis"] = "ok"
	}
	if err := a.Store.Ping(ctx); err != nil {
		checks["s3"], ok = "unreachable", false
	} else {
		checks["s3"] = "ok"
	}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	a.readyPaused(checks, ok)
	writeJSON(w, code, checks)
}

// operatorOnly guards operator pages with the operator's basic-auth credential,
// compared in constant time. With no password configured the pages are off.
func (a *App) operatorOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Cfg.OperatorPassword == "" {
			writeProblem(w, http.StatusForbidden, "Operator pages are disabled",
				"set LABELQ_OPERATOR_PASSWORD to enable /monitoring and /metrics")
			return
		}
		user, pass, ok := r.BasicAuth()
		uok := subtle.ConstantTimeCompare([]byte(user), []byte(a.Cfg.OperatorUser)) == 1
		pok := subtle.ConstantTimeCompare([]byte(pass), []byte(a.Cfg.OperatorPassword)) == 1
		if !ok || !uok || !pok {
			w.Header().Set("WWW-Authenticate", `Basic realm="labelq operator"`)
			writeProblem(w, http.StatusUnauthorized, "Operator credential required",
				"sign in with LABELQ_OPERATOR_USER and LABELQ_OPERATOR_PASSWORD")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// safePayload shows a task payload in asynqmon with anything that looks like a
// secret hidden. labelq's payloads carry ids only, so this is a second wall.
func safePayload(_ string, payload []byte) string {
	var doc map[string]any
	if err := json.Unmarshal(payload, &doc); err != nil {
		return "(non-JSON payload hidden)"
	}
	redactMap(doc)
	b, _ := json.Marshal(doc)
	return string(b)
}

func redactMap(doc map[string]any) {
	for k, v := range doc {
		lk := strings.ToLower(k)
		for _, s := range []string{"secret", "password", "token", "key", "authorization", "credential"} {
			if strings.Contains(lk, s) && !strings.HasSuffix(lk, "_id") {
				doc[k] = "(hidden)"
			}
		}
		if m, ok := v.(map[string]any); ok {
			redactMap(m)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, code int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "status": code, "detail": detail})
}
