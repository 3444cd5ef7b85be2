package schedule_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/schedule"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

var quiet = testenv.Quiet()

func mkSchedule(t *testing.T, pg *testenv.PG, spec, tz string) db.ExportSchedule {
	t.Helper()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	s, err := pg.Q.ExportScheduleCreate(context.Background(), db.ExportScheduleCreateParams{
		OrgID: org.ID, ProjectID: pr.ID, CronSpec: spec, Timezone: tz, Options: json.RawMessage(`{"include_files":true}`), Enabled: true,
	})
	require.NoError(t, err)
	return s
}

func task(id int64) *asynq.Task {
	b, _ := json.Marshal(tasks.ScheduleExport{ScheduleID: id})
	return asynq.NewTask(tasks.ScheduleExport{}.Kind(), b)
}

func TestLatestTick(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	now := time.Date(2026, 3, 10, 1, 30, 0, 0, time.UTC) // 02:30 in Paris
	tick, err := schedule.LatestTick(schedule.Spec("0 2 * * *", "Europe/Paris"), time.Time{}, now)
	require.NoError(t, err)
	require.True(t, tick.Equal(time.Date(2026, 3, 10, 2, 0, 0, 0, paris)), "got %s", tick)

	tick, err = schedule.LatestTick(schedule.Spec("@every 10m", "UTC"), time.Time{}, now.Add(7*time.Minute))
	require.NoError(t, err)
	require.True(t, tick.Equal(now.Add(0)), "every-ticks align to the epoch: %s", tick)
}

// TestTwoSchedulersOneExportPerTick fires the same tick twice at once, as two
// scheduler copies do, and expects one export.
func TestTwoSchedulersOneExportPerTick(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	s := mkSchedule(t, pg, "0 * * * *", "UTC")
	at := time.Date(2026, 11, 22, 10, 0, 3, 0, time.UTC)
	h := &schedule.Handler{Pool: pg.Pool, Log: quiet, Now: func() time.Time { return at }}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, task(s.ID))) }()
	}
	wg.Wait()
	var exports int
	var exportID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT count(*), max(id) FROM export_logs WHERE schedule_id=$1", s.ID).Scan(&exports, &exportID))
	require.Equal(t, 1, exports)
	testenv.RequireQueued(t, pg.Pool, s.OrgID, tasks.Export{ExportID: exportID})
	require.Len(t, testenv.OutboxRows(t, pg.Pool, s.OrgID), 1, "one task for the one export")

	// The next hour's firing makes the next export.
	h.Now = func() time.Time { return at.Add(time.Hour) }
	require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, task(s.ID)))
	require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT count(*) FROM export_logs WHERE schedule_id=$1", s.ID).Scan(&exports))
	require.Equal(t, 2, exports)
	got, err := pg.Q.ExportScheduleGetByID(ctx, s.ID)
	require.NoError(t, err)
	require.True(t, got.LastFiredAt.Equal(time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)))
}

func TestDisabledDeletedAndBadPayload(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	s := mkSchedule(t, pg, "@hourly", "UTC")
	off := false
	_, err := pg.Q.ExportScheduleUpdate(ctx, db.ExportScheduleUpdateParams{ID: s.ID, OrgID: s.OrgID, Enabled: &off})
	require.NoError(t, err)
	h := &schedule.Handler{Pool: pg.Pool, Log: quiet}
	require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, task(s.ID)))
	require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, task(987654)), "a deleted schedule's firing is ignored")
	var n int
	require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT count(*) FROM export_logs").Scan(&n))
	require.Zero(t, n)
	err = tasks.Handle(h.Work).ProcessTask(ctx, asynq.NewTask(tasks.ScheduleExport{}.Kind(), []byte(`{"schedule_id": "x"}`)))
	require.ErrorIs(t, err, asynq.SkipRetry)
}

// TestRealSchedulers runs two asynq periodic task managers over the same schedule
// and a worker, and checks each tick produced exactly one export.
func TestRealSchedulers(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	rd := testenv.RedisDB(t)
	s := mkSchedule(t, pg, "@every 2s", "UTC")
	st := mkStorage(t, pg, "@every 2s", "UTC")
	var mgrs []*asynq.PeriodicTaskManager
	for range 2 {
		m, err := asynq.NewPeriodicTaskManager(asynq.PeriodicTaskManagerOpts{
			RedisConnOpt: rd.Opt(), PeriodicTaskConfigProvider: &schedule.Provider{Pool: pg.Pool, Log: quiet},
			SyncInterval: time.Second, SchedulerOpts: &asynq.SchedulerOpts{LogLevel: asynq.FatalLevel},
		})
		require.NoError(t, err)
		require.NoError(t, m.Start())
		mgrs = append(mgrs, m)
	}
	srv := asynq.NewServer(rd.Opt(), asynq.Config{Concurrency: 4, Queues: map[string]int{queue.QueueExport: 1, queue.QueueSync: 1}, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	tasks.Register(mux, (&schedule.Handler{Pool: pg.Pool, Log: quiet}).Work)
	tasks.Register(mux, (&schedule.SyncHandler{Pool: pg.Pool, Log: quiet}).Work)
	require.NoError(t, srv.Start(mux))
	// Until the schedule has fired three times (a tick every 2 s, the two managers
	// both firing each): there is a second copy of every tick to deduplicate.
	require.Eventually(t, func() bool {
		var ticks int
		err := pg.Pool.QueryRow(context.Background(), "SELECT count(DISTINCT scheduled_for) FROM export_logs WHERE schedule_id=$1", s.ID).Scan(&ticks)
		return err == nil && ticks >= 3
	}, 30*time.Second, 50*time.Millisecond, "the schedule never fired three times")
	for _, m := range mgrs {
		m.Shutdown()
	}
	srv.Shutdown()

	ctx := context.Background()
	rows, err := pg.Pool.Query(ctx, "SELECT scheduled_for, count(*) FROM export_logs WHERE schedule_id=$1 GROUP BY 1 ORDER BY 1", s.ID)
	require.NoError(t, err)
	ticks := 0
	for rows.Next() {
		var at time.Time
		var n int
		require.NoError(t, rows.Scan(&at, &n))
		require.Equal(t, 1, n, "tick %s has %d exports", at, n)
		require.Zero(t, at.Unix()%2, "ticks are aligned")
		ticks++
	}
	require.NoError(t, rows.Err())
	require.GreaterOrEqual(t, ticks, 2, "the schedule fired")

	// The storage's ticks: one event each; the first made the run, which no worker
	// takes here, so every later tick joined it.
	events := tickEvents(t, pg, st.ID)
	require.GreaterOrEqual(t, len(events), 2, "the storage's schedule fired")
	runs := syncRuns(t, pg, st.ID)
	require.Len(t, runs, 1)
	for i, e := range events {
		require.Equal(t, runs[0].ID, e.RunID)
		require.Equal(t, i > 0, e.Joined)
		require.Zero(t, e.ScheduledFor.Unix()%2, "ticks are aligned")
	}
	require.True(t, runs[0].ScheduledFor.Equal(events[0].ScheduledFor))
}

func TestCheckIntervalRefusesSpecsThatFireTooOften(t *testing.T) {
	from := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		spec, tz string
		min      time.Duration
		ok       bool
	}{
		{"@every 1s", "UTC", time.Hour, false},
		{"@every 59m", "UTC", time.Hour, false},
		{"@every 1h", "UTC", time.Hour, true},
		{"@hourly", "UTC", time.Hour, true},
		{"@daily", "Europe/Paris", time.Hour, true},
		{"* * * * *", "UTC", time.Hour, false},
		{"*/5 * * * *", "UTC", time.Hour, false},
		{"0 2 * * *", "Europe/Paris", time.Hour, true},
		// A day apart on average, half an hour apart at worst.
		{"0,30 2 * * *", "UTC", time.Hour, false},
		// 23:00 and the next day's 00:00 are exactly the minimum apart.
		{"0 0,23 * * *", "UTC", time.Hour, true},
		{"59 0,23 * * *", "UTC", 2 * time.Hour, false},
		{"0 0 1,31 * *", "UTC", 48 * time.Hour, false}, // the 31st and the 1st are a day apart
		{"0 0 1,15 * *", "UTC", 48 * time.Hour, true},
		{"* * * * *", "UTC", time.Second, true},
		{"@every 8s", "UTC", time.Second, true},
		{"@every 1s", "UTC", 0, true},
	} {
		err := schedule.CheckInterval(c.spec, c.tz, c.min, from)
		if c.ok {
			require.NoError(t, err, "%s in %s, min %s", c.spec, c.tz, c.min)
			continue
		}
		var tf *schedule.TooFrequentError
		require.ErrorAs(t, err, &tf, "%s in %s, min %s", c.spec, c.tz, c.min)
		require.Less(t, tf.Gap, c.min)
	}
	require.Error(t, schedule.CheckInterval("every tuesday", "UTC", time.Hour, from))
}

// A row that fires more often than the minimum (written before the limit, or by
// hand) is not scheduled; the others are.
func TestProviderSkipsSchedulesThatFireTooOften(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	fast := mkSchedule(t, pg, "@every 1s", "UTC")
	slow := mkSchedule(t, pg, "0 2 * * *", "Europe/Paris")
	specs := func(p *schedule.Provider) []string {
		cfgs, err := p.GetConfigs()
		require.NoError(t, err)
		var out []string
		for _, c := range cfgs {
			out = append(out, c.Cronspec)
		}
		return out
	}
	want := []string{schedule.Spec(fast.CronSpec, "UTC"), schedule.Spec(slow.CronSpec, "Europe/Paris")}
	require.ElementsMatch(t, want, specs(&schedule.Provider{Pool: pg.Pool, Log: quiet}), "no minimum, no check")
	p := &schedule.Provider{Pool: pg.Pool, Log: quiet, MinInterval: time.Hour}
	for range 2 { // the second sync reads the remembered verdicts
		require.Equal(t, want[1:], specs(p))
	}
}
