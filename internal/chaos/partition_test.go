package chaos

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// TestPartitionInvariants: a followed version validated once passes; a second
// outcome event (a late commit that did its work again) fails effects-once, the
// after-terminal comparison and the all-rows count, each naming the version; a
// version left pending is not terminal; a tick exported 30 s before its time is
// named; and a database that cannot be read fails every figure.
func TestPartitionInvariants(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	done := pg.RegisterVersion(t, pg.File(t, pr, ""), "k/done", testenv.Declared{})
	pending := pg.RegisterVersion(t, pg.File(t, pr, ""), "k/pending", testenv.Declared{})
	_, err := pg.Pool.Exec(ctx, `UPDATE file_versions SET validation_status = 'valid', checksum = repeat('a', 64), size_bytes = 3, validated_at = now() WHERE id = $1`, done.ID)
	require.NoError(t, err)
	event := func() {
		_, err := pg.Pool.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type) VALUES ($1, 'file_version', $2, 'validated')`,
			org.ID, done.ID)
		require.NoError(t, err)
	}
	event()

	s := subjectOf(tasks.Validate{}.Kind(), []byte(`{"version_id":`+itoa(done.ID)+`}`))
	require.Equal(t, subject{subjectVersion, done.ID}, s)
	first, err := fingerprint(ctx, pg.Pool, s)
	require.NoError(t, err)
	require.True(t, first.Terminal)
	require.Equal(t, 1, first.Effects)
	require.Equal(t, 1, first.Want)
	w := &watched{Subject: s, Task: "file:validate t1", Worker: "worker-0", Target: cutRedis, First: first.Text, FirstAt: time.Now()}
	requireClean(t, subjectFigures(ctx, pg.Pool, []*watched{w}))

	var scheduleID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO export_schedules (org_id, project_id, cron_spec)
		VALUES ($1, $2, '@every 8s') RETURNING id`, org.ID, pr.ID).Scan(&scheduleID))
	_, err = pg.Pool.Exec(ctx, `INSERT INTO export_logs (org_id, project_id, schedule_id, scheduled_for) VALUES ($1, $2, $3, now())`,
		org.ID, pr.ID, scheduleID)
	require.NoError(t, err)
	requireClean(t, effectsOnceFigures(ctx, pg.Pool, scheduleID))

	event() // the late commit
	figs := subjectFigures(ctx, pg.Pool, []*watched{w})
	for _, name := range []string{"partition_subjects_effects_not_once", "partition_subjects_changed_after_terminal"} {
		f := figure(t, figs, name)
		require.False(t, f.OK, name)
		require.True(t, strings.HasPrefix(f.Value, "1\nversion "+itoa(done.ID)+" (file:validate t1, held by worker-0"), f.Value)
	}
	require.Equal(t, Figure{"versions_with_two_outcome_events", "1", "0", false},
		figure(t, effectsOnceFigures(ctx, pg.Pool, scheduleID), "versions_with_two_outcome_events"))

	p := &watched{Subject: subject{subjectVersion, pending.ID}, Task: "file:validate t2", Worker: "worker-1", Target: cutPostgres}
	f := figure(t, subjectFigures(ctx, pg.Pool, []*watched{p}), "partition_subjects_not_terminal")
	require.False(t, f.OK)
	require.Contains(t, f.Value, "status=pending")

	_, err = pg.Pool.Exec(ctx, `INSERT INTO export_logs (org_id, project_id, schedule_id, scheduled_for) VALUES ($1, $2, $3, now() + interval '30 seconds')`,
		org.ID, pr.ID, scheduleID)
	require.NoError(t, err)
	early := earlyTicks(ctx, pg.Pool, scheduleID)
	require.False(t, early.OK)
	require.True(t, strings.HasPrefix(early.Value, "1\nexport "), early.Value)
	require.Contains(t, early.Value, "(30.0s early)")

	closed, err := database.Open(ctx, pg.URL, 2)
	require.NoError(t, err)
	closed.Close()
	requireCouldNotLook(t, subjectFigures(ctx, closed, []*watched{w}))
	requireCouldNotLook(t, effectsOnceFigures(ctx, closed, scheduleID))
}

// TestCutFiguresFailWhenNothingWasCut: a cut that found no worker holding a task
// (or no open transaction) proved nothing and fails; one that held tasks passes.
func TestCutFiguresFailWhenNothingWasCut(t *testing.T) {
	start := time.Now()
	held := []heldTask{{ID: "a", Type: "file:validate"}, {ID: "b", Type: "project:export", TakenOver: start.Add(70 * time.Second)}}
	cfg := Config{RedisCut: DefaultRedisCut}
	ok := cutFigures([]*cutRecord{
		{Worker: "worker-1", Target: cutRedis, Start: start, End: start.Add(90 * time.Second), Held: held},
		{Worker: "worker-0", Target: cutPostgres, Start: start, End: start.Add(30 * time.Second), OpenTx: 2},
	}, cfg)
	requireClean(t, ok)
	require.Equal(t, "1/2", figure(t, ok, "netns_cut_redis_tasks_taken_over_while_cut_off").Value)

	bad := cutFigures([]*cutRecord{
		{Target: cutRedis, Err: "no worker held a task within 45s"},
		{Worker: "worker-0", Target: cutPostgres, Start: start, End: start.Add(30 * time.Second)},
	}, cfg)
	require.Equal(t, Figure{"netns_cut_redis", "not made: no worker held a task within 45s", "made", false}, figure(t, bad, "netns_cut_redis"))
	require.False(t, figure(t, bad, "netns_cut_postgres").OK, "no transaction was open: not mid-transaction")
}

// TestWithNetnsPutsTheOtherFaultsAfterThePartitions: the variant's faults keep
// their order, all after the partition phase and within the run.
func TestWithNetnsPutsTheOtherFaultsAfterThePartitions(t *testing.T) {
	cfg := WithNetns(Short())
	require.True(t, cfg.Netns)
	require.Equal(t, Short().Duration+partitionPhase(cfg), cfg.Duration)
	r := &run{cfg: cfg}
	prev := time.Duration(0)
	for _, pct := range []int{20, 35, 50, 62, 80} {
		at := r.afterPartitions(cfg.Duration * time.Duration(pct) / 100)
		require.Greater(t, at, partitionPhase(cfg))
		require.Less(t, at, cfg.Duration)
		require.Greater(t, at, prev)
		prev = at
	}
	require.Equal(t, 5*time.Second, (&run{cfg: Short()}).afterPartitions(5*time.Second), "no move without -netns")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
