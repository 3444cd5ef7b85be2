package api_test

// Issue 19, item 1: a project's label config, set as JSON or imported from
// Label Studio XML; item 2: a job's result set through the API fits it.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
)

// Label Studio's own templates, from HumanSignal/label-studio's
// label_studio/annotation_templates (the config: field of each config.yml), as
// internal/labelconfig's tests quote them.
const (
	lsObjectDetection = `<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Airplane" background="green"/>
    <Label value="Car" background="blue"/>
  </RectangleLabels>
</View>
`
	lsImageClassification = `<View>
  <Image name="image" value="$image"/>
  <Choices name="choice" toName="image">
    <Choice value="Adult content"/>
    <Choice value="Weapons" />
    <Choice value="Violence" />
  </Choices>
</View>
`
	lsNamedEntityRecognition = `
<View>
  <Labels name="label" toName="text">
    <Label value="PER" background="red"/>
    <Label value="ORG" background="darkorange"/>
    <Label value="LOC" background="orange"/>
    <Label value="MISC" background="green"/>
  </Labels>

  <Text name="text" value="$ner"/>
</View>
`
)

func (w *fixture) putConfig(t *testing.T, pid int64, xml string) {
	t.Helper()
	r := w.orgA.do("PUT", fmt.Sprintf("/v1/projects/%d/label-config", pid), xml, "Content-Type", "application/xml")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
}

func TestLabelConfigFromJSONAndXML(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	pid := w.project(t, w.orgA, "configured")
	path := fmt.Sprintf("/v1/projects/%d/label-config", pid)

	r := w.orgA.do("GET", path, nil)
	require.Equal(t, http.StatusNotFound, r.Status, "no config yet: %s", r.Body)
	require.Contains(t, r.json(t)["detail"], "has no label config")
	r = w.orgA.do("GET", fmt.Sprintf("/v1/projects/%d", pid), nil)
	require.Nil(t, r.json(t)["label_config"])

	// JSON: answered as stored, with defaults filled (a choices control is single).
	r = w.orgA.do("PUT", path, map[string]any{
		"objects": []any{map[string]any{"name": "img", "type": "image", "value": "$photo"}},
		"controls": []any{
			map[string]any{"name": "box", "type": "rectanglelabels", "to_name": "img", "labels": []string{"Car", "Bus"}},
			map[string]any{"name": "weather", "type": "choices", "to_name": "img", "labels": []string{"Sun", "Rain"}},
		},
	})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	want := `{"objects": [{"name": "img", "type": "image", "value": "$photo"}], "controls": [
		{"name": "box", "type": "rectanglelabels", "to_name": "img", "labels": ["Car", "Bus"]},
		{"name": "weather", "type": "choices", "to_name": "img", "choice": "single", "labels": ["Sun", "Rain"]}]}`
	require.JSONEq(t, want, string(r.Body))
	r = w.orgA.do("GET", path, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.JSONEq(t, want, string(r.Body))
	r = w.orgA.do("GET", fmt.Sprintf("/v1/projects/%d", pid), nil)
	stored, err := json.Marshal(r.json(t)["label_config"])
	require.NoError(t, err)
	require.JSONEq(t, want, string(stored), "the project shows its label config")

	// Label Studio's templates, as application/xml and text/xml.
	for _, tc := range []struct {
		name, xml, ctype, want string
	}{
		{"object detection", lsObjectDetection, "application/xml",
			`{"objects": [{"name": "image", "type": "image", "value": "$image"}],
			  "controls": [{"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Airplane", "Car"]}]}`},
		{"image classification", lsImageClassification, "text/xml; charset=utf-8",
			`{"objects": [{"name": "image", "type": "image", "value": "$image"}],
			  "controls": [{"name": "choice", "type": "choices", "to_name": "image", "choice": "single", "labels": ["Adult content", "Weapons", "Violence"]}]}`},
		{"named entity recognition", lsNamedEntityRecognition, "application/xml",
			`{"objects": [{"name": "text", "type": "text", "value": "$ner"}],
			  "controls": [{"name": "label", "type": "labels", "to_name": "text", "labels": ["PER", "ORG", "LOC", "MISC"]}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := w.orgA.do("PUT", path, tc.xml, "Content-Type", tc.ctype)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			require.JSONEq(t, tc.want, string(r.Body))
			r = w.orgA.do("GET", path, nil)
			require.JSONEq(t, tc.want, string(r.Body))
		})
	}

	// Refusals name the tag or the field, and keep the stored config.
	for _, tc := range []struct {
		name, body, ctype string
		status            int
		field, detail     string
	}{
		{"a Video tag", "<View>\n  <Video name=\"video\" value=\"$video\"/>\n  <Labels name=\"l\" toName=\"video\"><Label value=\"A\"/></Labels>\n</View>",
			"application/xml", http.StatusUnprocessableEntity, "label_config", "unsupported tag <Video> at line 2"},
		{"malformed XML", "<View><Image name=\"image\"", "text/xml", http.StatusUnprocessableEntity, "label_config", "label config"},
		{"a control on no object", `{"objects": [{"name": "image", "type": "image", "value": "$image"}],
			"controls": [{"name": "label", "type": "rectanglelabels", "to_name": "photo", "labels": ["Car"]}]}`,
			"application/json", http.StatusUnprocessableEntity, "controls[0].to_name", `"photo" is not an object of this config`},
		{"spans on an image", `{"objects": [{"name": "image", "type": "image", "value": "$image"}],
			"controls": [{"name": "label", "type": "labels", "to_name": "image", "labels": ["Car"]}]}`,
			"application/json", http.StatusUnprocessableEntity, "controls[0].to_name", "a labels control annotates text objects"},
		{"an unknown field", `{"objects": [], "controls": [], "colour": "red"}`, "application/json", http.StatusUnprocessableEntity, "label_config", `unknown field "colour"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := w.orgA.do("PUT", path, tc.body, "Content-Type", tc.ctype)
			require.Equal(t, tc.status, r.Status, string(r.Body))
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			p := r.json(t)
			require.Contains(t, p["detail"], tc.detail)
			fields, _ := p["errors"].([]any)
			require.NotEmpty(t, fields, string(r.Body))
			require.Equal(t, tc.field, fields[0].(map[string]any)["field"])
		})
	}
	r = w.orgA.do("PUT", path, lsObjectDetection, "Content-Type", "text/plain")
	require.Equal(t, http.StatusUnsupportedMediaType, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "application/xml")
	r = w.orgA.do("GET", path, nil)
	require.Contains(t, string(r.Body), `"value":"$ner"`, "a refused config leaves the stored one")

	// Another organization's project is not found, to read or to set.
	r = w.orgB.do("GET", path, nil)
	require.Equal(t, http.StatusNotFound, r.Status)
	r = w.orgB.do("PUT", path, lsObjectDetection, "Content-Type", "application/xml")
	require.Equal(t, http.StatusNotFound, r.Status)
	r = w.orgA.do("GET", path, nil)
	require.Contains(t, string(r.Body), `"value":"$ner"`)
}

// resultFixture is a project with a label config, a dataset version with its
// job, and helpers to register results.
type resultFixture struct {
	w         *fixture
	pid       int64
	jobID     int64
	resultsID int64 // an annotation_results file
}

func newResultFixture(t *testing.T, w *fixture, xml string, content []byte) *resultFixture {
	t.Helper()
	ctx := context.Background()
	pid := w.project(t, w.orgA, fmt.Sprintf("results-%d", len(content)))
	w.putConfig(t, pid, xml)
	r := w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/files", pid), map[string]any{"name": "task.dat"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	fid := id(t, r)
	key := fmt.Sprintf("orgs/%d/projects/%d/task.dat", w.orgAID, pid)
	w.env.S3.Put(t, key, content, minioOpts())
	r = w.orgA.do("POST", fmt.Sprintf("/v1/files/%d/versions", fid), map[string]any{"storage_path": key})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	job, err := w.env.PG.Q.AnnotationJobCreate(ctx, db.AnnotationJobCreateParams{OrgID: w.orgAID, ProjectID: pid, FileID: fid, FileVersionID: id(t, r), Priority: db.JobPriorityMedium})
	require.NoError(t, err)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/files", pid), map[string]any{"name": "task.result.json", "file_type": "annotation_results"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	return &resultFixture{w: w, pid: pid, jobID: job.ID, resultsID: id(t, r)}
}

func (f *resultFixture) register(t *testing.T, fileID int64, n int, body []byte) int64 {
	t.Helper()
	key := fmt.Sprintf("orgs/%d/projects/%d/results/%d/%d.json", f.w.orgAID, f.pid, fileID, n)
	f.w.env.S3.Put(t, key, body, minioOpts())
	r := f.w.orgA.do("POST", fmt.Sprintf("/v1/files/%d/versions", fileID), map[string]any{"storage_path": key})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	return id(t, r)
}

func (f *resultFixture) setResult(t *testing.T, versionID int64) reply {
	t.Helper()
	return f.w.orgA.do("PATCH", fmt.Sprintf("/v1/jobs/%d", f.jobID), map[string]any{"result_version_id": versionID, "review_status": "approved"})
}

// A job's result set with PATCH /v1/jobs/{id} is held to the project's label
// config at request time: the region at fault is a 422 naming it.
func TestJobResultFitsTheLabelConfig(t *testing.T) {
	t.Parallel()
	w := newFixture(t)

	t.Run("boxes", func(t *testing.T) {
		f := newResultFixture(t, w, lsObjectDetection, []byte("an image"))
		good := f.register(t, f.resultsID, 1, []byte(`[{"id": "a", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
			"value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0, "rectanglelabels": ["Car"]}}]`))
		bad := f.register(t, f.resultsID, 2, []byte(`[{"id": "a", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
			"value": {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["Car"]}},
			{"id": "b", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
			"value": {"x": 140, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["Car"]}}]`))

		r := f.setResult(t, bad)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
		p := r.json(t)
		require.Contains(t, p["detail"], `region 1 (from_name "label"): value.x = 140 is outside 0–100`)
		require.Equal(t, "result_version_id", p["errors"].([]any)[0].(map[string]any)["field"])
		r = w.orgA.do("GET", fmt.Sprintf("/v1/projects/%d/jobs", f.pid), nil)
		require.NotContains(t, string(r.Body), `"review_status":"approved"`, "a refused result changes nothing")

		r = f.setResult(t, good)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.EqualValues(t, good, r.json(t)["result_version_id"])

		// A dataset version is not a result.
		r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/files", f.pid), map[string]any{"name": "other.dat"})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		dataset := f.register(t, id(t, r), 1, []byte(`[]`))
		r = f.setResult(t, dataset)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
		require.Contains(t, r.json(t)["detail"], "a job's result is an annotation_results version")
	})

	t.Run("spans against the job's text", func(t *testing.T) {
		f := newResultFixture(t, w, lsNamedEntityRecognition, []byte("Ada Lovelace was born in London."))
		past := f.register(t, f.resultsID, 1, []byte(`[{"from_name": "label", "to_name": "text", "type": "labels",
			"value": {"start": 25, "end": 60, "labels": ["LOC"]}}]`))
		wrongType := f.register(t, f.resultsID, 2, []byte(`[{"from_name": "label", "to_name": "text", "type": "choices",
			"value": {"choices": ["LOC"]}}]`))
		good := f.register(t, f.resultsID, 3, []byte(`{"result": [{"from_name": "label", "to_name": "text", "type": "labels",
			"value": {"start": 0, "end": 12, "text": "Ada Lovelace", "labels": ["PER"]}},
			{"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 25, "end": 31, "text": "London", "labels": ["LOC"]}}]}`))

		r := f.setResult(t, past)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
		require.Contains(t, r.json(t)["detail"], "region 0 (from_name \"label\"): value.end = 60 is past the end of the text (32 code points)")
		r = f.setResult(t, wrongType)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
		require.Contains(t, r.json(t)["detail"], `type "choices" does not match`)
		r = f.setResult(t, good)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	})

	t.Run("without a label config nothing is checked", func(t *testing.T) {
		pid := w.project(t, w.orgA, "no-config")
		r := w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/files", pid), map[string]any{"name": "raw.txt"})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		fid := id(t, r)
		key := fmt.Sprintf("orgs/%d/projects/%d/raw.txt", w.orgAID, pid)
		r = w.orgA.do("POST", fmt.Sprintf("/v1/files/%d/versions", fid), map[string]any{"storage_path": key})
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
		vid := id(t, r)
		job, err := w.env.PG.Q.AnnotationJobCreate(context.Background(), db.AnnotationJobCreateParams{OrgID: w.orgAID, ProjectID: pid, FileID: fid,
			FileVersionID: vid, Priority: db.JobPriorityMedium})
		require.NoError(t, err)
		// Not even an object to read: the result is taken as it was before label configs.
		r = w.orgA.do("PATCH", fmt.Sprintf("/v1/jobs/%d", job.ID), map[string]any{"result_version_id": vid})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	})
}
