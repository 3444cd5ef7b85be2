package metrics_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/testenv"
)

// TestAdmissionGaugesNameTheTopOrganizations: twelve organizations with 1 to 12
// rows waiting each: the ten with the most are named by id, the other two and
// the rows of no organization are summed under org="other"; rows due later,
// relayed without a slot, or finished count as neither waiting nor admitted.
func TestAdmissionGaugesNameTheTopOrganizations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	m := metrics.New()
	m.RegisterState(pg.Pool, testenv.Quiet())

	for k := range gauges(t, m) {
		require.NotContains(t, k, "labelq_admission_", "no series on an empty outbox")
	}

	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pg.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	// rows inserts n outbox rows of org (0: none) and type, set as state says.
	seq := 0
	rows := func(org int64, kind string, n int, state string) {
		t.Helper()
		seq++
		var orgID any
		if org != 0 {
			orgID = org
		}
		// available_at, admitted_at, enqueued_at, finished_at.
		cols := map[string]string{
			"waiting":   "now(), NULL, NULL, NULL",
			"scheduled": "now() + interval '1 hour', NULL, NULL, NULL",
			"admitted":  "now(), now(), now(), NULL",
			"claimed":   "now(), now(), NULL, NULL", // admitted, on its way to Redis
			"finished":  "now(), now(), now(), now()",
			"relayed":   "now(), NULL, now(), NULL", // not held back: in Redis, no slot
		}[state]
		exec(fmt.Sprintf(`INSERT INTO outbox (task_id, task_type, payload, org_id, available_at, admitted_at, enqueued_at, finished_at)
			SELECT 'adm-' || $1::text || '-' || g, $2, '{}', $3, %s FROM generate_series(1, $4::int) g`, cols),
			strconv.Itoa(seq), kind, orgID, n)
	}

	orgs := make([]int64, 12)
	for i := range orgs {
		orgs[i] = pg.Org(t).ID
		rows(orgs[i], "file:validate", i+1, "waiting")
		rows(orgs[i], "file:validate", 1, "finished")
		rows(orgs[i], "file:validate", 1, "relayed")
	}
	rows(orgs[0], "file:validate", 1, "admitted")
	rows(orgs[1], "file:validate", 1, "claimed")
	rows(orgs[11], "file:validate", 2, "admitted")
	rows(orgs[11], "file:validate", 5, "scheduled")
	rows(orgs[11], "project:export", 1, "admitted")
	rows(0, "maintenance:reconcile", 3, "waiting")

	g := gauges(t, m)
	series := func(name string, org any, kind string) string {
		return fmt.Sprintf("%s{org=%q}{task_type=%q}", name, fmt.Sprint(org), kind)
	}
	for i := 2; i < 12; i++ {
		require.Equal(t, float64(i+1), g[series("labelq_admission_waiting", orgs[i], "file:validate")], "org %d", i)
	}
	require.Equal(t, 2.0, g[series("labelq_admission_admitted", orgs[11], "file:validate")])
	require.Equal(t, 1.0, g[series("labelq_admission_admitted", orgs[11], "project:export")])
	require.Equal(t, 0.0, g[series("labelq_admission_waiting", orgs[11], "project:export")])
	require.Equal(t, 0.0, g[series("labelq_admission_admitted", orgs[5], "file:validate")], "a finished or slotless row holds no slot")
	for _, i := range []int{0, 1} {
		for k := range g {
			require.NotContains(t, k, fmt.Sprintf("{org=%q}", fmt.Sprint(orgs[i])), "org %d is not in the top 10", i)
		}
	}
	require.Equal(t, 3.0, g[series("labelq_admission_waiting", metrics.AdmissionOther, "file:validate")], "orgs 0 and 1 wait 1+2")
	require.Equal(t, 2.0, g[series("labelq_admission_admitted", metrics.AdmissionOther, "file:validate")], "orgs 0 and 1 hold a slot each")
	require.Equal(t, 3.0, g[series("labelq_admission_waiting", metrics.AdmissionOther, "maintenance:reconcile")], "rows of no organization")

	orgLabels := map[string]bool{}
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "labelq_admission_waiting" && mf.GetName() != "labelq_admission_admitted" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "org" {
					orgLabels[l.GetValue()] = true
				}
			}
		}
	}
	require.Len(t, orgLabels, metrics.AdmissionTopOrgs+1, "ten organizations and other: %v", orgLabels)
}
