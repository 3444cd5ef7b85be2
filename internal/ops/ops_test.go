package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/ops"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

const (
	rulesFile     = "prometheus/alerts.yml"
	rulesTestFile = "prometheus/alerts_test.yml"
)

// promtool is Debian's promtool (the prometheus package, which `make tools`
// installs). Without it the promtool tests skip on a developer's machine and
// fail in CI.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	msg := "promtool not found: `make tools` installs Debian's prometheus package (apt-get install prometheus), which provides /usr/bin/promtool"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestAlertRulesPassPromtoolCheck(t *testing.T) {
	t.Parallel()
	runPromtool(t, ".", "check", "rules", rulesFile)
}

func TestAlertRulesPassTheirUnitTests(t *testing.T) {
	t.Parallel()
	runPromtool(t, "prometheus", "test", "rules", filepath.Base(rulesTestFile))
}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(ops.AlertRules, &rf))
	require.NotEmpty(t, rf.Groups)
	return rf
}

// The alerts, each with a severity, a summary and a description, and each
// with at least one promtool case where it fires and one where it must not.
func TestEveryAlertHasFiringAndQuietCases(t *testing.T) {
	t.Parallel()
	want := []string{"LabelqQueueLatencyHigh", "LabelqArchivedTasksRising", "LabelqExportStuck",
		"LabelqReconcilerRequeues", "LabelqLLMBudgetExhausted", "LabelqWebhookEndpointDisabled"}
	var alerts []string
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			require.Contains(t, []string{"info", "warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
		}
	}
	require.ElementsMatch(t, want, alerts)

	raw, err := os.ReadFile(rulesTestFile)
	require.NoError(t, err)
	var tf struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name      string `yaml:"name"`
			AlertRule []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &tf))
	require.Equal(t, []string{filepath.Base(rulesFile)}, tf.RuleFiles)
	firing, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tf.Tests {
		for _, c := range tc.AlertRule {
			require.Contains(t, alerts, c.Alertname, "test %q is about an alert alerts.yml does not have", tc.Name)
			if len(c.ExpAlerts) > 0 {
				firing[c.Alertname]++
			} else {
				quiet[c.Alertname]++
			}
		}
	}
	for _, a := range alerts {
		require.Positive(t, firing[a], "%s has no case where it fires", a)
		require.Positive(t, quiet[a], "%s has no case where it must not fire", a)
	}
}

// dashboard is the part of a Grafana dashboard the tests read. Panels nest
// (a collapsed row holds its panels).
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	GridPos    map[string]int `json:"gridPos"`
	Datasource any            `json:"datasource"`
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// query is one PromQL expression of the dashboard or the rules, and where it is.
type query struct {
	where, expr string
}

func dashboardQueries(t *testing.T, raw []byte) []query {
	t.Helper()
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	var qs []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, query{where: fmt.Sprintf("dashboard panel %d %q target %s", p.ID, p.Title, tg.RefID), expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		// A query variable's metric must exist too; labelq's dashboard has none yet.
		require.NotEqual(t, "query", v.Type, "variable %q: read its query's metric here before adding one", v.Name)
	}
	return qs
}

func ruleQueries(t *testing.T) []query {
	t.Helper()
	var qs []query
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: "rule " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	return qs
}

// grafanaVars are the dashboard's built-in interval variables, replaced by a
// plain duration where PromQL is checked.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

func TestDashboardIsWellFormed(t *testing.T) {
	t.Parallel()
	var d dashboard
	require.NoError(t, json.Unmarshal(ops.Dashboard, &d))
	require.Equal(t, "labelq-ops", d.UID)
	require.NotEmpty(t, d.Title)
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			require.NotZero(t, p.ID, "panel %q has no id", p.Title)
			_, dup := ids[p.ID]
			require.False(t, dup, "panels %q and %q share id %d", ids[p.ID], p.Title, p.ID)
			ids[p.ID] = p.Title
			require.NotEmpty(t, p.Title, "panel %d has no title", p.ID)
			for _, k := range []string{"h", "w", "x", "y"} {
				require.Contains(t, p.GridPos, k, "panel %q gridPos", p.Title)
			}
			require.LessOrEqual(t, p.GridPos["x"]+p.GridPos["w"], 24, "panel %q runs off the grid", p.Title)
			if p.Type != "row" {
				require.NotNil(t, p.Datasource, "panel %q has no datasource", p.Title)
				require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "panel %q target %s has no expr", p.Title, tg.RefID)
				require.NotContains(t, grafanaVars.Replace(tg.Expr), "$", "panel %q: a variable the PromQL check cannot replace", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}

// Grafana does not check PromQL; promtool does, for a rule file. Every dashboard
// query becomes a recording rule of a file promtool checks.
func TestDashboardQueriesAreValidPromQL(t *testing.T) {
	t.Parallel()
	qs := dashboardQueries(t, ops.Dashboard)
	require.NotEmpty(t, qs)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	type group struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}
	g := group{Name: "dashboard"}
	for i, q := range qs {
		g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: grafanaVars.Replace(q.expr)})
	}
	out, err := yaml.Marshal(map[string][]group{"groups": {g}})
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dashboard.yml"), out, 0o600))
	runPromtool(t, dir, "check", "rules", "dashboard.yml")
}

// token splits PromQL into what matters for finding metric names: strings,
// numbers and durations (a digit first: 5m, 0.95, 1e3), identifiers, brackets.
var token = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`|[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*|\\S")

// notMetrics are PromQL's keywords and aggregation operators: an identifier that
// is none of these, not a function (followed by "(") and not inside a label
// matcher, a range or a grouping clause is a metric name.
var notMetrics = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

var identifier = regexp.MustCompile(`^[a-zA-Z_:]`)

var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// metricNames lists the metric names a PromQL expression selects.
func metricNames(expr string) []string {
	toks := token.FindAllString(expr, -1)
	var names []string
	brace, bracket := 0, 0
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		switch tk {
		case "{":
			brace++
			continue
		case "}":
			brace--
			continue
		case "[":
			bracket++
			continue
		case "]":
			bracket--
			continue
		}
		if brace > 0 || bracket > 0 || !identifier.MatchString(tk) {
			continue
		}
		next := ""
		if i+1 < len(toks) {
			next = toks[i+1]
		}
		if grouping[tk] && next == "(" {
			for i+1 < len(toks) && toks[i+1] != ")" { // label names up to the clause's ")"
				i++
			}
			continue
		}
		if next == "(" || notMetrics[tk] {
			continue
		}
		names = append(names, tk)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`max by (queue) (asynq_queue_latency_seconds) > 300`:                                               {"asynq_queue_latency_seconds"},
		`histogram_quantile(0.95, sum by (type, le) (rate(labelq_task_duration_seconds_bucket[5m])))`:      {"labelq_task_duration_seconds_bucket"},
		`sum(rate(labelq_webhook_attempts_total{outcome!="succeeded", x=~"a|b"}[5m])) / sum(rate(up[1h]))`: {"labelq_webhook_attempts_total", "up"},
		`max(labelq_a{progress="done"}) / on (instance) group_left (job) max(labelq_b offset 5m) * 3600`:   {"labelq_a", "labelq_b"},
		`sum without (instance) (increase(labelq_c_total[1h:5m])) > bool 0 and labelq_d unless labelq_e`:   {"labelq_c_total", "labelq_d", "labelq_e"},
		`count_values("v", label_replace(labelq_f, "dst", "$1", "src", "(.*)"))`:                           {"labelq_f"},
	} {
		require.Equal(t, want, metricNames(expr), expr)
	}
}

// used maps each metric name the queries select to where it is used.
func used(qs []query) map[string][]string {
	m := map[string][]string{}
	for _, q := range qs {
		for _, n := range metricNames(q.expr) {
			m[n] = append(m[n], q.where)
		}
	}
	return m
}

// missing lists, sorted, the used names no exported series has, with where each
// is used.
func missing(uses map[string][]string, exported map[string]bool) []string {
	var out []string
	for n, where := range uses {
		if !exported[n] {
			out = append(out, n+" (in "+strings.Join(where, "; ")+")")
		}
	}
	sort.Strings(out)
	return out
}

var sampleName = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]`)

// seriesNames are the names of the samples a /metrics answer holds (a
// histogram's _bucket, _sum and _count).
func seriesNames(body string) map[string]bool {
	names := map[string]bool{}
	for line := range strings.SplitSeq(body, "\n") {
		if m := sampleName.FindStringSubmatch(line); m != nil {
			names[m[1]] = true
		}
	}
	return names
}

// scrapeLabelq starts a labelq worker process's roles the way `labelq worker`
// does (app.New against the test's PostgreSQL, Redis and MinIO, with
// LABELQ_METRICS_ADDR), runs one task through its middleware so that the per-type
// task series exist, and returns its /metrics and the api role's.
func scrapeLabelq(t *testing.T) (worker, api string) {
	t.Helper()
	env := testenv.New(t)
	addr := testenv.FreeAddr(t)
	cfg := env.Config(t, map[string]string{"LABELQ_METRICS_ADDR": addr})
	a, err := app.New(context.Background(), cfg, testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	// The maintenance kinds only (MountMaintenance mounts them): enough for a task
	// to go through the worker's middleware.
	a.Mount = func(*app.App, *asynq.ServeMux) {}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, app.RoleWorker) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	get := func(url string, auth bool) (int, string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if auth {
			req.SetBasicAuth(cfg.OperatorUser, cfg.OperatorPassword)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	task, err := tasks.NewTask(tasks.Reconcile{})
	require.NoError(t, err)
	ran := regexp.MustCompile(`(?m)^labelq_tasks_total\{outcome="[a-z]+",type="maintenance:reconcile"\} 1$`)
	_, err = a.Client.Enqueue(task)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		code, body := get("http://"+addr+"/metrics", true)
		worker = body
		return code == http.StatusOK && ran.MatchString(body)
	}, 30*time.Second, 100*time.Millisecond, "the worker ran no maintenance:reconcile task; last /metrics:\n%s", worker)

	code, _ := get("http://"+addr+"/metrics", false)
	require.Equal(t, http.StatusUnauthorized, code, "LABELQ_METRICS_ADDR's /metrics asks for the operator credential")

	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	code, api = get(srv.URL+"/metrics", true)
	require.Equal(t, http.StatusOK, code)
	return worker, api
}

// Every metric the dashboard and the alert rules select is exported by a real
// labelq process, and a name it does not export is reported.
func TestDashboardAndRulesNameOnlyExportedMetrics(t *testing.T) {
	t.Parallel()
	worker, api := scrapeLabelq(t)
	exported := seriesNames(worker)
	require.Equal(t, exported, seriesNames(api), "the api role's /metrics and LABELQ_METRICS_ADDR's serve the same registry")
	require.Contains(t, worker, "\nlabelq_state_up 1\n", "the state query answered against the test's PostgreSQL")

	uses := used(append(dashboardQueries(t, ops.Dashboard), ruleQueries(t)...))
	require.GreaterOrEqual(t, len(uses), 25, "the extractor found the dashboard's and rules' metrics")
	require.Empty(t, missing(uses, exported), "metrics the dashboard or the rules name that labelq's /metrics does not export")

	t.Run("a dashboard naming a metric labelq does not export fails", func(t *testing.T) {
		var d map[string]any
		require.NoError(t, json.Unmarshal(ops.Dashboard, &d))
		d["panels"] = append(d["panels"].([]any), map[string]any{
			"id": 999, "type": "timeseries", "title": "Lost versions",
			"targets": []any{map[string]any{"refId": "A", "expr": "sum(rate(labelq_versions_lost_total[5m]))"}},
		})
		raw, err := json.Marshal(d)
		require.NoError(t, err)
		got := missing(used(dashboardQueries(t, raw)), exported)
		require.Len(t, got, 1)
		require.True(t, strings.HasPrefix(got[0], "labelq_versions_lost_total (in dashboard panel 999"), got[0])
	})

	// The names the README's Operations section lists are the ones exported.
	t.Run("every labelq metric the dashboard shows is documented in the README", func(t *testing.T) {
		readme, err := os.ReadFile("../../README.md")
		require.NoError(t, err)
		var undocumented []string
		for n := range uses {
			base := strings.TrimSuffix(n, "_bucket")
			if strings.HasPrefix(n, "labelq_") && !strings.Contains(string(readme), "`"+base+"`") && !slices.Contains(undocumented, base) {
				undocumented = append(undocumented, base)
			}
		}
		sort.Strings(undocumented)
		require.Empty(t, undocumented, "add them to the README's Operations section")
	})
}
