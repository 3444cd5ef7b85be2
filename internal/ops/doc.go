// Package ops holds what an operator loads next to labelq: the Grafana dashboard
// (grafana/labelq.json) and the Prometheus alert rules (prometheus/alerts.yml,
// with their promtool unit tests in prometheus/alerts_test.yml). The package's
// tests run promtool over them and check that every metric they name is one a
// real labelq process exports on /metrics.
package ops

import _ "embed"

// Dashboard is the Grafana dashboard JSON (import it, or provision it).
//
//go:embed grafana/labelq.json
var Dashboard []byte

// AlertRules is the Prometheus rule file.
//
//go:embed prometheus/alerts.yml
var AlertRules []byte
