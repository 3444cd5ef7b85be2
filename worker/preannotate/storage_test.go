package preannotate_test

import (
	"context"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
)

// validIn registers content, already at key in st's bucket, as a valid version
// of a new file whose bytes are in storage st.
func (w *fixture) validIn(st db.Storage, name, key, mime string, content []byte) db.FileVersion {
	w.t.Helper()
	ctx := context.Background()
	v := w.env.PG.RegisterVersion(w.t, w.env.PG.File(w.t, w.project, name), key, testenv.Declared{})
	w.env.PG.SetVersionStorage(w.t, v.ID, st)
	_, err := w.env.PG.Pool.Exec(ctx, `UPDATE file_versions SET validation_status = 'valid', checksum = $2,
		size_bytes = $3, mime_type = $4, validated_at = now() WHERE id = $1`,
		v.ID, testenv.SHA256Hex(content), len(content), mime)
	require.NoError(w.t, err)
	v, err = w.env.PG.Q.FileVersionGetByID(ctx, v.ID)
	require.NoError(w.t, err)
	return v
}

// TestVersionInAnotherStorageIsPreannotated: the bytes sent to the model are
// read through the version's storage on a second MinIO server; the output goes
// to labelq's bucket, and a second version with the same bytes reuses it (the
// copy is of the output, within labelq's bucket, never across endpoints).
func TestVersionInAnotherStorageIsPreannotated(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	remote := w.useRemote()
	st := w.env.PG.InsertStorage(t, w.res, w.project, testenv.RemoteRow(remote, db.StorageKindImport, "reviews/", nil))
	content := []byte("Arrived broken, support never answered.")
	remote.Put(t, "reviews/2026/r-1.txt", content, minio.PutObjectOptions{})
	remote.Put(t, "reviews/2026/r-2.txt", content, minio.PutObjectOptions{})
	first := w.validIn(st, "r-1.txt", "reviews/2026/r-1.txt", "text/plain", content)
	second := w.validIn(st, "r-2.txt", "reviews/2026/r-2.txt", "text/plain", content)

	require.NoError(t, w.process(first))
	reqs := w.srv.Requests()
	require.Len(t, reqs, 1)
	require.Contains(t, reqs[0].Messages[1].Content, string(content), "the model got the bytes from the storage")
	paid := w.run(first)
	require.Equal(t, db.LlmRunStatusSucceeded, paid.Status, "error: %v", paid.Error)
	out := mustVersion(t, w, *paid.OutputVersionID)
	require.Nil(t, out.StorageID, "outputs live in labelq's bucket")
	body := w.object(out.StoragePath)
	require.Equal(t, testenv.SHA256Hex(body), *out.Checksum)

	require.NoError(t, w.process(second))
	require.Len(t, w.srv.Requests(), 1, "the same bytes are paid for once")
	r := w.run(second)
	require.Equal(t, db.LlmRunStatusSucceeded, r.Status, "error: %v", r.Error)
	require.Equal(t, paid.ID, *r.CachedFromID)
	require.Equal(t, body, w.object(mustVersion(t, w, *r.OutputVersionID).StoragePath))
}

// TestVersionInARefusingStorageFailsWithTheReason: a storage whose credentials
// S3 refuses, or one deleted, fails the run with a reason a person can act on,
// and no model call is made.
func TestVersionInARefusingStorageFailsWithTheReason(t *testing.T) {
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
			w := newFixture(t, fixtureOpts{})
			remote := w.useRemote()
			st := w.env.PG.InsertStorage(t, w.res, w.project, testenv.RemoteRow(remote, db.StorageKindImport, "", tc.creds))
			content := []byte("Fine, I guess.")
			remote.Put(t, "r.txt", content, minio.PutObjectOptions{})
			v := w.validIn(st, "r.txt", "r.txt", "text/plain", content)
			if tc.delete {
				_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE storages SET deleted_at = now() WHERE id = $1`, st.ID)
				require.NoError(t, err)
			}
			require.Error(t, w.process(v))
			r := w.run(v)
			require.Equal(t, db.LlmRunStatusFailed, r.Status)
			require.Contains(t, *r.Error, tc.want)
			require.NotContains(t, *r.Error, "wrong-secret-123")
			require.Empty(t, w.srv.Requests(), "no model call")
		})
	}
}
