package storagesync_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
	storagesync "github.com/labelq/labelq/worker/sync"
)

// helperEnv names the variables that turn this test binary into a sync worker
// (TestSyncWorkerProcess) for TestKill9MidSyncResumes.
const helperEnv = "LABELQ_SYNC_TEST_WORKER"

// inPage3 is what the worker process prints when its third page is registered
// and not yet committed.
const inPage3 = "sync worker: page 3 registered, not committed"

// TestKill9MidSyncResumes kills a worker process with SIGKILL while a page's
// transaction is open, after two pages committed; the next attempt resumes
// after the checkpoint, no key becomes a file twice and the counts add up.
func TestKill9MidSyncResumes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, nil)
	keys := f.putN(t, st.Prefix, 23)
	id := f.newRun(t, st)

	cmd := testenv.StartHelperProcess(t, "TestSyncWorkerProcess", []string{
		helperEnv + "=1",
		helperEnv + "_DB=" + f.pg.URL,
		helperEnv + "_S3=" + strings.Join([]string{f.s3.Endpoint, f.s3.AccessKey, f.s3.SecretKey, f.s3.Store.Bucket}, ","),
		helperEnv + "_RUN=" + strconv.FormatInt(id, 10),
	}, inPage3, 2*time.Minute) // the worker process is in its third page
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred function, no rollback sent
	_ = cmd.Wait()

	r := f.run(t, id)
	require.Equal(t, db.SyncRunStatusRunning, r.Status, "a killed run stays running for its retry")
	require.EqualValues(t, 2, r.Pages)
	require.Equal(t, keys[9], *r.Checkpoint)
	require.EqualValues(t, 10, r.KeysListed)

	require.NoError(t, process(t, f.handler(storagesync.Deps{PageSize: 5}), id))
	r = f.run(t, id)
	require.Equal(t, db.SyncRunStatusCompleted, r.Status)
	require.EqualValues(t, 2, r.Attempts)
	require.EqualValues(t, 23, r.KeysListed)
	require.EqualValues(t, 23, r.KeysNew)
	require.Equal(t, r.KeysListed, r.KeysNew+r.KeysChanged+r.KeysUnchanged+r.KeysFiltered+r.KeysSkipped)
	require.EqualValues(t, 5, r.Pages, "2 before the kill, 3 after")
	requireOneFileEach(t, f, st, keys)
}

// TestSyncWorkerProcess is the worker process of TestKill9MidSyncResumes; run
// on its own it does nothing.
func TestSyncWorkerProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		return
	}
	ctx := context.Background()
	pool, err := database.Open(ctx, os.Getenv(helperEnv+"_DB"), 4)
	require.NoError(t, err)
	s3 := strings.Split(os.Getenv(helperEnv+"_S3"), ",")
	require.Len(t, s3, 4)
	own, err := storage.New(storage.Config{Endpoint: s3[0], AccessKey: s3[1], SecretKey: s3[2], Bucket: s3[3], Region: "us-east-1"})
	require.NoError(t, err)
	allow, err := storage.ParseAllowlist("", s3[0])
	require.NoError(t, err)
	id, err := strconv.ParseInt(os.Getenv(helperEnv+"_RUN"), 10, 64)
	require.NoError(t, err)
	h := storagesync.NewHandler(storagesync.Deps{
		Pool: pool, Storages: storage.NewResolver(own, nil, allow, db.New(pool)), Log: testenv.Quiet(), PageSize: 5,
	})
	storagesync.SetHooks(h, func(_ context.Context, page int) {
		if page == 3 {
			fmt.Println(inPage3)
			_ = os.Stdout.Sync()
			time.Sleep(time.Hour) // until killed
		}
	}, nil)
	_ = process(t, h, id)
	t.Fatal("the sync ended; it should have been killed in its third page")
}
