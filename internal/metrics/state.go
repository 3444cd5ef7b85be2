package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/labelq/labelq/internal/db"
)

// StateTimeout bounds the state query of one scrape: a slow or unreachable
// database makes labelq_state_up 0, not a scrape that hangs or fails whole (the
// queue metrics from Redis are wanted most when PostgreSQL is in trouble).
const StateTimeout = 5 * time.Second

// The state gauges are facts of the shared database, not of one process: every
// process that serves /metrics reports the same values, and dashboards and
// alerts take max() over instances.
var (
	stateUpDesc = prometheus.NewDesc("labelq_state_up",
		"1 when this scrape's state query (versions, exports, sync runs, webhooks) answered, else 0.", nil, nil)
	versionsPendingDesc = prometheus.NewDesc("labelq_versions_pending",
		"Versions waiting for file:validate (validation_status pending).", nil, nil)
	versionsPendingOldestDesc = prometheus.NewDesc("labelq_versions_pending_oldest_seconds",
		"Age of the oldest version still pending validation, 0 when none is.", nil, nil)
	exportsDesc = prometheus.NewDesc("labelq_exports",
		"Unfinished exports, by status (pending, running).", []string{"status"}, nil)
	exportIdleDesc = prometheus.NewDesc("labelq_export_idle_seconds",
		"Since the least recently written pending or running export last changed (progress, heartbeat, start); 0 when none is unfinished.", nil, nil)
	exportFilesDesc = prometheus.NewDesc("labelq_export_running_files",
		"Files of the running exports, packed (progress=done) and to pack (progress=planned).", []string{"progress"}, nil)
	exportBytesDesc = prometheus.NewDesc("labelq_export_running_bytes",
		"Bytes of the running exports, packed (progress=done) and to pack (progress=planned).", []string{"progress"}, nil)
	syncRunsDesc = prometheus.NewDesc("labelq_sync_runs",
		"Live bucket sync runs, by status (pending, running).", []string{"status"}, nil)
	syncLagDesc = prometheus.NewDesc("labelq_sync_lag_seconds",
		"Since the oldest pending or running sync run was requested, 0 when none is live.", nil, nil)
	syncLastSuccessDesc = prometheus.NewDesc("labelq_sync_last_success_age_seconds",
		"Since the last completed sync of the scheduled storage that has gone longest without one (since its creation if it never had one).", nil, nil)
	webhookEndpointsDesc = prometheus.NewDesc("labelq_webhook_endpoints",
		"Webhook endpoints, by state (healthy, failing: enabled but failing since its last success, disabled).", []string{"state"}, nil)
	webhookPendingDesc = prometheus.NewDesc("labelq_webhook_deliveries_pending",
		"Webhook deliveries not yet delivered or given up (due now or on their retry schedule).", nil, nil)
)

// stateCollector reads the pipeline's state from PostgreSQL at every scrape.
type stateCollector struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// RegisterState adds the gauges read from PostgreSQL at each scrape (versions
// pending, exports and their progress, sync runs and lag, webhook endpoints and
// pending deliveries) and labelq_state_up, and fair admission's waiting and
// admitted rows by organization and task type (admission.go).
func (m *Metrics) RegisterState(pool *pgxpool.Pool, log *slog.Logger) {
	m.Registry.MustRegister(stateCollector{pool: pool, log: log}, admissionCollector{pool: pool, log: log})
}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{stateUpDesc, versionsPendingDesc, versionsPendingOldestDesc, exportsDesc, exportIdleDesc,
		exportFilesDesc, exportBytesDesc, syncRunsDesc, syncLagDesc, syncLastSuccessDesc, webhookEndpointsDesc, webhookPendingDesc} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), StateTimeout)
	defer cancel()
	s, err := db.New(c.pool).MetricsState(ctx)
	if err != nil {
		c.log.Warn("metrics: state query failed; labelq_state_up is 0", slog.String("error", err.Error()))
		ch <- prometheus.MustNewConstMetric(stateUpDesc, prometheus.GaugeValue, 0)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(stateUpDesc, 1)
	gauge(versionsPendingDesc, float64(s.VersionsPending))
	gauge(versionsPendingOldestDesc, s.VersionsPendingOldestSeconds)
	gauge(exportsDesc, float64(s.ExportsPending), "pending")
	gauge(exportsDesc, float64(s.ExportsRunning), "running")
	gauge(exportIdleDesc, s.ExportIdleSeconds)
	gauge(exportFilesDesc, float64(s.ExportFilesDone), "done")
	gauge(exportFilesDesc, float64(s.ExportFilesPlanned), "planned")
	gauge(exportBytesDesc, float64(s.ExportBytesDone), "done")
	gauge(exportBytesDesc, float64(s.ExportBytesPlanned), "planned")
	gauge(syncRunsDesc, float64(s.SyncRunsPending), "pending")
	gauge(syncRunsDesc, float64(s.SyncRunsRunning), "running")
	gauge(syncLagDesc, s.SyncLagSeconds)
	gauge(syncLastSuccessDesc, s.SyncLastSuccessAgeSeconds)
	gauge(webhookEndpointsDesc, float64(s.WebhookEndpointsHealthy), "healthy")
	gauge(webhookEndpointsDesc, float64(s.WebhookEndpointsFailing), "failing")
	gauge(webhookEndpointsDesc, float64(s.WebhookEndpointsDisabled), "disabled")
	gauge(webhookPendingDesc, float64(s.WebhookDeliveriesPending))
}
