package api_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// exportTargetFixture is an API whose storages may be on a second MinIO
// server, with a project of org A and one of org B.
type exportTargetFixture struct {
	*fixture
	remote   *testenv.S3
	projectA db.Project
	projectB db.Project
}

func newExportTargetFixture(t *testing.T) *exportTargetFixture {
	t.Helper()
	remote := testenv.SecondMinIO(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	w := newFixtureWith(t, map[string]string{
		"LABELQ_SECRET_KEY":                "k1:" + base64.StdEncoding.EncodeToString(key),
		"LABELQ_STORAGE_ALLOWED_ENDPOINTS": remote.Endpoint,
	})
	project := func(c client, name string) db.Project {
		r := c.do("POST", "/v1/projects", map[string]any{"name": name})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		pr, err := w.env.PG.Q.ProjectGetByID(context.Background(), id(t, r))
		require.NoError(t, err)
		return pr
	}
	return &exportTargetFixture{fixture: w, remote: remote, projectA: project(w.orgA, "exports-a"), projectB: project(w.orgB, "exports-b")}
}

func (w *exportTargetFixture) storage(t *testing.T, pr db.Project, kind db.StorageKind) db.Storage {
	t.Helper()
	return w.env.PG.InsertStorage(t, w.a.Storages, pr, testenv.RemoteRow(w.remote, kind, "out/", nil))
}

// TestExportStorageIDIsChecked: an export or schedule may name an export
// storage of its own project; anything else is a 422 on storage_id.
func TestExportStorageIDIsChecked(t *testing.T) {
	t.Parallel()
	w := newExportTargetFixture(t)
	target := w.storage(t, w.projectA, db.StorageKindExport)
	imp := w.storage(t, w.projectA, db.StorageKindImport)
	otherProject := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "exports-a2"})
	require.Equal(t, http.StatusCreated, otherProject.Status, string(otherProject.Body))
	pr2, err := w.env.PG.Q.ProjectGetByID(context.Background(), id(t, otherProject))
	require.NoError(t, err)
	ofOtherProject := w.storage(t, pr2, db.StorageKindExport)
	ofOtherOrg := w.storage(t, w.projectB, db.StorageKindExport)

	exports := fmt.Sprintf("/v1/projects/%d/exports", w.projectA.ID)
	r := w.orgA.do("POST", exports, map[string]any{"storage_id": target.ID})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	e := w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", id(t, r)), nil).json(t)
	require.EqualValues(t, target.ID, e["storage_id"])
	r = w.orgA.do("POST", exports, map[string]any{})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Nil(t, w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", id(t, r)), nil).json(t)["storage_id"], "labelq's bucket by default")

	schedules := fmt.Sprintf("/v1/projects/%d/export-schedules", w.projectA.ID)
	for name, tc := range map[string]struct {
		id   int64
		want string
	}{
		"unknown":         {999_999_999, "is not a storage of project"},
		"zero":            {0, "must be the id of an export storage"},
		"import storage":  {imp.ID, "is an import storage"},
		"another project": {ofOtherProject.ID, "is not a storage of project"},
		"another org's":   {ofOtherOrg.ID, "is not a storage of project"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, req := range []struct {
				path string
				body map[string]any
			}{
				{exports, map[string]any{"storage_id": tc.id}},
				{schedules, map[string]any{"cron_spec": "@daily", "storage_id": tc.id}},
			} {
				r := w.orgA.do("POST", req.path, req.body)
				require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
				require.Contains(t, string(r.Body), "storage_id")
				require.Contains(t, string(r.Body), tc.want)
			}
		})
	}

	r = w.orgA.do("POST", schedules, map[string]any{"cron_spec": "@daily", "storage_id": target.ID})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	sched := fmt.Sprintf("/v1/export-schedules/%d", id(t, r))
	require.EqualValues(t, target.ID, r.json(t)["storage_id"])
	r = w.orgA.do("PATCH", sched, map[string]any{"storage_id": imp.ID})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	r = w.orgA.do("PATCH", sched, map[string]any{"storage_id": 0})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Nil(t, r.json(t)["storage_id"], "0 sends the schedule's exports back to labelq's bucket")
}

// TestDownloadOfAnExportInAnExportStorage: the link is presigned for the export
// storage's server and credentials, and downloads the recorded bytes; an
// export whose storage was deleted answers 409 with the reason.
func TestDownloadOfAnExportInAnExportStorage(t *testing.T) {
	t.Parallel()
	w := newExportTargetFixture(t)
	ctx := context.Background()
	target := w.storage(t, w.projectA, db.StorageKindExport)
	r := w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/exports", w.projectA.ID), map[string]any{"storage_id": target.ID})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	exportID := id(t, r)

	// What the export worker leaves behind (worker/export's tests run it).
	archive := []byte("PK\x05\x06" + string(make([]byte, 18))) // an empty ZIP
	key := fmt.Sprintf("out/exports/%d/attempt-1.zip", exportID)
	w.remote.Put(t, key, archive, minioOpts())
	sum, size := testenv.SHA256Hex(archive), int64(len(archive))
	_, err := w.env.PG.Pool.Exec(ctx, `UPDATE export_logs SET status = 'completed', storage_path = $2, archive_sha256 = $3,
		size_bytes = $4, file_count = 0, completed_at = now() WHERE id = $1`, exportID, key, sum, size)
	require.NoError(t, err)

	r = w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d/download", exportID), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	d := r.json(t)
	require.Equal(t, sum, d["sha256"])
	require.EqualValues(t, size, d["size_bytes"])
	u, err := url.Parse(d["url"].(string))
	require.NoError(t, err)
	require.Equal(t, w.remote.Endpoint, u.Host, "presigned for the export storage's server")
	resp, err := http.Get(u.String())
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, sum, testenv.SHA256Hex(body))

	// A storage deleted before anyone asked for its link (the resolver
	// caches a storage it has built for up to its TTL).
	gone := w.storage(t, w.projectA, db.StorageKindExport)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/exports", w.projectA.ID), map[string]any{"storage_id": gone.ID})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	goneExport := id(t, r)
	_, err = w.env.PG.Pool.Exec(ctx, `UPDATE export_logs SET status = 'completed', storage_path = $2, archive_sha256 = $3,
		size_bytes = $4, file_count = 0, completed_at = now() WHERE id = $1`, goneExport, key, sum, size)
	require.NoError(t, err)
	_, err = w.env.PG.Pool.Exec(ctx, `UPDATE storages SET deleted_at = now() WHERE id = $1`, gone.ID)
	require.NoError(t, err)
	r = w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d/download", goneExport), nil)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "was deleted")
}

// TestExportStorageOfAScheduleCannotBeDeleted: a schedule's exports never land
// somewhere their owner did not choose because the storage went away.
func TestExportStorageOfAScheduleCannotBeDeleted(t *testing.T) {
	t.Parallel()
	w := newExportTargetFixture(t)
	target := w.storage(t, w.projectA, db.StorageKindExport)
	r := w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/export-schedules", w.projectA.ID),
		map[string]any{"cron_spec": "0 2 * * *", "storage_id": target.ID})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	sched := id(t, r)

	r = w.orgA.do("DELETE", fmt.Sprintf("/v1/storages/%d", target.ID), nil)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), fmt.Sprintf("export schedules [%d] send their exports to storage %d", sched, target.ID))
	got, err := w.env.PG.Q.StorageGetByID(context.Background(), target.ID)
	require.NoError(t, err)
	require.Nil(t, got.DeletedAt, "the refused delete changed nothing")

	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/export-schedules/%d", sched), map[string]any{"storage_id": 0})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r = w.orgA.do("DELETE", fmt.Sprintf("/v1/storages/%d", target.ID), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
}
