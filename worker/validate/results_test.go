package validate_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/resultcheck"
)

// Label Studio's object detection and named entity recognition templates (as in
// internal/labelconfig's tests), the configs the results below are held to.
const (
	detectionXML = `<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Airplane" background="green"/>
    <Label value="Car" background="blue"/>
  </RectangleLabels>
</View>`
	nerXML = `<View>
  <Labels name="label" toName="text">
    <Label value="PER" background="red"/>
    <Label value="ORG" background="darkorange"/>
    <Label value="LOC" background="orange"/>
    <Label value="MISC" background="green"/>
  </Labels>
  <Text name="text" value="$ner"/>
</View>`
)

func box(x, y, w, h float64, label string) map[string]any {
	return map[string]any{"id": "r" + label, "from_name": "label", "to_name": "image", "type": "rectanglelabels",
		"original_width": 800, "original_height": 600,
		"value": map[string]any{"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": []string{label}}}
}

func span(start, end int, text, label string) map[string]any {
	v := map[string]any{"start": start, "end": end, "labels": []string{label}}
	if text != "" {
		v["text"] = text
	}
	return map[string]any{"id": "s" + label, "from_name": "label", "to_name": "text", "type": "labels", "value": v}
}

func resultJSON(t *testing.T, regions ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(regions)
	require.NoError(t, err)
	return b
}

// resultsCase is a project with a label config (none when xml is ""), a
// dataset version holding its task's content, and an annotation_results file.
type resultsCase struct {
	*caseCtx
	dataset db.FileVersion
	results db.File
}

func newResultsCase(t *testing.T, hs *fixture, xml string, content []byte) *resultsCase {
	t.Helper()
	c := newCase(t, hs, validateCase{})
	ctx := context.Background()
	if xml != "" {
		cfg, err := labelconfig.FromXML(strings.NewReader(xml))
		require.NoError(t, err)
		b, err := json.Marshal(cfg)
		require.NoError(t, err)
		_, err = hs.env.PG.Q.ProjectSetLabelConfig(ctx, db.ProjectSetLabelConfigParams{LabelConfig: b, ID: c.project.ID, OrgID: c.org.ID})
		require.NoError(t, err)
	}
	rc := &resultsCase{caseCtx: c}
	rc.dataset = c.upload(t, c.file, content, declared(content, ""), minio.PutObjectOptions{})
	rc.results = c.newFile(t, db.FileTypeAnnotationResults)
	return rc
}

// upload registers result as the results file's next version; with source, the
// dataset version is its source version (as an import sets it).
func (rc *resultsCase) uploadResult(t *testing.T, result []byte, source bool) db.FileVersion {
	t.Helper()
	v := rc.upload(t, rc.results, result, declared(result, ""), minio.PutObjectOptions{})
	if source {
		_, err := rc.hs.env.PG.Pool.Exec(context.Background(), `UPDATE file_versions SET source_file_version_id = $2 WHERE id = $1`, v.ID, rc.dataset.ID)
		require.NoError(t, err)
	}
	return v
}

// resultOutcome validates v and returns its status, its validation_error ("" for
// none), and the codes and notes of its event.
func resultOutcome(t *testing.T, hs *fixture, v db.FileVersion) (db.ValidationStatus, string, []string, []string) {
	t.Helper()
	err := hs.process(t, v.ID)
	got := hs.version(t, v.ID)
	if got.ValidationStatus == db.ValidationStatusValid {
		require.NoError(t, err)
	} else {
		requireResult(t, archived, err)
	}
	evs := hs.events(t, got)
	require.Len(t, evs, 1)
	var meta struct {
		Codes []string `json:"codes"`
		Notes []string `json:"notes"`
	}
	require.NoError(t, json.Unmarshal(evs[0].Metadata, &meta))
	return got.ValidationStatus, deref(got.ValidationError), meta.Codes, meta.Notes
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Results in Label Studio's format (issue 19, item 2): an annotation_results
// version of a project with a label config is checked against it by
// file:validate, and a region that does not fit is rejected naming the region
// index and the field.
func TestValidateResultsAgainstTheLabelConfig(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	image := []byte("\x89PNG not really, but a dataset all the same")

	tests := []struct {
		name   string
		result []byte
		status db.ValidationStatus
		errHas []string
	}{
		{"a good result", resultJSON(t, box(10, 20, 30, 40, "Car"), box(50, 50, 50, 50, "Airplane")), db.ValidationStatusValid, nil},
		{"an annotation object holding the result", []byte(`{"id": 7, "completed_by": 1, "result": ` + string(resultJSON(t, box(1, 2, 3, 4, "Car"))) + `}`),
			db.ValidationStatusValid, nil},
		{"an empty result", []byte(`[]`), db.ValidationStatusValid, nil},
		{"an unknown label", resultJSON(t, box(10, 20, 30, 40, "Car"), box(10, 20, 30, 40, "Truck")), db.ValidationStatusRejected,
			[]string{`region 1 (from_name "label")`, `value.rectanglelabels[0] = "Truck" is not one of control "label"'s labels ("Airplane", "Car")`}},
		{"x = 140", resultJSON(t, box(140, 20, 30, 40, "Car")), db.ValidationStatusRejected,
			[]string{`region 0 (from_name "label")`, "value.x = 140 is outside 0–100"}},
		{"a box past the right edge", resultJSON(t, box(90, 20, 30, 40, "Car")), db.ValidationStatusRejected,
			[]string{"region 0", "value.x + value.width = 90 + 30 = 120 is past the right edge"}},
		{"the wrong type", []byte(`[{"from_name": "label", "to_name": "image", "type": "polygonlabels", "value": {"points": [[1,1],[2,2],[3,1]], "polygonlabels": ["Car"]}}]`),
			db.ValidationStatusRejected, []string{"region 0", `type "polygonlabels" does not match: control "label" is a rectanglelabels control`}},
		{"an unknown control", []byte(`[{"from_name": "box", "to_name": "image", "type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["Car"]}}]`),
			db.ValidationStatusRejected, []string{"region 0", `from_name "box" is not a control of this label config`}},
		{"not a list of regions", []byte(`{"boxes": []}`), db.ValidationStatusRejected, []string{"result must be a JSON list of regions"}},
		{"JSON cut short", []byte(`[{"from_name": "label", "to_name": "image"`), db.ValidationStatusRejected, []string{"result is not valid JSON"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newResultsCase(t, hs, detectionXML, image)
			v := rc.uploadResult(t, tc.result, true)
			status, msg, codes, _ := resultOutcome(t, hs, v)
			require.Equal(t, tc.status, status, msg)
			if tc.status == db.ValidationStatusValid {
				require.Empty(t, msg)
				return
			}
			require.Equal(t, []string{resultcheck.CodeInvalid}, codes)
			require.Contains(t, msg, "the results do not fit the project's label config")
			for _, s := range tc.errHas {
				require.Contains(t, msg, s)
			}
		})
	}

	t.Run("results that are not JSON are not checked", func(t *testing.T) {
		t.Parallel()
		rc := newResultsCase(t, hs, detectionXML, image)
		v := rc.uploadResult(t, csvBytes(10), true)
		status, msg, _, notes := resultOutcome(t, hs, v)
		require.Equal(t, db.ValidationStatusValid, status, msg)
		require.Contains(t, strings.Join(notes, "\n"), "not checked against the project's label config")
	})
	t.Run("without a label config nothing is checked", func(t *testing.T) {
		t.Parallel()
		rc := newResultsCase(t, hs, "", image)
		v := rc.uploadResult(t, resultJSON(t, box(140, 20, 30, 40, "Truck")), true)
		status, msg, _, _ := resultOutcome(t, hs, v)
		require.Equal(t, db.ValidationStatusValid, status, msg)
	})
}

// Spans are checked against the text of the task the results annotate: their
// source version, else the dataset version of the job that has them as its
// result; without either, everything but the text is checked, and a note says
// so.
func TestValidateSpansAgainstTheTasksText(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	text := []byte("Alice Smith works at Acme 🐱 in Paris.") // 37 code points; the cat is 4 bytes, one code point
	paris := span(31, 36, "Paris", "LOC")

	tests := []struct {
		name   string
		result []byte
		link   string // "source", "job" or "" (none)
		status db.ValidationStatus
		errHas []string
		note   string
	}{
		{"spans in the text, offsets in code points", resultJSON(t, span(0, 11, "Alice Smith", "PER"), span(21, 25, "Acme", "ORG"), paris),
			"source", db.ValidationStatusValid, nil, ""},
		{"a span past the end", resultJSON(t, span(0, 5, "Alice", "PER"), span(31, 40, "", "LOC")), "source", db.ValidationStatusRejected,
			[]string{`region 1 (from_name "label")`, "value.end = 40 is past the end of the text (37 code points)"}, ""},
		{"quoted text that is not the text at the offsets", resultJSON(t, span(0, 5, "Bobby", "PER")), "source", db.ValidationStatusRejected,
			[]string{"region 0", `value.text "Bobby" is not the text at 0–5, which is "Alice"`}, ""},
		{"an unknown label", resultJSON(t, span(0, 5, "Alice", "PERSON")), "source", db.ValidationStatusRejected,
			[]string{"region 0", `value.labels[0] = "PERSON" is not one of control "label"'s labels`}, ""},
		{"a span past the end, the text found through the job", resultJSON(t, span(31, 40, "", "LOC")), "job", db.ValidationStatusRejected,
			[]string{"region 0", "value.end = 40 is past the end of the text"}, ""},
		{"the job's text, spans in it", resultJSON(t, paris), "job", db.ValidationStatusValid, nil, ""},
		{"no task known: the bounds are not checked", resultJSON(t, span(31, 40, "Paris", "LOC")), "", db.ValidationStatusValid, nil,
			"spans not checked against the task's text: no dataset version is known for these results yet"},
		{"no task known: the rest is", resultJSON(t, span(5, 2, "", "LOC")), "", db.ValidationStatusRejected,
			[]string{"region 0", "value.end = 2 must be after value.start = 5"}, "no dataset version is known"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newResultsCase(t, hs, nerXML, text)
			v := rc.uploadResult(t, tc.result, tc.link == "source")
			if tc.link == "job" {
				ctx := context.Background()
				job, err := hs.env.PG.Q.AnnotationJobCreate(ctx, db.AnnotationJobCreateParams{OrgID: rc.org.ID, ProjectID: rc.project.ID,
					FileID: rc.file.ID, FileVersionID: rc.dataset.ID, Priority: db.JobPriorityMedium})
				require.NoError(t, err)
				_, err = hs.env.PG.Pool.Exec(ctx, `UPDATE annotation_jobs SET result_version_id = $2 WHERE id = $1`, job.ID, v.ID)
				require.NoError(t, err)
			}
			status, msg, codes, notes := resultOutcome(t, hs, v)
			require.Equal(t, tc.status, status, msg)
			for _, s := range tc.errHas {
				require.Contains(t, msg, s)
			}
			if tc.status == db.ValidationStatusRejected {
				require.Equal(t, []string{resultcheck.CodeInvalid}, codes)
			}
			if tc.note != "" {
				require.Contains(t, strings.Join(notes, "\n"), tc.note)
			} else {
				require.NotContains(t, strings.Join(notes, "\n"), "spans not checked")
			}
		})
	}
}
