package metrics

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/labelq/labelq/internal/db"
)

// AdmissionTopOrgs is how many organizations the admission gauges name (those
// with the most rows waiting); the rest are summed under org="other", so the
// series stay bounded however many organizations a deployment has.
const AdmissionTopOrgs = 10

// AdmissionOther is the org label of the organizations past AdmissionTopOrgs,
// and of rows of no organization (maintenance work, never held back).
const AdmissionOther = "other"

var (
	admissionWaitingDesc = prometheus.NewDesc("labelq_admission_waiting",
		"Outbox rows due now that hold no admission slot (waiting for LABELQ_ADMIT_PER_ORG, or for the relay), by organization id (the 10 with the most waiting; the rest under \"other\") and task type.",
		[]string{"org", "task_type"}, nil)
	admissionAdmittedDesc = prometheus.NewDesc("labelq_admission_admitted",
		"Tasks admitted and not finished (holding a LABELQ_ADMIT_PER_ORG slot), by organization id (the 10 with the most waiting; the rest under \"other\") and task type.",
		[]string{"org", "task_type"}, nil)
)

// admissionCollector reads fair admission's backlog from PostgreSQL at every
// scrape. Like the state gauges, its values are the shared database's: every
// process reports the same.
type admissionCollector struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

func (c admissionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- admissionWaitingDesc
	ch <- admissionAdmittedDesc
}

func (c admissionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), StateTimeout)
	defer cancel()
	rows, err := db.New(c.pool).OutboxAdmissionCounts(ctx, AdmissionTopOrgs)
	if err != nil {
		// The gauges are left out of this scrape rather than reported as zero.
		c.log.Warn("metrics: admission query failed; the labelq_admission gauges are left out", slog.String("error", err.Error()))
		return
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(admissionWaitingDesc, prometheus.GaugeValue, float64(r.Waiting), r.Org, r.TaskType)
		ch <- prometheus.MustNewConstMetric(admissionAdmittedDesc, prometheus.GaugeValue, float64(r.Admitted), r.Org, r.TaskType)
	}
}
