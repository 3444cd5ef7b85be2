package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/zipstream"
	"github.com/labelq/labelq/worker/export"
)

// filesOnly packs the dataset files alone.
const filesOnly = `{"include_files": true, "include_annotations": false, "include_llm": false}`

// validIn registers content, already at key in st's bucket, as a valid version
// of a new dataset file whose bytes are in storage st.
func (f *fixture) validIn(st db.Storage, name, key string, content []byte, mime string) version {
	f.t.Helper()
	ctx := context.Background()
	fl := f.file(name, db.FileTypeDataset)
	v := f.pg.RegisterVersion(f.t, fl, key, testenv.Declared{})
	f.pg.SetVersionStorage(f.t, v.ID, st)
	sum, size, now := testenv.SHA256Hex(content), int64(len(content)), time.Now()
	require.NoError(f.t, f.pg.Q.FileVersionMarkValid(ctx, db.FileVersionMarkValidParams{
		ID: v.ID, Checksum: &sum, SizeBytes: &size, MimeType: &mime, ValidatedAt: &now,
	}))
	_, err := f.pg.Q.FileActivateVersion(ctx, db.FileActivateVersionParams{
		VersionID: v.ID, MarkReady: true, FileID: fl.ID, VersionNumber: v.VersionNumber,
	})
	require.NoError(f.t, err)
	return version{FileVersion: v, File: fl, Content: content}
}

// exportTo requests an export whose archive goes to storage st.
func (f *fixture) exportTo(st db.Storage, options string) db.ExportLog {
	f.t.Helper()
	e, err := f.pg.Q.ExportLogCreate(context.Background(), db.ExportLogCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, Options: []byte(options), StorageID: &st.ID,
	})
	require.NoError(f.t, err)
	return e
}

func remoteKeys(t *testing.T, s *testenv.S3, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range s.Store.Client.ListObjects(context.Background(), s.Store.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		require.NoError(t, o.Err)
		keys = append(keys, o.Key)
	}
	return keys
}

// TestExportReadsVersionsThroughTheirStorage: a version whose bytes are in a
// storage on another MinIO server is packed from there, next to one in
// labelq's bucket.
func TestExportReadsVersionsThroughTheirStorage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	remote := f.useRemote()
	st := f.pg.InsertStorage(t, f.res, f.pr, testenv.RemoteRow(remote, db.StorageKindImport, "drop/", nil))
	far := []byte("id,label\n1,cat\n2,dog\n")
	remote.Put(t, "drop/batch-7/far.csv", far, minio.PutObjectOptions{})
	fv := f.validIn(st, "far.csv", "drop/batch-7/far.csv", far, "text/csv")
	near := f.dataset("near.txt", []byte("in labelq's bucket"), "text/plain")

	e := f.newExport(filesOnly)
	require.NoError(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
	a := f.completedArchive(e.ID)
	require.Equal(t, far, a.read("files/far.csv"))
	require.Equal(t, near.Content, a.read("files/near.txt"))
	require.Equal(t, map[string]int64{"files/far.csv": fv.ID, "files/near.txt": near.ID}, a.paths())
}

// TestExportOfAVersionWhoseStorageCannotBeRead: a storage refusing labelq's
// credentials, or deleted, fails the export with a reason a person can act on,
// and leaves no archive.
func TestExportOfAVersionWhoseStorageCannotBeRead(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		creds  *storage.Credentials
		delete bool
		want   string
	}{
		"wrong credentials": {creds: &storage.Credentials{AccessKeyID: "nobody-here", SecretAccessKey: "wrong-secret-123"}, want: "access denied to read"},
		"deleted storage":   {delete: true, want: "was deleted"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			remote := f.useRemote()
			st := f.pg.InsertStorage(t, f.res, f.pr, testenv.RemoteRow(remote, db.StorageKindImport, "", tc.creds))
			content := []byte("unreachable bytes")
			remote.Put(t, "x.txt", content, minio.PutObjectOptions{})
			f.validIn(st, "x.txt", "x.txt", content, "text/plain")
			if tc.delete {
				_, err := f.pg.Pool.Exec(context.Background(), `UPDATE storages SET deleted_at = now() WHERE id = $1`, st.ID)
				require.NoError(t, err)
			}
			e := f.newExport(filesOnly)
			err := f.run(context.Background(), f.handler(export.Options{}), e.ID)
			require.Error(t, err)
			row := f.row(e.ID)
			require.Equal(t, db.ExportStatusFailed, row.Status)
			require.Contains(t, *row.Error, "files/x.txt")
			require.Contains(t, *row.Error, tc.want)
			require.NotContains(t, *row.Error, "wrong-secret-123")
			f.requireNoArchive(e.ID)
		})
	}
}

// TestExportToAnExportStorage: the archive goes to the export storage's bucket
// on another server under its prefix, not to labelq's; what an earlier run left
// there is removed; the link presigned for that server downloads exactly the
// recorded bytes; retention deletes the archive there.
func TestExportToAnExportStorage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	remote := f.useRemote()
	target := f.pg.InsertStorage(t, f.res, f.pr, testenv.RemoteRow(remote, db.StorageKindExport, "labelq-out", nil))
	raw := f.dataset("a.txt", []byte("hello from labelq"), "text/plain")

	e := f.exportTo(target, filesOnly)
	prefix := fmt.Sprintf("labelq-out/exports/%d/", e.ID)
	remote.Put(t, prefix+"attempt-0.zip", []byte("left by a killed run"), minio.PutObjectOptions{})
	require.NoError(t, f.run(ctx, f.handler(export.Options{}), e.ID))

	row := f.row(e.ID)
	require.Equal(t, db.ExportStatusCompleted, row.Status, "error: %v", row.Error)
	require.Equal(t, prefix+"attempt-1.zip", *row.StoragePath)
	require.Equal(t, []string{*row.StoragePath}, remoteKeys(t, remote, ""), "the archive alone, under the storage's prefix")
	require.Empty(t, f.exportObjects(), "nothing in labelq's bucket")

	src, err := f.res.For(ctx, row.StorageID)
	require.NoError(t, err)
	u, err := src.PresignGet(ctx, *row.StoragePath, "export.zip", time.Minute)
	require.NoError(t, err)
	require.Equal(t, remote.Endpoint, u.Host, "presigned for the export storage's server")
	resp, err := http.Get(u.String())
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, *row.ArchiveSha256, testenv.SHA256Hex(body))
	require.Equal(t, *row.SizeBytes, int64(len(body)))
	unzipTest(t, body)
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	a := &archive{raw: body, zr: zr}
	require.Equal(t, raw.Content, a.read("files/a.txt"))

	r := &export.RetentionHandler{Pool: f.pg.Pool, Store: f.s3.Store, Storages: f.res, Log: f.log, Retention: time.Hour,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	n, err := r.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Empty(t, remoteKeys(t, remote, ""), "retention deletes the archive in the export storage")
	require.NotNil(t, f.row(e.ID).PurgedAt)
}

// TestExportToAnExportStorageThatRefuses: an export storage whose credentials
// S3 refuses fails the export with the reason, and a deleted one too; nothing
// lands in labelq's bucket.
func TestExportToAnExportStorageThatRefuses(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		creds  *storage.Credentials
		delete bool
		want   string
	}{
		"wrong credentials": {creds: &storage.Credentials{AccessKeyID: "nobody-here", SecretAccessKey: "wrong-secret-123"}, want: "access denied to write"},
		"deleted storage":   {delete: true, want: "was deleted"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			remote := f.useRemote()
			target := f.pg.InsertStorage(t, f.res, f.pr, testenv.RemoteRow(remote, db.StorageKindExport, "", tc.creds))
			f.dataset("a.txt", []byte("hello"), "text/plain")
			if tc.delete {
				_, err := f.pg.Pool.Exec(context.Background(), `UPDATE storages SET deleted_at = now() WHERE id = $1`, target.ID)
				require.NoError(t, err)
			}
			e := f.exportTo(target, filesOnly)
			err := f.run(context.Background(), f.handler(export.Options{}), e.ID)
			require.Error(t, err)
			row := f.row(e.ID)
			require.Equal(t, db.ExportStatusFailed, row.Status)
			require.Contains(t, *row.Error, tc.want)
			require.NotContains(t, *row.Error, "wrong-secret-123")
			require.Empty(t, f.exportObjects())
			require.Empty(t, remoteKeys(t, remote, ""))
		})
	}
}

// TestExportToAnExportStorageCancelled: a cancel mid-pack leaves nothing in
// the export storage, neither this run's multipart upload nor the archive a
// crashed earlier attempt uploaded there.
func TestExportToAnExportStorageCancelled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	remote := f.useRemote()
	target := f.pg.InsertStorage(t, f.res, f.pr, testenv.RemoteRow(remote, db.StorageKindExport, "out/", nil))
	for i := range 8 {
		f.dataset(fmt.Sprintf("f%d.bin", i), testenv.RandomBytes(uint64(i), 1<<20), "image/png")
	}
	e := f.exportTo(target, filesOnly)
	attempt := func(a int) string { return fmt.Sprintf("out/exports/%d/attempt-%d.zip", e.ID, a) }
	remote.Put(t, attempt(1), []byte("PK stale archive"), minio.PutObjectOptions{})
	_, err := f.pg.Pool.Exec(ctx, `UPDATE export_logs SET status = 'running', attempts = 1 WHERE id = $1`, e.ID)
	require.NoError(t, err)

	h := f.handler(export.Options{})
	var once atomic.Bool
	export.SetProgressHook(h, func(ctx context.Context, p zipstream.Progress) {
		if p.FilesDone == 6 && once.CompareAndSwap(false, true) { // past the first 5 MiB part
			if _, err := f.pg.Q.ExportLogCancel(context.Background(), db.ExportLogCancelParams{ID: e.ID, OrgID: f.org.ID}); err != nil {
				f.t.Errorf("cancel: %v", err)
			}
			<-ctx.Done()
		}
	})
	require.NoError(t, f.run(ctx, h, e.ID))
	require.True(t, once.Load(), "the hook cancelled mid-pack")
	require.Equal(t, db.ExportStatusCancelled, f.row(e.ID).Status)
	require.Empty(t, remoteKeys(t, remote, ""), "no archive is left in the export storage")
	for a := 1; a <= 2; a++ {
		for u := range remote.Store.Client.ListIncompleteUploads(ctx, remote.Store.Bucket, attempt(a), false) {
			require.NoError(t, u.Err)
			require.NotEqual(t, attempt(a), u.Key, "no multipart upload is left")
		}
	}
	require.Empty(t, f.exportObjects())
}
