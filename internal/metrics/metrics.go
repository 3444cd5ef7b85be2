// Package metrics holds labelq's own Prometheus collectors (tasks by type and outcome,
// durations, bytes hashed, LLM tokens, export bytes, outbox lag) on a registry of the
// process's own, next to asynq's queue collector.
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
}

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
	}
	m.Registry.MustRegister(m.Tasks, m.TaskDuration, m.BytesHashed, m.LLMTokens, m.ExportBytes,
		m.OutboxRelayed, m.OutboxLag, m.HTTPRequests, m.WebhookAttempts, m.WebhookLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
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
