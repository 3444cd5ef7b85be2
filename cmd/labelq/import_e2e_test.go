package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/verify/imagetest"
)

// TestImportEndToEnd runs a Label Studio export through every process (issue
// 19, items 1, 2 and 6): the label configs are set from Label Studio XML, the
// import registers the tasks, file:validate validates every version it made
// (the annotations against the config, spans against the texts the import
// stored), and a sync of the storage afterwards adopts the imported keys
// instead of making them files again.
func TestImportEndToEnd(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	cfg := env.Config(t, map[string]string{"LABELQ_HTTP_ADDR": testenv.FreeAddr(t)})
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, testenv.Quiet())
	require.NoError(t, err)
	defer a.Close()
	a.Mount = mountWorkers
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, app.AllRoles...) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	base := "http://" + cfg.HTTPAddr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
	tok, err := admin.CreateToken(ctx, env.PG.Pool, "acme", "platform")
	require.NoError(t, err)
	call := func(method, path, ctype string, body any, want int, out any) {
		t.Helper()
		var r io.Reader
		switch b := body.(type) {
		case nil:
		case string:
			r = strings.NewReader(b)
		default:
			raw, err := json.Marshal(body)
			require.NoError(t, err)
			r = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, base+path, r)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok.Secret)
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, path, raw)
		if out != nil {
			require.NoError(t, json.Unmarshal(raw, out))
		}
	}
	const j = "application/json"
	var created struct {
		ID int64 `json:"id"`
	}
	type imported struct {
		Tasks []struct {
			Status               string  `json:"status"`
			VersionID            int64   `json:"version_id"`
			JobID                int64   `json:"job_id"`
			AnnotationVersionIDs []int64 `json:"annotation_version_ids"`
			PredictionVersionIDs []int64 `json:"prediction_version_ids"`
		} `json:"tasks"`
		Created int `json:"created"`
	}
	status := func(id int64) string {
		var s string
		require.NoError(t, env.PG.Pool.QueryRow(ctx, `SELECT validation_status FROM file_versions WHERE id = $1`, id).Scan(&s))
		return s
	}
	waitValid := func(ids ...int64) {
		t.Helper()
		require.Eventually(t, func() bool {
			for _, id := range ids {
				if status(id) == "pending" {
					return false
				}
			}
			return true
		}, 30*time.Second, 50*time.Millisecond)
		for _, id := range ids {
			var msg *string
			require.NoError(t, env.PG.Pool.QueryRow(ctx, `SELECT validation_error FROM file_versions WHERE id = $1`, id).Scan(&msg))
			require.Equal(t, "valid", status(id), "version %d: %v", id, msg)
		}
	}

	// Images in an import storage of labelq's bucket.
	call("POST", "/v1/projects", j, map[string]any{"name": "detection"}, http.StatusCreated, &created)
	images := created.ID
	call("PUT", fmt.Sprintf("/v1/projects/%d/label-config", images), "application/xml", `<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Airplane"/><Label value="Car"/></RectangleLabels>
</View>`, http.StatusOK, nil)
	call("POST", fmt.Sprintf("/v1/projects/%d/storages", images), j, map[string]any{"name": "incoming", "prefix": "incoming/"}, http.StatusCreated, &created)
	storageID := created.ID
	prefix := fmt.Sprintf("orgs/%d/incoming/", tok.OrgID)
	for _, name := range []string{"1.png", "2.png"} {
		env.S3.Put(t, prefix+name, imagetest.PNG(t, 64, 48), minio.PutObjectOptions{ContentType: "image/png"})
	}
	box := func(x float64, label string) map[string]any {
		return map[string]any{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 64, "original_height": 48,
			"value": map[string]any{"x": x, "y": 10, "width": 25, "height": 50, "rotation": 0, "rectanglelabels": []string{label}}}
	}
	var out imported
	call("POST", fmt.Sprintf("/v1/projects/%d/imports", images), j, []any{
		map[string]any{"id": 1, "data": map[string]any{"image": "s3://" + env.S3.Store.Bucket + "/" + prefix + "1.png"},
			"annotations": []any{map[string]any{"id": 1, "completed_by": 1, "result": []any{box(10, "Car"), box(50, "Airplane")}}},
			"predictions": []any{map[string]any{"model_version": "detector-1", "score": 0.5, "result": []any{box(12, "Car")}}}},
		map[string]any{"id": 2, "data": map[string]any{"image": "2.png"}},
	}, http.StatusAccepted, &out)
	require.Equal(t, 2, out.Created)
	t0 := out.Tasks[0]
	waitValid(t0.VersionID, t0.AnnotationVersionIDs[0], t0.PredictionVersionIDs[0], out.Tasks[1].VersionID)
	var width, jobs int
	require.NoError(t, env.PG.Pool.QueryRow(ctx, `SELECT image_width FROM file_versions WHERE id = $1`, t0.VersionID).Scan(&width))
	require.Equal(t, 64, width, "the image read where it lies, in the storage")
	require.NoError(t, env.PG.Pool.QueryRow(ctx, `SELECT count(*) FROM annotation_jobs WHERE project_id = $1`, images).Scan(&jobs))
	require.Equal(t, 2, jobs, "the annotated task's job, and the one validation made for the other")
	var job struct {
		ReviewStatus    string `json:"review_status"`
		ResultVersionID int64  `json:"result_version_id"`
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	call("GET", fmt.Sprintf("/v1/projects/%d/jobs", images), j, nil, http.StatusOK, &list)
	found := false
	for _, raw := range list.Items {
		job.ReviewStatus, job.ResultVersionID = "", 0
		require.NoError(t, json.Unmarshal(raw, &job))
		if job.ResultVersionID == t0.AnnotationVersionIDs[0] {
			found = true
			require.Equal(t, "approved", job.ReviewStatus)
		}
	}
	require.True(t, found, "the imported annotation is its job's approved result")

	// A sync of the storage now adopts the imported keys: nothing new.
	var run struct {
		ID            int64  `json:"id"`
		Status        string `json:"status"`
		KeysNew       int64  `json:"keys_new"`
		KeysUnchanged int64  `json:"keys_unchanged"`
	}
	call("POST", fmt.Sprintf("/v1/storages/%d/sync", storageID), j, nil, http.StatusAccepted, &run)
	require.Eventually(t, func() bool {
		call("GET", fmt.Sprintf("/v1/sync-runs/%d", run.ID), j, nil, http.StatusOK, &run)
		return run.Status == "completed"
	}, 30*time.Second, 50*time.Millisecond)
	require.Zero(t, run.KeysNew)
	require.EqualValues(t, 2, run.KeysUnchanged)

	// Texts: stored by the import, the spans validated against them.
	call("POST", "/v1/projects", j, map[string]any{"name": "ner"}, http.StatusCreated, &created)
	texts := created.ID
	call("PUT", fmt.Sprintf("/v1/projects/%d/label-config", texts), "text/xml", `<View>
  <Labels name="label" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>
  <Text name="text" value="$text"/>
</View>`, http.StatusOK, nil)
	call("POST", fmt.Sprintf("/v1/projects/%d/imports", texts), j, []any{
		map[string]any{"id": 7, "data": map[string]any{"text": "Ada Lovelace was born in London."}, "annotations": []any{map[string]any{"result": []any{
			map[string]any{"from_name": "label", "to_name": "text", "type": "labels",
				"value": map[string]any{"start": 25, "end": 31, "text": "London", "labels": []string{"LOC"}}},
		}}}},
	}, http.StatusAccepted, &out)
	waitValid(out.Tasks[0].VersionID, out.Tasks[0].AnnotationVersionIDs[0])
	var notes []byte
	require.NoError(t, env.PG.Pool.QueryRow(ctx, `SELECT metadata FROM event_log WHERE entity_type = 'file_version' AND entity_id = $1 AND event_type = 'validated'`,
		out.Tasks[0].AnnotationVersionIDs[0]).Scan(&notes))
	require.NotContains(t, string(notes), "spans not checked", "the spans were checked against the imported text")
}
