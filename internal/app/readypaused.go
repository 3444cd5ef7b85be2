package app

import "github.com/labelq/labelq/internal/metrics"

// readyPaused adds "paused_queues" (always a list) and "status" to the /readyz
// answer: "ok", "degraded" when a queue is paused, "unavailable" when a dependency
// is down. A paused queue keeps the process ready (200): pausing is an operator's
// choice, the API still accepts work into it, and failing readiness would only take
// every API process out of the load balancer. It must not pass silently, though:
// the reconciler counts a paused queue's tasks as alive and never repairs them.
func (a *App) readyPaused(checks map[string]any, ok bool) {
	status := "ok"
	if !ok {
		status = "unavailable"
	}
	if _, paused, err := metrics.PausedQueues(a.Inspector); err == nil {
		checks["paused_queues"] = paused
		if len(paused) > 0 && ok {
			status = "degraded"
		}
	}
	checks["status"] = status
}
