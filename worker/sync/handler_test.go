package storagesync_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	storagesync "github.com/labelq/labelq/worker/sync"
)

func TestFirstSyncRegistersEveryKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.remoteStorage(t, storage.Credentials{AccessKeyID: f.s3.AccessKey, SecretAccessKey: f.s3.SecretKey}, nil)
	keys := f.putN(t, st.Prefix+"a/", 13)
	keys = append(keys, f.putN(t, st.Prefix+"b/", 12)...)
	f.put(t, "elsewhere/x.txt", []byte("not under the prefix"))
	before := f.writes(t)

	r := f.sync(t, f.handler(storagesync.Deps{}), st)

	require.EqualValues(t, 25, r.KeysListed)
	require.EqualValues(t, 25, r.KeysNew)
	require.Zero(t, r.KeysChanged+r.KeysUnchanged+r.KeysFiltered+r.KeysGone+r.KeysSkipped)
	require.EqualValues(t, 3, r.Pages, "10 + 10 + 5 keys")
	require.Equal(t, keys[len(keys)-1], *r.Checkpoint)
	require.EqualValues(t, 1, r.Attempts)
	require.NotNil(t, r.CompletedAt)
	require.Nil(t, r.Error)

	links := f.links(t, st)
	require.Len(t, links, 25)
	for _, k := range keys {
		l, ok := links[k]
		require.True(t, ok, k)
		require.Equal(t, strings.TrimPrefix(k, st.Prefix), l.Name)
		require.Equal(t, db.FileTypeDataset, l.FileType)
		require.EqualValues(t, 1, l.VersionNumber)
		require.Equal(t, k, l.StoragePath)
		require.Equal(t, st.ID, *l.StorageID)
		require.Equal(t, l.Size, *l.ExpectedSize)
		require.NotEmpty(t, l.Etag)
		testenv.RequireQueued(t, f.pg.Pool, f.org.ID, tasks.Validate{VersionID: l.VersionID})
	}
	require.Equal(t, writes{
		"files": {25, 0}, "file_versions": {25, 0}, "storage_links": {25, 0}, "outbox": {25, 0},
	}, f.writes(t).since(before))
	require.EqualValues(t, 1, f.count(t, `SELECT count(*) FROM event_log WHERE entity_type = 'sync_run' AND entity_id = $1 AND event_type = 'completed'`, r.ID))
}

func TestResyncWritesOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, nil)
	h := f.handler(storagesync.Deps{})
	keys := f.putN(t, st.Prefix, 20)
	first := f.sync(t, h, st)
	require.EqualValues(t, 20, first.KeysNew)
	was := f.links(t, st)

	changed := []string{keys[2], keys[9], keys[15]}
	for _, k := range changed {
		f.put(t, k, []byte("new content of "+k))
	}
	added := []string{st.Prefix + "k005a.txt", st.Prefix + "zz.txt"}
	for _, k := range added {
		f.put(t, k, []byte("added "+k))
	}
	f.remove(t, keys[11])
	before := f.writes(t)

	r := f.sync(t, h, st)
	require.EqualValues(t, 21, r.KeysListed)
	require.EqualValues(t, 2, r.KeysNew)
	require.EqualValues(t, 3, r.KeysChanged)
	require.EqualValues(t, 1, r.KeysGone)
	require.EqualValues(t, 16, r.KeysUnchanged)
	require.Zero(t, r.KeysFiltered+r.KeysSkipped)
	require.Equal(t, r.KeysListed, r.KeysNew+r.KeysChanged+r.KeysUnchanged+r.KeysFiltered+r.KeysSkipped)

	// New versions for exactly the 3 changed and the 2 new keys; links of
	// the changed ones point at version 2 of the same file.
	links := f.links(t, st)
	require.Len(t, links, 22)
	for _, k := range changed {
		require.Equal(t, was[k].FileID, links[k].FileID, k)
		require.EqualValues(t, 2, links[k].VersionNumber, k)
		require.NotEqual(t, was[k].Etag, links[k].Etag, k)
		testenv.RequireQueued(t, f.pg.Pool, f.org.ID, tasks.Validate{VersionID: links[k].VersionID})
	}
	for _, k := range added {
		require.EqualValues(t, 1, links[k].VersionNumber, k)
	}
	require.True(t, links[keys[11]].Gone)
	require.False(t, links[keys[11]].FileDeleted, "archive_gone is off: the file stays")
	require.EqualValues(t, 25, f.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1`, f.pr.ID))

	// Nothing else: 2 files; 5 versions and their 5 validations; 2 links
	// inserted, 3 moved to their new version, 1 marked gone.
	require.Equal(t, writes{
		"files": {2, 0}, "file_versions": {5, 0}, "storage_links": {2, 4}, "outbox": {5, 0},
	}, f.writes(t).since(before))

	t.Run("an unchanged re-sync writes nothing", func(t *testing.T) {
		before := f.writes(t)
		r := f.sync(t, h, st)
		require.EqualValues(t, 21, r.KeysListed)
		require.EqualValues(t, 21, r.KeysUnchanged)
		require.Zero(t, r.KeysNew+r.KeysChanged+r.KeysGone, "a key already gone is not counted again")
		require.Equal(t, writes{
			"files": {0, 0}, "file_versions": {0, 0}, "storage_links": {0, 0}, "outbox": {0, 0},
		}, f.writes(t).since(before))
	})

	t.Run("a key that comes back is linked again", func(t *testing.T) {
		f.put(t, keys[11], []byte(fmt.Sprintf("object %d of %s", 11, st.Prefix)))
		r := f.sync(t, h, st)
		require.EqualValues(t, 22, r.KeysUnchanged, "same bytes as before it went")
		l := f.links(t, st)[keys[11]]
		require.False(t, l.Gone)
		require.EqualValues(t, 1, l.VersionNumber)
	})
}

func TestArchiveGone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, func(r *storageRow) { r.ArchiveGone = true })
	h := f.handler(storagesync.Deps{})
	keys := f.putN(t, st.Prefix, 4)
	f.sync(t, h, st)
	f.remove(t, keys[3]) // the last key: caught by the listing's final range
	f.remove(t, keys[0])
	r := f.sync(t, h, st)
	require.EqualValues(t, 2, r.KeysGone)
	links := f.links(t, st)
	for _, k := range []string{keys[0], keys[3]} {
		require.True(t, links[k].Gone, k)
		require.True(t, links[k].FileDeleted, k)
	}
	require.False(t, links[keys[1]].FileDeleted)

	// Back with other bytes: the archived file returns with a new version.
	f.put(t, keys[0], []byte("different"))
	r = f.sync(t, h, st)
	require.EqualValues(t, 1, r.KeysChanged)
	l := f.links(t, st)[keys[0]]
	require.False(t, l.Gone)
	require.False(t, l.FileDeleted)
	require.EqualValues(t, 2, l.VersionNumber)
}

func TestResumeAfterCheckpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, nil)
	keys := f.putN(t, st.Prefix, 47)
	id := f.newRun(t, st)

	// The first attempt is cut off while its third page is in its transaction.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := f.handler(storagesync.Deps{})
	storagesync.SetHooks(h, func(_ context.Context, page int) {
		if page == 3 {
			cancel()
		}
	}, nil)
	err := processCtx(ctx, t, h, id)
	require.Error(t, err)
	require.False(t, errors.Is(err, asynq.SkipRetry), "an interrupted run is retried: %v", err)
	r := f.run(t, id)
	require.Equal(t, db.SyncRunStatusRunning, r.Status)
	require.EqualValues(t, 2, r.Pages)
	require.Equal(t, keys[19], *r.Checkpoint)
	require.EqualValues(t, 20, r.KeysListed)
	require.Len(t, f.links(t, st), 20, "page 3 did not commit")

	// The retry lists after the checkpoint and completes.
	require.NoError(t, process(t, f.handler(storagesync.Deps{}), id))
	r = f.run(t, id)
	require.Equal(t, db.SyncRunStatusCompleted, r.Status)
	require.EqualValues(t, 2, r.Attempts)
	require.EqualValues(t, 47, r.KeysListed)
	require.EqualValues(t, 47, r.KeysNew)
	require.Zero(t, r.KeysChanged+r.KeysUnchanged+r.KeysGone)
	require.EqualValues(t, 5, r.Pages)
	requireOneFileEach(t, f, st, keys)
}

// requireOneFileEach checks every key is linked once, to a file of its own with
// one version, and nothing else is in the project.
func requireOneFileEach(t *testing.T, f *fixture, st db.Storage, keys []string) {
	t.Helper()
	links := f.links(t, st)
	require.Len(t, links, len(keys))
	files := map[int64]bool{}
	for _, k := range keys {
		l, ok := links[k]
		require.True(t, ok, k)
		require.False(t, files[l.FileID], "file %d linked twice", l.FileID)
		files[l.FileID] = true
		require.EqualValues(t, 1, l.VersionNumber)
	}
	require.EqualValues(t, len(keys), f.count(t, `SELECT count(*) FROM files WHERE project_id = $1`, f.pr.ID))
	require.EqualValues(t, len(keys), f.count(t, `SELECT count(*) FROM file_versions WHERE project_id = $1`, f.pr.ID))
	require.EqualValues(t, len(keys), f.count(t, `SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate'`, f.org.ID))
}

func TestCancelMidRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, nil)
	keys := f.putN(t, st.Prefix, 35)
	id := f.newRun(t, st)
	h := f.handler(storagesync.Deps{})
	storagesync.SetHooks(h, nil, func(ctx context.Context, page int) {
		if page == 2 {
			_, err := f.pg.Pool.Exec(ctx, `UPDATE sync_runs SET cancel_requested_at = now() WHERE id = $1`, id)
			require.NoError(t, err)
		}
	})
	require.NoError(t, process(t, h, id))
	r := f.run(t, id)
	require.Equal(t, db.SyncRunStatusCancelled, r.Status)
	require.EqualValues(t, 2, r.Pages)
	require.Equal(t, keys[19], *r.Checkpoint, "the checkpoint stays where the run stopped")
	require.EqualValues(t, 20, r.KeysNew)
	require.NotNil(t, r.CompletedAt)
	require.EqualValues(t, 1, f.count(t, `SELECT count(*) FROM event_log WHERE entity_type = 'sync_run' AND entity_id = $1 AND event_type = 'cancelled'`, id))

	// A redelivered task of a finished run does nothing.
	require.NoError(t, process(t, h, id))
	require.Equal(t, r, f.run(t, id))
}

func TestBadCredentialsFailWithAReason(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const secret = "wrong-secret-Zq8x1v"
	cases := []struct {
		name  string
		creds storage.Credentials
		mod   func(*storageRow)
		want  []string
	}{
		{"wrong secret key", storage.Credentials{AccessKeyID: f.s3.AccessKey, SecretAccessKey: secret}, nil,
			[]string{"access denied listing bucket", f.s3.Endpoint, "with access key " + storage.Credentials{AccessKeyID: f.s3.AccessKey}.Hint(), "SignatureDoesNotMatch", "secret access key"}},
		{"unknown access key", storage.Credentials{AccessKeyID: "AKIAEXAMPLEUNKNOWN", SecretAccessKey: secret}, nil,
			[]string{"access denied listing bucket", "with access key AKIAEX…", "InvalidAccessKeyId"}},
		{"no such bucket", storage.Credentials{AccessKeyID: f.s3.AccessKey, SecretAccessKey: f.s3.SecretKey},
			func(r *storageRow) { r.Bucket = "no-such-bucket-here" },
			[]string{`bucket "no-such-bucket-here" at ` + f.s3.Endpoint + " does not exist", "bucket name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := f.remoteStorage(t, tc.creds, tc.mod)
			id := f.newRun(t, st)
			err := process(t, f.handler(storagesync.Deps{}), id)
			require.Error(t, err)
			require.True(t, errors.Is(err, asynq.SkipRetry), "permanent: %v", err)
			r := f.run(t, id)
			require.Equal(t, db.SyncRunStatusFailed, r.Status)
			require.NotNil(t, r.Error)
			for _, w := range tc.want {
				require.Contains(t, *r.Error, w)
			}
			require.NotContains(t, *r.Error, secret)
			require.NotContains(t, err.Error(), secret)
			require.Zero(t, f.count(t, `SELECT count(*) FROM storage_links WHERE storage_id = $1`, st.ID))
		})
	}
	require.False(t, f.logs.Contains(secret), "the secret key is in the logs")
	require.False(t, f.logs.Contains(f.s3.SecretKey), "a secret key is in the logs")
}

func TestUnreachableEndpointRetries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.remoteStorage(t, storage.Credentials{AccessKeyID: "AKIAUNREACHABLE", SecretAccessKey: "s"},
		func(r *storageRow) { r.Endpoint = unreachable; r.Bucket = "some-bucket" })
	id := f.newRun(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := processCtx(ctx, t, f.handler(storagesync.Deps{MaxAttempts: 2}), id)
	require.Error(t, err)
	require.False(t, errors.Is(err, asynq.SkipRetry), "an unreachable endpoint is retried: %v", err)
	r := f.run(t, id)
	require.Equal(t, db.SyncRunStatusRunning, r.Status)
	require.NotNil(t, r.Error)
	require.Contains(t, *r.Error, "labelq will try again")

	// The last attempt ends the run instead of leaving it running.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	err = processCtx(ctx2, t, f.handler(storagesync.Deps{MaxAttempts: 2}), id)
	require.True(t, errors.Is(err, asynq.SkipRetry), "%v", err)
	r = f.run(t, id)
	require.Equal(t, db.SyncRunStatusFailed, r.Status)
	require.Contains(t, *r.Error, "gave up after 2 attempts")
}

func TestEmptyPrefixCompletesWithZeros(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, nil)
	r := f.sync(t, f.handler(storagesync.Deps{}), st)
	require.Zero(t, r.KeysListed+r.KeysNew+r.KeysChanged+r.KeysUnchanged+r.KeysFiltered+r.KeysGone+r.KeysSkipped)
	require.EqualValues(t, 1, r.Pages)
	require.Nil(t, r.Checkpoint)
}

func TestKeysThatCannotBeFileNamesAreSkipped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, nil)
	bad := st.Prefix + "bell\x07name.txt"
	f.put(t, bad, []byte("x"))
	f.put(t, st.Prefix+"good.txt", []byte("y"))
	taken := f.pg.File(t, f.pr, "taken.txt")
	f.put(t, st.Prefix+"taken.txt", []byte("z"))

	r := f.sync(t, f.handler(storagesync.Deps{}), st)
	require.EqualValues(t, 3, r.KeysListed)
	require.EqualValues(t, 1, r.KeysNew)
	require.EqualValues(t, 2, r.KeysSkipped)
	skips := skippedOf(t, r)
	require.Len(t, skips, 2)
	reasons := map[string]string{}
	for _, s := range skips {
		reasons[s["key"]] = s["reason"]
	}
	require.Contains(t, reasons[bad], "control character (U+0007)")
	require.Contains(t, reasons[st.Prefix+"taken.txt"], fmt.Sprintf("file %d", taken.ID))
	require.Len(t, f.links(t, st), 1)
}

func TestFilterAndRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, func(r *storageRow) {
		r.KeyFilter = "*.{json,txt}"
		r.Rules = `[{"match": "*.json", "file_type": "annotation_results"},
		            {"match": "^zh/", "match_kind": "regex", "language": "zh", "priority": "high", "due_in": "72h"}]`
	})
	for _, k := range []string{"a.json", "deep/b.json", "zh/c.txt", "en/d.txt", "img.png", "dir/"} {
		f.put(t, st.Prefix+k, []byte("content of "+k))
	}
	start := time.Now()
	r := f.sync(t, f.handler(storagesync.Deps{}), st)
	require.EqualValues(t, 6, r.KeysListed)
	require.EqualValues(t, 4, r.KeysNew)
	require.EqualValues(t, 2, r.KeysFiltered, "img.png and the folder marker dir/")

	links := f.links(t, st)
	require.Len(t, links, 4)
	for _, k := range []string{"a.json", "deep/b.json"} {
		require.Equal(t, db.FileTypeAnnotationResults, links[st.Prefix+k].FileType, k)
	}
	zh := links[st.Prefix+"zh/c.txt"]
	require.Equal(t, db.FileTypeDataset, zh.FileType)
	require.Equal(t, "zh", *zh.JobLanguage)
	require.Equal(t, db.JobPriorityHigh, *zh.JobPriority)
	var due time.Time
	require.NoError(t, f.pg.Pool.QueryRow(context.Background(), `SELECT job_due_date FROM file_versions WHERE id = $1`, zh.VersionID).Scan(&due))
	require.WithinRange(t, due, start.Add(72*time.Hour-time.Minute), time.Now().Add(72*time.Hour+time.Minute))
	en := links[st.Prefix+"en/d.txt"]
	require.Nil(t, en.JobLanguage)
	require.Nil(t, en.JobPriority)
}

func TestStorageThatCannotSync(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cases := []struct {
		name, sql, want string
	}{
		{"disabled", `UPDATE storages SET enabled = false WHERE id = $1`, "is disabled"},
		{"deleted", `UPDATE storages SET deleted_at = now() WHERE id = $1`, "was deleted"},
		{"bad rules", `UPDATE storages SET rules = '[{"match": "*.txt", "due_in": "soon"}]' WHERE id = $1`, "rules[0].due_in"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := f.ownStorage(t, nil)
			id := f.newRun(t, st)
			_, err := f.pg.Pool.Exec(context.Background(), tc.sql, st.ID)
			require.NoError(t, err)
			err = process(t, f.handler(storagesync.Deps{}), id)
			require.True(t, errors.Is(err, asynq.SkipRetry), "%v", err)
			r := f.run(t, id)
			require.Equal(t, db.SyncRunStatusFailed, r.Status)
			require.Contains(t, *r.Error, tc.want)
		})
	}
}
