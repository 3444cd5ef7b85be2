package metrics

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// PausedQueues lists the queues asynq knows of and, of them, the paused ones. A
// paused queue's tasks still count as alive to the reconciler, so nothing repairs
// them: operators must be able to see one.
func PausedQueues(inspector *asynq.Inspector) (queues, paused []string, err error) {
	queues, err = inspector.Queues()
	if err != nil {
		return nil, nil, err
	}
	paused = []string{}
	for _, q := range queues {
		info, err := inspector.GetQueueInfo(q)
		if err != nil {
			return nil, nil, err
		}
		if info.Paused {
			paused = append(paused, q)
		}
	}
	return queues, paused, nil
}

var queuePausedDesc = prometheus.NewDesc("labelq_queue_paused",
	"1 when the queue is paused (its tasks wait and the reconciler does not re-queue them), else 0.",
	[]string{"queue"}, nil)

// pausedCollector reads the queues' paused state from Redis at every scrape.
type pausedCollector struct{ inspector *asynq.Inspector }

func (c pausedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queuePausedDesc }

func (c pausedCollector) Collect(ch chan<- prometheus.Metric) {
	queues, paused, err := PausedQueues(c.inspector)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queuePausedDesc, err)
		return
	}
	isPaused := map[string]bool{}
	for _, q := range paused {
		isPaused[q] = true
	}
	for _, q := range queues {
		v := 0.0
		if isPaused[q] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(queuePausedDesc, prometheus.GaugeValue, v, q)
	}
}
