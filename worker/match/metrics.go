package match

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/labelq/labelq/internal/metrics"
)

// collectors are project:match's own Prometheus series, next to the generic
// per-task counters the worker's middleware keeps.
type collectors struct {
	assignments     *prometheus.CounterVec
	unassigned      *prometheus.CounterVec
	solveSeconds    *prometheus.HistogramVec
	capacityRetries prometheus.Counter
}

func newCollectors(m *metrics.Metrics, log *slog.Logger) *collectors {
	return &collectors{
		assignments: register(m.Registry, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_match_assignments_total", Help: "Assignments written by project:match, by role side (annotator, reviewer).",
		}, []string{"side"})),
		unassigned: register(m.Registry, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_match_unassigned_total",
			Help: "Jobs a project:match run left without a person, by side and reason; a job still open next run counts again.",
		}, []string{"side", "reason"})),
		solveSeconds: register(m.Registry, log, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "labelq_match_solve_seconds", Help: "Time the exact solver took per project:match side.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 12),
		}, []string{"side"})),
		capacityRetries: register(m.Registry, log, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "labelq_match_capacity_retries_total",
			Help: "Solves repeated because a concurrent run of another project used capacity this one counted on.",
		})),
	}
}

// register adds c to the registry, or returns the collector already registered
// under the same name: a process may build more than one handler on one Metrics
// (tests, a restarted worker role), and a metric must not make that fail.
func register[C prometheus.Collector](reg *prometheus.Registry, log *slog.Logger, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("project:match metric not registered", slog.String("error", err.Error()))
	return c
}
