package app

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// roleMetrics is not a role a person starts: Run adds it to any process when
// LABELQ_METRICS_ADDR is set.
const roleMetrics Role = "metrics"

// MetricsHandler is /metrics: the process's registry behind the operator
// credential (off without an operator password).
func (a *App) MetricsHandler() http.Handler {
	return a.operatorOnly(promhttp.HandlerFor(a.Metrics.Registry, promhttp.HandlerOpts{}))
}

// runMetrics serves /metrics and /healthz on LABELQ_METRICS_ADDR. The counters a
// worker keeps (tasks, LLM calls, webhook attempts, reconciler requeues) live in
// the worker's process: without this, a `labelq worker` has no /metrics to scrape.
func (a *App) runMetrics(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": Version})
	})
	mux.Handle("GET /metrics", a.MetricsHandler())
	srv := &http.Server{Addr: a.Cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
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
