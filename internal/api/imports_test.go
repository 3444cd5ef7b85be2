package api_test

// Issue 19, item 6: an import of Label Studio tasks creates files, versions and
// jobs in bulk, validated like everything else, with an error per task.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

func lsBox(id string, x float64, label string) map[string]any {
	return map[string]any{"id": id, "from_name": "label", "to_name": "image", "type": "rectanglelabels",
		"original_width": 1280, "original_height": 720, "image_rotation": 0, "origin": "manual",
		"value": map[string]any{"x": x, "y": 12.5, "width": 20.125, "height": 30, "rotation": 0, "rectanglelabels": []string{label}}}
}

func importResult(t *testing.T, r reply) api.ImportResult {
	t.Helper()
	var out api.ImportResult
	require.NoError(t, json.Unmarshal(r.Body, &out), string(r.Body))
	return out
}

// canonical re-encodes JSON: objects' keys sorted, no whitespace.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(b, &v), string(b))
	out, err := json.Marshal(v)
	require.NoError(t, err)
	return string(out)
}

func (w *fixture) object(t *testing.T, key string) []byte {
	t.Helper()
	obj, err := w.env.S3.Store.Client.GetObject(context.Background(), w.env.S3.Store.Bucket, key, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer func() { _ = obj.Close() }()
	b, err := io.ReadAll(obj)
	require.NoError(t, err, key)
	return b
}

func (w *fixture) versionRow(t *testing.T, id int64) db.FileVersion {
	t.Helper()
	v, err := w.env.PG.Q.FileVersionGetByID(context.Background(), id)
	require.NoError(t, err)
	return v
}

func (w *fixture) fileRow(t *testing.T, id int64) db.File {
	t.Helper()
	f, err := w.env.PG.Q.FileGet(context.Background(), db.FileGetParams{ID: id, OrgID: w.orgAID})
	require.NoError(t, err)
	return f
}

func (w *fixture) jobRow(t *testing.T, id int64) db.AnnotationJob {
	t.Helper()
	var j db.AnnotationJob
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(),
		`SELECT status, review_status, result_version_id, file_version_id FROM annotation_jobs WHERE id = $1`, id).
		Scan(&j.Status, &j.ReviewStatus, &j.ResultVersionID, &j.FileVersionID))
	return j
}

func TestImportLabelStudioImages(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	pid := w.project(t, w.orgA, "from-label-studio")
	path := fmt.Sprintf("/v1/projects/%d/imports", pid)
	tasksOf := func(ts ...any) []any { return ts }

	// Without a label config there is nothing to read the tasks with.
	r := w.orgA.do("POST", path, tasksOf(map[string]any{"data": map[string]any{"image": "a.jpg"}}))
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "has no label config")

	w.putConfig(t, pid, lsObjectDetection)
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "incoming", "prefix": "incoming/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	sid := id(t, r)
	prefix := fmt.Sprintf("orgs/%d/incoming/", w.orgAID)
	bucket, endpoint := w.env.S3.Store.Bucket, w.env.S3.Endpoint

	first := []any{lsBox("a1", 10, "Car"), lsBox("a2", 40.5, "Airplane")}
	later := []any{lsBox("b1", 11, "Car")}
	prediction := []any{lsBox("p1", 9.75, "Car")}
	export := tasksOf(
		map[string]any{"id": 101, "data": map[string]any{"image": "s3://" + bucket + "/" + prefix + "cars/1.jpg"},
			"meta": map[string]any{}, "inner_id": 1, "total_annotations": 2, "project": 3, // ignored
			"annotations": []any{
				map[string]any{"id": 12, "completed_by": 7, "result": later, "was_cancelled": false, "ground_truth": false,
					"created_at": "2024-05-02T10:00:00.000000Z", "updated_at": "2024-05-02T10:00:00.000000Z", "lead_time": 3.5,
					"prediction": map[string]any{}, "result_count": 1, "task": 101},
				map[string]any{"id": 11, "completed_by": 7, "result": first, "created_at": "2024-05-01T10:00:00.000000Z"},
			},
			"predictions": []any{map[string]any{"id": 5, "model_version": "yolo-v8", "score": 0.87, "result": prediction, "task": 101}}},
		map[string]any{"id": 102, "data": map[string]any{"image": "http://" + endpoint + "/" + bucket + "/" + prefix + "cars/2.jpg?X-Amz-Signature=abc"}},
		map[string]any{"id": 103, "data": map[string]any{"image": "s3://someone-elses-bucket/cars/3.jpg"}},
		map[string]any{"id": 104, "data": map[string]any{"image": "cars/4.jpg"},
			"annotations": []any{map[string]any{"result": []any{lsBox("x", 140, "Car")}}}},
		map[string]any{"id": 105, "data": map[string]any{"image": "/data/upload/3/abc.jpg"}},
		map[string]any{"id": 106, "data": map[string]any{"image": "cars/1.jpg"}},
		map[string]any{"id": 107, "data": map[string]any{"image": "cars/7.jpg"},
			"annotations": []any{map[string]any{"id": 30, "was_cancelled": true, "result": []any{}}}},
		map[string]any{"id": 108, "data": map[string]any{"image": "cars/8.jpg"},
			"annotations": []any{map[string]any{"result": []any{lsBox("y", 5, "Truck")}}}},
	)
	r = w.orgA.do("POST", path, export)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	out := importResult(t, r)
	require.Len(t, out.Tasks, 8)
	require.Equal(t, 3, out.Created, string(r.Body))
	require.Equal(t, 5, out.Invalid, string(r.Body))
	for i, ls := range []int64{101, 102, 103, 104, 105, 106, 107, 108} {
		require.Equal(t, i, out.Tasks[i].Index)
		require.Equal(t, ls, *out.Tasks[i].LabelStudioID)
	}

	// Errors name the task and the field, and write nothing.
	errorOf := func(i int) api.FieldError {
		t.Helper()
		tr := out.Tasks[i]
		require.Equal(t, api.ImportInvalid, tr.Status, "task %d", i)
		require.Zero(t, tr.FileID)
		require.Len(t, tr.Errors, 1, "task %d: %v", i, tr.Errors)
		return tr.Errors[0]
	}
	e := errorOf(2)
	require.Equal(t, "tasks[2].data.image", e.Field)
	require.Contains(t, e.Message, `no import storage of the project is over bucket "someone-elses-bucket"`)
	e = errorOf(3)
	require.Equal(t, "tasks[3].annotations[0].result[0].value.x", e.Field)
	require.Contains(t, e.Message, "value.x = 140 is outside 0–100")
	e = errorOf(4)
	require.Equal(t, "tasks[4].data.image", e.Field)
	require.Contains(t, e.Message, "a file Label Studio serves itself")
	e = errorOf(5)
	require.Equal(t, "tasks[5].data.image", e.Field)
	require.Contains(t, e.Message, "tasks[0] already has the same image")
	e = errorOf(7)
	require.Equal(t, "tasks[7].annotations[0].result[0].value.rectanglelabels", e.Field)
	require.Contains(t, e.Message, `"Truck" is not one of control "label"'s labels`)

	// Task 0: the image linked in its storage, two annotations (the later one the
	// job's result), one prediction.
	t0 := out.Tasks[0]
	require.Equal(t, api.ImportCreated, t0.Status)
	require.Equal(t, "cars/1.jpg", w.fileRow(t, t0.FileID).Name)
	dv := w.versionRow(t, t0.VersionID)
	require.Equal(t, prefix+"cars/1.jpg", dv.StoragePath)
	require.Equal(t, sid, *dv.StorageID)
	var unlisted bool
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(), `SELECT unlisted FROM storage_links WHERE storage_id = $1 AND key = $2`,
		sid, prefix+"cars/1.jpg").Scan(&unlisted))
	require.True(t, unlisted, "the key is linked, for a later sync to adopt")

	require.Len(t, t0.AnnotationVersionIDs, 2)
	for i, want := range [][]any{first, later} { // oldest first, whatever the export's order
		av := w.versionRow(t, t0.AnnotationVersionIDs[i])
		require.Equal(t, t0.VersionID, *av.SourceFileVersionID, "an annotation knows its task's version")
		require.Equal(t, db.FileTypeAnnotationResults, w.fileRow(t, av.FileID).FileType)
		require.Equal(t, "cars/1.jpg.annotation.json", w.fileRow(t, av.FileID).Name)
		require.EqualValues(t, i+1, av.VersionNumber)
		stored := w.object(t, av.StoragePath)
		require.Equal(t, testenv.SHA256Hex(stored), *av.ExpectedSha256)
		var obj map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(stored, &obj))
		wantJSON, err := json.Marshal(want)
		require.NoError(t, err)
		require.Equal(t, canonical(t, wantJSON), canonical(t, obj["result"]), "the stored result is Label Studio's")
		require.Equal(t, "7", string(obj["completed_by"]))
		require.NotContains(t, obj, "prediction", "fields labelq does not keep are left out")
		testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.Validate{VersionID: av.ID})
	}
	require.Len(t, t0.PredictionVersionIDs, 1)
	pv := w.versionRow(t, t0.PredictionVersionIDs[0])
	require.Equal(t, db.GenerationMethodLlm, pv.GenerationMethod)
	require.Equal(t, "yolo-v8", *pv.LlmModel)
	require.Equal(t, t0.VersionID, *pv.SourceFileVersionID)
	require.Equal(t, "cars/1.jpg.llm.json", w.fileRow(t, pv.FileID).Name)
	require.Equal(t, db.FileTypeLlmOutput, w.fileRow(t, pv.FileID).FileType)
	predJSON, err := json.Marshal(prediction)
	require.NoError(t, err)
	require.JSONEq(t, fmt.Sprintf(`{"model_version": "yolo-v8", "score": 0.87, "result": %s}`, predJSON), string(w.object(t, pv.StoragePath)),
		"a prediction is stored as pre-annotation stores one")
	job := w.jobRow(t, t0.JobID)
	require.Equal(t, db.JobStatusReviewed, job.Status)
	require.Equal(t, db.ReviewStatusApproved, job.ReviewStatus)
	require.Equal(t, t0.AnnotationVersionIDs[1], *job.ResultVersionID, "the latest annotation is the job's result")
	require.Equal(t, t0.VersionID, job.FileVersionID)
	for _, v := range []int64{t0.VersionID, t0.PredictionVersionIDs[0]} {
		testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.Validate{VersionID: v})
	}

	// Task 1 (a presigned path-style URL of the storage) and task 6 (its only
	// annotation was cancelled): files, versions, no job (validation makes it).
	t1 := out.Tasks[1]
	require.Equal(t, api.ImportCreated, t1.Status)
	require.Equal(t, prefix+"cars/2.jpg", w.versionRow(t, t1.VersionID).StoragePath)
	require.Zero(t, t1.JobID)
	t6 := out.Tasks[6]
	require.Equal(t, api.ImportCreated, t6.Status)
	require.Zero(t, t6.JobID)
	require.Empty(t, t6.AnnotationVersionIDs)
	require.Contains(t, strings.Join(t6.Notes, "\n"), "annotations[0] was cancelled")

	var jobs int
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(), `SELECT count(*) FROM annotation_jobs WHERE project_id = $1`, pid).Scan(&jobs))
	require.Equal(t, 1, jobs)
	r = w.orgA.do("GET", fmt.Sprintf("/v1/events?entity_type=annotation_job&entity_id=%d", t0.JobID), nil)
	require.Contains(t, string(r.Body), `"event_type":"imported"`)

	// The same export again: every task's file exists, so every task is invalid.
	r = w.orgA.do("POST", path, export[:2])
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "the project already has a file named")

	// Another organization cannot import into the project.
	r = w.orgB.do("POST", path, export[:2])
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
}

func TestImportLabelStudioTexts(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	pid := w.project(t, w.orgA, "ner-from-label-studio")
	w.putConfig(t, pid, lsNamedEntityRecognition)
	text := "Ada Lovelace 🐱 was born in London."
	result := []any{
		map[string]any{"id": "e1", "from_name": "label", "to_name": "text", "type": "labels", "origin": "manual",
			"value": map[string]any{"start": 0, "end": 12, "text": "Ada Lovelace", "labels": []string{"PER"}}},
		map[string]any{"id": "e2", "from_name": "label", "to_name": "text", "type": "labels",
			"value": map[string]any{"start": 27, "end": 33, "text": "London", "labels": []string{"LOC"}}},
	}
	// The wrapped form, and ?approve=false: the job waits for review.
	r := w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/imports?approve=false", pid), map[string]any{"tasks": []any{
		map[string]any{"id": 201, "data": map[string]any{"ner": text}, "annotations": []any{map[string]any{"id": 1, "result": result}}},
		map[string]any{"id": 202, "data": map[string]any{"ner": "Short."},
			"annotations": []any{map[string]any{"result": []any{map[string]any{"from_name": "label", "to_name": "text", "type": "labels",
				"value": map[string]any{"start": 0, "end": 40, "labels": []string{"LOC"}}}}}}},
		map[string]any{"id": 203, "data": map[string]any{"text": "the config reads $ner"}},
		map[string]any{"id": 204, "data": map[string]any{"ner": "Grace Hopper"},
			"predictions": []any{map[string]any{"model_version": "", "result": []any{}}}},
	}})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	out := importResult(t, r)
	require.Equal(t, 2, out.Created, string(r.Body))

	t0 := out.Tasks[0]
	f := w.fileRow(t, t0.FileID)
	require.Equal(t, "task-201.txt", f.Name)
	require.Equal(t, db.FileTypeDataset, f.FileType)
	v := w.versionRow(t, t0.VersionID)
	require.Nil(t, v.StorageID, "a text is kept in labelq's bucket")
	require.Equal(t, text, string(w.object(t, v.StoragePath)))
	require.Equal(t, testenv.SHA256Hex([]byte(text)), *v.ExpectedSha256)
	testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.Validate{VersionID: v.ID})
	require.Len(t, t0.AnnotationVersionIDs, 1)
	av := w.versionRow(t, t0.AnnotationVersionIDs[0])
	require.Equal(t, v.ID, *av.SourceFileVersionID, "the annotation's spans are validated against this text")
	var obj map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(w.object(t, av.StoragePath), &obj))
	want, err := json.Marshal(result)
	require.NoError(t, err)
	require.Equal(t, canonical(t, want), canonical(t, obj["result"]))
	job := w.jobRow(t, t0.JobID)
	require.Equal(t, db.JobStatusSubmitted, job.Status)
	require.Equal(t, db.ReviewStatusPending, job.ReviewStatus)
	require.Equal(t, av.ID, *job.ResultVersionID)

	e := out.Tasks[1].Errors
	require.Len(t, e, 1)
	require.Equal(t, "tasks[1].annotations[0].result[0].value.end", e[0].Field)
	require.Contains(t, e[0].Message, "value.end = 40 is past the end of the text (6 code points)")
	e = out.Tasks[2].Errors
	require.Len(t, e, 1)
	require.Equal(t, "tasks[2].data.ner", e[0].Field)

	t3 := out.Tasks[3]
	require.Len(t, t3.PredictionVersionIDs, 1)
	require.JSONEq(t, `{"model_version": "", "result": []}`, string(w.object(t, w.versionRow(t, t3.PredictionVersionIDs[0]).StoragePath)))
}

func TestImportIsBounded(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	pid := w.project(t, w.orgA, "bounded")
	w.putConfig(t, pid, lsImageClassification)
	path := fmt.Sprintf("/v1/projects/%d/imports", pid)

	many := "[" + strings.TrimSuffix(strings.Repeat(`{},`, api.MaxImportTasks+1), ",") + "]"
	r := w.orgA.do("POST", path, many)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], fmt.Sprintf("at most %d tasks per import; this one has %d", api.MaxImportTasks, api.MaxImportTasks+1))

	for _, tc := range []struct{ body, detail string }{
		{`[]`, "is empty"},
		{`{"items": []}`, "unknown field"},
		{`"tasks"`, "list of tasks"},
		{`[1, 2]`, "must be a Label Studio task"},
	} {
		r = w.orgA.do("POST", path, tc.body)
		require.GreaterOrEqual(t, r.Status, 400, string(r.Body))
		require.Less(t, r.Status, 500, string(r.Body))
		require.Contains(t, string(r.Body), tc.detail)
	}
	r = w.orgA.do("POST", path+"?approve=maybe", `[{}]`)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), `"field":"approve"`)

	// The body may be larger than LABELQ_MAX_BODY_BYTES (1 MiB here), up to 16 times.
	big := bytes.Repeat([]byte(" "), 2<<20)
	r = w.orgA.do("POST", path, append(big, []byte(`[{"data": {"image": "x"}}]`)...))
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "read, not refused for its size: %s", r.Body)
	require.Contains(t, string(r.Body), "no import storage")
}
