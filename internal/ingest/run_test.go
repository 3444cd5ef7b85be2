package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// runTestStorage is an import storage in labelq's own bucket of a new organization.
func runTestStorage(t *testing.T, pg *testenv.PG, adjust ...func(*db.StorageCreateParams)) db.Storage {
	t.Helper()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	arg := db.StorageCreateParams{
		OrgID: org.ID, ProjectID: pr.ID, Kind: db.StorageKindImport, Name: "drop", Prefix: storage.OwnPrefix(org.ID) + "drop/",
		UseTls: true, KeyFilterKind: "glob", FileType: db.FileTypeDataset, Rules: json.RawMessage(`[]`), SyncTimezone: "UTC", Enabled: true,
	}
	for _, a := range adjust {
		a(&arg)
	}
	st, err := pg.Q.StorageCreate(context.Background(), arg)
	require.NoError(t, err)
	return st
}

func startRun(t *testing.T, pg *testenv.PG, st db.Storage, trigger string, tick *time.Time) (db.SyncRun, bool, error) {
	t.Helper()
	var (
		run    db.SyncRun
		joined bool
	)
	err := database.Tx(context.Background(), pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		var err error
		run, joined, err = ingest.StartRun(context.Background(), q, st, trigger, tick)
		return err
	})
	return run, joined, err
}

func syncTasks(t *testing.T, pg *testenv.PG, orgID int64) int {
	t.Helper()
	n := 0
	for _, k := range testenv.Kinds(testenv.OutboxRows(t, pg.Pool, orgID)) {
		if k == (tasks.StorageSync{}).Kind() {
			n++
		}
	}
	return n
}

func finishRun(t *testing.T, pg *testenv.PG, id int64) {
	t.Helper()
	_, err := pg.Pool.Exec(context.Background(), `UPDATE sync_runs SET status = 'completed', completed_at = now() WHERE id = $1`, id)
	require.NoError(t, err)
}

func TestStartRunJoinsTheLiveRun(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	st := runTestStorage(t, pg)

	first, joined, err := startRun(t, pg, st, ingest.TriggerAPI, nil)
	require.NoError(t, err)
	require.False(t, joined)
	require.Equal(t, db.SyncRunStatusPending, first.Status)
	require.Equal(t, st.ID, first.StorageID)
	require.Equal(t, st.ProjectID, first.ProjectID)
	testenv.RequireQueued(t, pg.Pool, st.OrgID, tasks.StorageSync{RunID: first.ID})

	again, joined, err := startRun(t, pg, st, ingest.TriggerAPI, nil)
	require.NoError(t, err)
	require.True(t, joined, "a second request joins the live run")
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, 1, syncTasks(t, pg, st.OrgID), "joining queues nothing")

	// Running is live too.
	_, err = pg.Pool.Exec(context.Background(), `UPDATE sync_runs SET status = 'running', attempts = 1, started_at = now() WHERE id = $1`, first.ID)
	require.NoError(t, err)
	again, joined, err = startRun(t, pg, st, ingest.TriggerAPI, nil)
	require.NoError(t, err)
	require.True(t, joined)
	require.Equal(t, first.ID, again.ID)

	// Once it ended, the next request makes a new run with its own task.
	finishRun(t, pg, first.ID)
	next, joined, err := startRun(t, pg, st, ingest.TriggerAPI, nil)
	require.NoError(t, err)
	require.False(t, joined)
	require.NotEqual(t, first.ID, next.ID)
	testenv.RequireQueued(t, pg.Pool, st.OrgID, tasks.StorageSync{RunID: next.ID})
	require.Equal(t, 2, syncTasks(t, pg, st.OrgID))
}

func TestStartRunRolledBackQueuesNothing(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	st := runTestStorage(t, pg)
	boom := errors.New("the caller failed after StartRun")
	err := database.Tx(context.Background(), pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		if _, _, err := ingest.StartRun(context.Background(), q, st, ingest.TriggerAPI, nil); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Zero(t, syncTasks(t, pg, st.OrgID))
	var runs int
	require.NoError(t, pg.Pool.QueryRow(context.Background(), `SELECT count(*) FROM sync_runs WHERE storage_id = $1`, st.ID).Scan(&runs))
	require.Zero(t, runs)
}

func TestStartRunOncePerScheduleTick(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	st := runTestStorage(t, pg)
	tick := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

	run, joined, err := startRun(t, pg, st, ingest.TriggerSchedule, &tick)
	require.NoError(t, err)
	require.False(t, joined)
	require.Equal(t, ingest.TriggerSchedule, run.Trigger)
	require.NotNil(t, run.ScheduledFor)
	require.True(t, tick.Equal(*run.ScheduledFor))

	// The tick fired again after its run ended: still that run, nothing new.
	finishRun(t, pg, run.ID)
	again, joined, err := startRun(t, pg, st, ingest.TriggerSchedule, &tick)
	require.NoError(t, err)
	require.True(t, joined)
	require.Equal(t, run.ID, again.ID)
	require.Equal(t, db.SyncRunStatusCompleted, again.Status)
	require.Equal(t, 1, syncTasks(t, pg, st.OrgID))

	// The next tick while an API run is live joins that run.
	live, _, err := startRun(t, pg, st, ingest.TriggerAPI, nil)
	require.NoError(t, err)
	nextTick := tick.Add(time.Hour)
	got, joined, err := startRun(t, pg, st, ingest.TriggerSchedule, &nextTick)
	require.NoError(t, err)
	require.True(t, joined)
	require.Equal(t, live.ID, got.ID)
}

func TestStartRunConcurrentRequestsMakeOneRun(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	st := runTestStorage(t, pg)
	const n = 6
	ids := make([]int64, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run, joined, err := startRun(t, pg, st, ingest.TriggerAPI, nil)
			ids[i], created[i], errs[i] = run.ID, !joined, err
		}()
	}
	wg.Wait()
	made := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, ids[0], ids[i], "every request names the one run")
		if created[i] {
			made++
		}
	}
	require.Equal(t, 1, made, "exactly one request made the run")
	require.Equal(t, 1, syncTasks(t, pg, st.OrgID))
}

func TestStartRunRefusesWhatCannotSync(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	for name, adjust := range map[string]func(*db.StorageCreateParams){
		"export storage": func(p *db.StorageCreateParams) { p.Kind = db.StorageKindExport },
		"disabled":       func(p *db.StorageCreateParams) { p.Enabled = false },
	} {
		t.Run(name, func(t *testing.T) {
			st := runTestStorage(t, pg, adjust)
			_, _, err := startRun(t, pg, st, ingest.TriggerAPI, nil)
			require.ErrorIs(t, err, ingest.ErrNotSyncable)
			require.Contains(t, err.Error(), fmt.Sprintf("storage %d", st.ID))
			require.Zero(t, syncTasks(t, pg, st.OrgID))
		})
	}
}
