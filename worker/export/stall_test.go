package export_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/heartbeat"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/zipstream"
	"github.com/labelq/labelq/worker/export"
)

// stallWorkerEnv names the variables that turn this test binary into an export
// worker (TestStallWorkerProcess) for TestKill9MidExportShowsStalled.
const stallWorkerEnv = "LABELQ_EXPORT_STALL_WORKER"

// holding is what the worker process prints once its archive has files in it
// and it holds the pack there until it is killed.
const holding = "export worker: packing, holding the archive"

// stallBeat is the heartbeat interval of the test: the API says stalled after
// heartbeat.StallBeats of them without a beat.
const stallBeat = 200 * time.Millisecond

// asynqLease is how long asynq lets a task's lease run before another worker
// may take the task (asynq's base.LeaseDuration); a killed export said running
// at least this long before heartbeats.
const asynqLease = 30 * time.Second

// TestKill9MidExportShowsStalled runs an export in a worker process that holds
// its archive mid-pack: while it lives the API answers running, beat after beat,
// although nothing moves (no progress is written); once it is killed with
// SIGKILL the API answers stalled within a few beats, long before asynq's lease
// would let another worker take the task; another worker's run then completes
// the export.
func TestKill9MidExportShowsStalled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 4 {
		f.dataset(fmt.Sprintf("f%d.txt", i), []byte(strings.Repeat("a cat on a mat ", 100+i)), "text/plain")
	}
	e := f.newExport(`{"include_files":true,"include_annotations":false}`)
	c := f.apiClient(t, stallBeat)

	cmd := testenv.StartHelperProcess(t, "TestStallWorkerProcess", []string{
		stallWorkerEnv + "=1",
		stallWorkerEnv + "_DB=" + f.pg.URL,
		stallWorkerEnv + "_S3=" + strings.Join([]string{f.s3.Endpoint, f.s3.AccessKey, f.s3.SecretKey, f.s3.Store.Bucket}, ","),
		stallWorkerEnv + "_EXPORT=" + strconv.FormatInt(e.ID, 10),
	}, holding, 2*time.Minute) // the worker process holds its archive

	// Alive and slow: over several stall windows, every answer is running and
	// the heartbeat moves on.
	first := c.export(t, e.ID)
	require.Equal(t, "running", first.Status)
	require.NotNil(t, first.HeartbeatAt)
	last := first
	for until := time.Now().Add(3 * heartbeat.StallAfter(stallBeat)); time.Now().Before(until); time.Sleep(stallBeat / 2) {
		last = c.export(t, e.ID)
		require.Equal(t, "running", last.Status, "a live worker's export, heartbeat %v", last.HeartbeatAt)
	}
	require.True(t, last.HeartbeatAt.After(*first.HeartbeatAt), "the heartbeat did not move while the worker held its archive")
	require.Equal(t, first.FilesDone, last.FilesDone, "the worker wrote progress: the heartbeat alone should keep it running")

	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred function runs
	_ = cmd.Wait()
	killed := time.Now()
	var st api.Export
	for st = c.export(t, e.ID); st.Status != api.StatusStalled && time.Since(killed) < asynqLease/3; st = c.export(t, e.ID) {
		require.Equal(t, "running", st.Status)
		time.Sleep(stallBeat / 4)
	}
	require.Equal(t, api.StatusStalled, st.Status, "the killed worker's export, heartbeat %v", st.HeartbeatAt)
	t.Logf("stalled %v after the kill (heartbeat every %v, stalled after %v)",
		time.Since(killed).Round(10*time.Millisecond), stallBeat, heartbeat.StallAfter(stallBeat))
	require.Equal(t, db.ExportStatusRunning, f.row(e.ID).Status, "the row itself still says running, for the next delivery")
	frozen := c.export(t, e.ID)
	require.Equal(t, *st.HeartbeatAt, *frozen.HeartbeatAt, "nothing beats for a killed worker")

	// Another worker's delivery takes the export over and completes it.
	require.NoError(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
	done := c.export(t, e.ID)
	require.Equal(t, "completed", done.Status)
	require.True(t, done.HeartbeatAt.After(*frozen.HeartbeatAt), "the new run beat")
	require.Len(t, f.completedArchive(e.ID).paths(), 4)
	require.EqualValues(t, 2, f.row(e.ID).Attempts)
}

// TestStallWorkerProcess is the worker process of TestKill9MidExportShowsStalled;
// run on its own it does nothing. It writes no progress (ProgressEvery of an
// hour), so only its heartbeat shows it is alive.
func TestStallWorkerProcess(t *testing.T) {
	if os.Getenv(stallWorkerEnv) == "" {
		return
	}
	ctx := context.Background()
	pool, err := database.Open(ctx, os.Getenv(stallWorkerEnv+"_DB"), 4)
	require.NoError(t, err)
	s3 := strings.Split(os.Getenv(stallWorkerEnv+"_S3"), ",")
	require.Len(t, s3, 4)
	own, err := storage.New(storage.Config{Endpoint: s3[0], AccessKey: s3[1], SecretKey: s3[2], Bucket: s3[3], Region: "us-east-1"})
	require.NoError(t, err)
	allow, err := storage.ParseAllowlist("", s3[0])
	require.NoError(t, err)
	id, err := strconv.ParseInt(os.Getenv(stallWorkerEnv+"_EXPORT"), 10, 64)
	require.NoError(t, err)
	h := export.NewHandler(export.Deps{
		Pool: pool, Store: own, Storages: storage.NewResolver(own, nil, allow, db.New(pool)), Log: testenv.Quiet(),
		Heartbeat: stallBeat, Options: export.Options{ProgressEvery: time.Hour, PartSize: minPartSize},
	})
	export.SetProgressHook(h, func(_ context.Context, p zipstream.Progress) {
		if p.FilesDone >= 2 {
			fmt.Println(holding)
			_ = os.Stdout.Sync()
			time.Sleep(time.Hour) // until killed
		}
	})
	_ = h.Run(ctx, id)
	t.Fatal("the export ended; it should have been killed while holding its archive")
}

// apiClient serves the API over the fixture's database, with the given
// heartbeat interval, and reads it as the fixture's organization.
func (f *fixture) apiClient(t *testing.T, beat time.Duration) apiClient {
	t.Helper()
	mux := http.NewServeMux()
	(&api.Server{Pool: f.pg.APIPool, Log: testenv.Quiet(), HeartbeatInterval: beat}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tok, err := admin.CreateToken(context.Background(), f.pg.Pool, f.org.Name, "test")
	require.NoError(t, err)
	return apiClient{base: srv.URL, token: tok.Secret}
}

type apiClient struct{ base, token string }

// export is GET /v1/exports/{id}.
func (c apiClient) export(t *testing.T, id int64) api.Export {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/exports/%d", c.base, id), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var e api.Export
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	return e
}
