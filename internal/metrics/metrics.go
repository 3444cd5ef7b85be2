// Package metrics holds labelq's own Prometheus collectors (tasks by type and outcome,
// durations, bytes hashed, LLM tokens, export bytes, outbox lag) on a registry of the
// process's own, next to asynq's queue collector and the gauges read from PostgreSQL
// at each scrape (state.go). internal/ops holds the dashboard and alert rules over them.
package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the collectors every component reports to.
type Metrics struct {
	Registry      *prometheus.Registry
	Tasks         *prometheus.CounterVec
	TaskDuration  *prometheus.HistogramVec
	BytesHashed   prometheus.Counter
	LLMTokens     *prometheus.CounterVec
	ExportBytes   prometheus.Counter
	OutboxRelayed prometheus.Counter
	OutboxLag     prometheus.Histogram
	HTTPRequests  *prometheus.CounterVec
	// WebhookAttempts and WebhookLatency are webhook:deliver's attempts, by
	// outcome (succeeded, retry, failed, gone), and their time to an answer.
	WebhookAttempts *prometheus.CounterVec
	WebhookLatency  prometheus.Histogram
	// WebhookDisabled counts endpoints webhook:deliver disabled (a 410, or
	// failing every attempt for LABELQ_WEBHOOK_DISABLE_AFTER).
	WebhookDisabled prometheus.Counter
	// VersionsValidated counts file:validate's decisions by the status they
	// gave the version (valid, corrupt, missing, rejected).
	VersionsValidated *prometheus.CounterVec
	// LLMCalls counts model calls by outcome (ok, or the llm.ErrorKind of the
	// failure: rate_limited is a provider 429); LLMCost is their price in US
	// dollars; LLMBudgetExhausted counts pre-annotations delayed to the next
	// UTC day because their project's daily token budget was spent.
	LLMCalls           *prometheus.CounterVec
	LLMCost            prometheus.Counter
	LLMBudgetExhausted prometheus.Counter
	// ReconcileRequeued counts stuck rows the reconciler queued again because
	// their task was gone from Redis, by the kind of that task.
	ReconcileRequeued *prometheus.CounterVec
}

// Label values every process exports from the start (at 0), so a rate or an
// increase over them works from a process's first scrape and alert rules and
// dashboards always find the series.
var (
	webhookOutcomes   = []string{"succeeded", "retry", "failed", "gone"}
	validationResults = []string{"valid", "corrupt", "missing", "rejected"}
	llmCallOutcomes   = []string{"ok", "rate_limited", "transient", "permanent", "refusal"}
)

// New registers labelq's collectors (and Go/process collectors) on a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_tasks_total", Help: "Tasks processed, by type and outcome (ok, retry, failed, skipped).",
		}, []string{"type", "outcome"}),
		TaskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "labelq_task_duration_seconds", Help: "Task handler run time, by type.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, []string{"type"}),
		BytesHashed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "labelq_validate_bytes_hashed_total", Help: "Bytes read and hashed by file:validate.",
		}),
		LLMTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_llm_tokens_total", Help: "LLM tokens used, by kind (prompt, completion).",
		}, []string{"kind"}),
		ExportBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "labelq_export_bytes_total", Help: "Archive bytes written by project:export.",
		}),
		OutboxRelayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "labelq_outbox_relayed_total", Help: "Outbox rows moved into asynq.",
		}),
		OutboxLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "labelq_outbox_lag_seconds", Help: "Time from outbox commit to enqueue in asynq.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_http_requests_total", Help: "API requests, by route pattern and status code.",
		}, []string{"route", "code"}),
		WebhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_webhook_attempts_total", Help: "Webhook delivery attempts, by outcome (succeeded, retry, failed, gone).",
		}, []string{"outcome"}),
		WebhookLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "labelq_webhook_attempt_seconds", Help: "Time from a webhook attempt's start to the receiver's answer (or the error).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}),
		WebhookDisabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "labelq_webhook_endpoints_disabled_total", Help: "Webhook endpoints labelq disabled (a 410 Gone, or every attempt failing for LABELQ_WEBHOOK_DISABLE_AFTER).",
		}),
		VersionsValidated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_versions_validated_total", Help: "Versions file:validate decided, by the status it gave them (valid, corrupt, missing, rejected).",
		}, []string{"status"}),
		LLMCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_llm_calls_total", Help: "Model calls, by outcome (ok, rate_limited: a provider 429, transient, permanent, refusal).",
		}, []string{"outcome"}),
		LLMCost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "labelq_llm_cost_usd_total", Help: "Price of the model calls in US dollars, from LABELQ_LLM_PRICES (0 for unpriced models).",
		}),
		LLMBudgetExhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "labelq_llm_budget_exhausted_total", Help: "Pre-annotations delayed to the next UTC day because their project's daily token budget was spent.",
		}),
		ReconcileRequeued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labelq_reconcile_requeued_total", Help: "Stuck rows the reconciler queued again because their task was gone from Redis, by task kind.",
		}, []string{"kind"}),
	}
	m.Registry.MustRegister(m.Tasks, m.TaskDuration, m.BytesHashed, m.LLMTokens, m.ExportBytes,
		m.OutboxRelayed, m.OutboxLag, m.HTTPRequests, m.WebhookAttempts, m.WebhookLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Registry.MustRegister(m.WebhookDisabled, m.VersionsValidated, m.LLMCalls, m.LLMCost, m.LLMBudgetExhausted, m.ReconcileRequeued)
	initLabels(m.LLMTokens, "prompt", "completion")
	initLabels(m.WebhookAttempts, webhookOutcomes...)
	initLabels(m.VersionsValidated, validationResults...)
	initLabels(m.LLMCalls, llmCallOutcomes...)
	return m
}

// initLabels makes the series of a one-label vector exist at 0.
func initLabels(v *prometheus.CounterVec, values ...string) {
	for _, val := range values {
		v.WithLabelValues(val)
	}
}

// InitReconcileKinds makes the per-kind series of labelq_reconcile_requeued_total exist at
// 0 for the kinds the reconciler repairs (app wires reconcile.Finders' kinds).
func (m *Metrics) InitReconcileKinds(kinds ...string) {
	initLabels(m.ReconcileRequeued, kinds...)
}

// RegisterQueues adds asynq's queue collector (sizes, latency, by queue and state)
// and labelq_queue_paused{queue}.
func (m *Metrics) RegisterQueues(inspector *asynq.Inspector) {
	m.Registry.MustRegister(asynqmetrics.NewQueueMetricsCollector(inspector), pausedCollector{inspector})
}

// Middleware counts every task by type and outcome and times it.
func (m *Metrics) Middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		m.TaskDuration.WithLabelValues(t.Type()).Observe(time.Since(start).Seconds())
		outcome := "ok"
		switch {
		case err == nil:
		case errors.Is(err, asynq.SkipRetry):
			outcome = "failed"
		default:
			outcome = "retry"
		}
		m.Tasks.WithLabelValues(t.Type(), outcome).Inc()
		return err
	})
}
