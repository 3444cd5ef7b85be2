package schedule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/schedule"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// mkStorage is an import storage in labelq's bucket with a sync schedule (spec ""
// for none).
func mkStorage(t *testing.T, pg *testenv.PG, spec, tz string) db.Storage {
	t.Helper()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	var cron *string
	if spec != "" {
		cron = &spec
	}
	var id int64
	require.NoError(t, pg.Pool.QueryRow(context.Background(), `INSERT INTO storages (org_id, project_id, name, prefix, sync_cron, sync_timezone)
		VALUES ($1, $2, 'bucket', $3, $4, $5) RETURNING id`, org.ID, pr.ID, fmt.Sprintf("orgs/%d/in/", org.ID), cron, tz).Scan(&id))
	st, err := pg.Q.StorageGetByID(context.Background(), id)
	require.NoError(t, err)
	return st
}

func syncTask(id int64) *asynq.Task {
	b, _ := json.Marshal(tasks.ScheduleSync{StorageID: id})
	return asynq.NewTask(tasks.ScheduleSync{}.Kind(), b)
}

type tickEvent struct {
	ScheduledFor time.Time `json:"scheduled_for"`
	RunID        int64     `json:"run_id"`
	Joined       bool      `json:"joined"`
}

func tickEvents(t *testing.T, pg *testenv.PG, storageID int64) []tickEvent {
	t.Helper()
	rows, err := pg.Pool.Query(context.Background(), `SELECT metadata FROM event_log
		WHERE entity_type = 'storage' AND entity_id = $1 AND event_type = $2 ORDER BY id`, storageID, schedule.SyncEventScheduled)
	require.NoError(t, err)
	defer rows.Close()
	var out []tickEvent
	for rows.Next() {
		var raw []byte
		require.NoError(t, rows.Scan(&raw))
		var e tickEvent
		require.NoError(t, json.Unmarshal(raw, &e))
		out = append(out, e)
	}
	require.NoError(t, rows.Err())
	return out
}

func syncRuns(t *testing.T, pg *testenv.PG, storageID int64) []db.SyncRun {
	t.Helper()
	rows, err := pg.Pool.Query(context.Background(), `SELECT id, trigger, scheduled_for, status FROM sync_runs WHERE storage_id = $1 ORDER BY id`, storageID)
	require.NoError(t, err)
	defer rows.Close()
	var out []db.SyncRun
	for rows.Next() {
		var r db.SyncRun
		require.NoError(t, rows.Scan(&r.ID, &r.Trigger, &r.ScheduledFor, &r.Status))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestTwoSchedulersOneSyncRunPerTick fires one tick of a storage's schedule four
// times at once, as scheduler copies do, and expects one run with one task. The
// next tick, while that run is live, joins it; a late second firing of that tick,
// after the run ended, still makes nothing; the tick after makes the next run.
func TestTwoSchedulersOneSyncRunPerTick(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	st := mkStorage(t, pg, "0 * * * *", "Europe/Paris")
	at := time.Date(2026, 11, 22, 10, 0, 3, 0, time.UTC)
	tick := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	h := &schedule.SyncHandler{Pool: pg.Pool, Log: quiet, Now: func() time.Time { return at }}
	fire := func() { require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, syncTask(st.ID))) }
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); fire() }()
	}
	wg.Wait()
	runs := syncRuns(t, pg, st.ID)
	require.Len(t, runs, 1)
	require.Equal(t, "schedule", runs[0].Trigger)
	require.True(t, runs[0].ScheduledFor.Equal(tick), "run for %s", runs[0].ScheduledFor)
	testenv.RequireQueued(t, pg.Pool, st.OrgID, tasks.StorageSync{RunID: runs[0].ID})
	require.Len(t, testenv.OutboxRows(t, pg.Pool, st.OrgID), 1, "one task for the one run")
	events := tickEvents(t, pg, st.ID)
	require.Len(t, events, 1)
	require.Equal(t, tickEvent{ScheduledFor: events[0].ScheduledFor, RunID: runs[0].ID, Joined: false}, events[0])
	require.True(t, events[0].ScheduledFor.Equal(tick))

	// 11:00 fires while the 10:00 run is still walking the bucket: it joins it.
	h.Now = func() time.Time { return at.Add(time.Hour) }
	fire()
	require.Len(t, syncRuns(t, pg, st.ID), 1)
	require.Len(t, testenv.OutboxRows(t, pg.Pool, st.OrgID), 1)
	events = tickEvents(t, pg, st.ID)
	require.Len(t, events, 2)
	require.Equal(t, runs[0].ID, events[1].RunID)
	require.True(t, events[1].Joined)

	// The run ends; a late copy of the 11:00 firing arrives: the tick was handled.
	_, err := pg.Pool.Exec(ctx, `UPDATE sync_runs SET status = 'completed', completed_at = now() WHERE id = $1`, runs[0].ID)
	require.NoError(t, err)
	fire()
	require.Len(t, syncRuns(t, pg, st.ID), 1, "a second firing of a joined tick starts nothing")
	require.Len(t, tickEvents(t, pg, st.ID), 2)

	h.Now = func() time.Time { return at.Add(2 * time.Hour) }
	fire()
	runs = syncRuns(t, pg, st.ID)
	require.Len(t, runs, 2)
	require.True(t, runs[1].ScheduledFor.Equal(tick.Add(2*time.Hour)))
	testenv.RequireQueued(t, pg.Pool, st.OrgID, tasks.StorageSync{RunID: runs[1].ID})
	require.Len(t, testenv.OutboxRows(t, pg.Pool, st.OrgID), 2)
}

// TestSyncScheduleFiresNothingForAStorageWithoutOne: a disabled, deleted,
// unscheduled or export storage's firing (a scheduler that has not re-read the
// table yet) and a storage that is gone start nothing; a bad payload is permanent.
func TestSyncScheduleFiresNothingForAStorageWithoutOne(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	h := &schedule.SyncHandler{Pool: pg.Pool, Log: quiet}
	for name, change := range map[string]string{
		"disabled":    `UPDATE storages SET enabled = false WHERE id = $1`,
		"deleted":     `UPDATE storages SET deleted_at = now() WHERE id = $1`,
		"unscheduled": `UPDATE storages SET sync_cron = NULL WHERE id = $1`,
		"export":      `UPDATE storages SET kind = 'export' WHERE id = $1`,
	} {
		t.Run(name, func(t *testing.T) {
			st := mkStorage(t, pg, "@every 1m", "UTC")
			_, err := pg.Pool.Exec(ctx, change, st.ID)
			require.NoError(t, err)
			require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, syncTask(st.ID)))
			require.Empty(t, syncRuns(t, pg, st.ID))
			require.Empty(t, tickEvents(t, pg, st.ID))
			require.Empty(t, testenv.OutboxRows(t, pg.Pool, st.OrgID))
		})
	}
	require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, syncTask(987654)), "a storage that is gone")
	var n int
	require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT count(*) FROM sync_runs").Scan(&n))
	require.Zero(t, n)
	err := tasks.Handle(h.Work).ProcessTask(ctx, asynq.NewTask(tasks.ScheduleSync{}.Kind(), []byte(`{"storage_id": "x"}`)))
	require.ErrorIs(t, err, asynq.SkipRetry)

	// The control: the same storage, scheduled, does start a run.
	st := mkStorage(t, pg, "@every 1m", "UTC")
	require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, syncTask(st.ID)))
	require.Len(t, syncRuns(t, pg, st.ID), 1)
}

// TestProviderSchedulesStorageSyncs: one schedule:storage_sync per scheduled
// import storage, beside the export schedules; a storage whose schedule fires more
// often than the minimum is skipped like an export schedule; disabled, deleted,
// unscheduled and export storages are not scheduled.
func TestProviderSchedulesStorageSyncs(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	export := mkSchedule(t, pg, "0 3 * * *", "UTC")
	fast := mkStorage(t, pg, "@every 1s", "UTC")
	slow := mkStorage(t, pg, "30 2 * * *", "Europe/Paris")
	for _, change := range []string{
		`UPDATE storages SET enabled = false WHERE id = $1`,
		`UPDATE storages SET deleted_at = now() WHERE id = $1`,
		`UPDATE storages SET kind = 'export' WHERE id = $1`,
		`UPDATE storages SET sync_cron = NULL WHERE id = $1`,
	} {
		st := mkStorage(t, pg, "@hourly", "UTC")
		_, err := pg.Pool.Exec(ctx, change, st.ID)
		require.NoError(t, err)
	}
	type scheduled struct {
		Spec, Kind, Queue string
		Payload           string
	}
	configs := func(p *schedule.Provider) []scheduled {
		cfgs, err := p.GetConfigs()
		require.NoError(t, err)
		var out []scheduled
		for _, c := range cfgs {
			queue := ""
			for _, o := range c.Opts {
				if o.Type() == asynq.QueueOpt {
					queue = o.Value().(string)
				}
			}
			out = append(out, scheduled{c.Cronspec, c.Task.Type(), queue, string(c.Task.Payload())})
		}
		return out
	}
	exp := scheduled{schedule.Spec(export.CronSpec, "UTC"), tasks.ScheduleExport{}.Kind(), "export", fmt.Sprintf(`{"schedule_id":%d}`, export.ID)}
	fastSync := scheduled{schedule.Spec("@every 1s", "UTC"), tasks.ScheduleSync{}.Kind(), "sync", fmt.Sprintf(`{"storage_id":%d}`, fast.ID)}
	slowSync := scheduled{schedule.Spec("30 2 * * *", "Europe/Paris"), tasks.ScheduleSync{}.Kind(), "sync", fmt.Sprintf(`{"storage_id":%d}`, slow.ID)}
	require.ElementsMatch(t, []scheduled{exp, fastSync, slowSync}, configs(&schedule.Provider{Pool: pg.Pool, Log: quiet}), "no minimum, no check")
	p := &schedule.Provider{Pool: pg.Pool, Log: quiet, MinInterval: time.Hour}
	for range 2 { // the second sync reads the remembered verdicts
		require.ElementsMatch(t, []scheduled{exp, slowSync}, configs(p))
	}
}
