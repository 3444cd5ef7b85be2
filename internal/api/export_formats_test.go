package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
)

const (
	boxesLabelConfig = `{"objects": [{"name": "image", "type": "image", "value": "$image"}],
	  "controls": [{"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", "Person"]}]}`
	spansLabelConfig = `{"objects": [{"name": "text", "type": "text", "value": "$text"}],
	  "controls": [{"name": "label", "type": "labels", "to_name": "text", "labels": ["PER", "LOC"]}]}`
)

// formatProject makes a project of org A with the given label config (none
// when empty), set through the API as a user would.
func (w *fixture) formatProject(t *testing.T, name, config string) int64 {
	t.Helper()
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": name})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	pid := id(t, r)
	if config != "" {
		r = w.orgA.do("PUT", fmt.Sprintf("/v1/projects/%d/label-config", pid), json.RawMessage(config))
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	}
	return pid
}

// requireFormatInvalid checks a 422 problem naming field, with a detail holding
// every part of contains.
func requireFormatInvalid(t *testing.T, r reply, field string, contains ...string) {
	t.Helper()
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	p := r.json(t)
	fields, _ := p["errors"].([]any)
	require.NotEmpty(t, fields, string(r.Body))
	require.Equal(t, field, fields[0].(map[string]any)["field"], string(r.Body))
	for _, c := range contains {
		require.Contains(t, p["detail"], c)
	}
}

// TestExportFormatIsChecked: an export's format must fit the project's label
// config, or it is refused with a 422 naming the field and the reason;
// accepted, the format and the options with its defaults are on the export.
func TestExportFormatIsChecked(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	images := w.formatProject(t, "format-images", boxesLabelConfig)
	texts := w.formatProject(t, "format-texts", spansLabelConfig)
	bare := w.formatProject(t, "format-bare", "")
	exports := func(pid int64) string { return fmt.Sprintf("/v1/projects/%d/exports", pid) }

	for _, tc := range []struct {
		name     string
		pid      int64
		body     map[string]any
		field    string
		contains []string
	}{
		{"coco of a text project", texts, map[string]any{"format": "coco"}, "format", []string{"format coco exports image objects", `labels "label" on text "text"`}},
		{"yolo of a text project", texts, map[string]any{"format": "yolo"}, "format", []string{"format yolo"}},
		{"conll2003 of an image project", images, map[string]any{"format": "conll2003"}, "format", []string{"text objects annotated with labelled spans"}},
		{"a format without label config", bare, map[string]any{"format": "label_studio"}, "format", []string{"has none", fmt.Sprintf("/v1/projects/%d/label-config", bare)}},
		{"an unknown format", images, map[string]any{"format": "tfrecord"}, "format", []string{"not an export format", "coco"}},
		{"an empty format", images, map[string]any{"format": ""}, "format", []string{"not an export format"}},
		{"images of texts", texts, map[string]any{"format": "conll2003", "options": map[string]any{"include_files": true}}, "options.include_files", nil},
		{"predictions in coco", images, map[string]any{"format": "coco", "options": map[string]any{"include_llm": true}}, "options.include_llm", nil},
		{"labelq packing nothing", images, map[string]any{"options": map[string]any{"include_files": false, "include_annotations": false}}, "options", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireFormatInvalid(t, w.orgA.do("POST", exports(tc.pid), tc.body), tc.field, tc.contains...)
		})
	}

	// Accepted: the export shows its format and the options it will use.
	r := w.orgA.do("POST", exports(images), map[string]any{"format": "coco"})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	e := w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", id(t, r)), nil).json(t)
	require.Equal(t, "coco", e["format"])
	require.Equal(t, map[string]any{"include_files": false, "include_annotations": true, "include_llm": false}, e["options"])
	r = w.orgA.do("POST", exports(texts), map[string]any{"format": "label_studio", "options": map[string]any{"include_annotations": false}})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	e = w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", id(t, r)), nil).json(t)
	require.Equal(t, map[string]any{"include_files": false, "include_annotations": false, "include_llm": true}, e["options"], "label_studio carries predictions by default")
	r = w.orgA.do("POST", exports(bare), map[string]any{})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	e = w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", id(t, r)), nil).json(t)
	require.Equal(t, "labelq", e["format"], "labelq by default, without a label config")
	require.Equal(t, map[string]any{"include_files": true, "include_annotations": true, "include_llm": false, "include_consensus": false}, e["options"])
	list := w.orgA.do("GET", exports(images), nil).json(t)["items"].([]any)
	require.Equal(t, "coco", list[0].(map[string]any)["format"])
}

// TestScheduleFormatIsChecked: a schedule's format is checked like an
// export's, on create and on update, and its ticks' exports carry it.
func TestScheduleFormatIsChecked(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	images := w.formatProject(t, "schedule-images", boxesLabelConfig)
	texts := w.formatProject(t, "schedule-texts", spansLabelConfig)
	schedules := func(pid int64) string { return fmt.Sprintf("/v1/projects/%d/export-schedules", pid) }

	requireFormatInvalid(t, w.orgA.do("POST", schedules(texts), map[string]any{"cron_spec": "@daily", "format": "coco"}), "format", "format coco exports image objects")
	requireFormatInvalid(t, w.orgA.do("POST", schedules(texts), map[string]any{"cron_spec": "@daily", "format": "yolo", "options": map[string]any{"include_files": true}}), "format")

	r := w.orgA.do("POST", schedules(images), map[string]any{"cron_spec": "@daily", "format": "yolo", "options": map[string]any{"include_files": true}})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s := r.json(t)
	require.Equal(t, "yolo", s["format"])
	require.Equal(t, map[string]any{"include_files": true, "include_annotations": true, "include_llm": false}, s["options"])
	sid := id(t, r)
	path := fmt.Sprintf("/v1/export-schedules/%d", sid)

	// A format that does not fit is refused and the schedule left as it was.
	requireFormatInvalid(t, w.orgA.do("PATCH", path, map[string]any{"format": "conll2003"}), "format", "text objects")
	requireFormatInvalid(t, w.orgA.do("PATCH", path, map[string]any{"options": map[string]any{"include_llm": true}}), "options.include_llm")
	got := w.orgA.do("GET", schedules(images), nil).json(t)["items"].([]any)[0].(map[string]any)
	require.Equal(t, "yolo", got["format"])

	// A new format without options takes that format's defaults.
	r = w.orgA.do("PATCH", path, map[string]any{"format": "label_studio"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, map[string]any{"include_files": false, "include_annotations": true, "include_llm": true}, r.json(t)["options"])
	// Options alone keep the format, with its defaults for what they leave out.
	r = w.orgA.do("PATCH", path, map[string]any{"options": map[string]any{"include_files": true}})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, "label_studio", r.json(t)["format"])
	require.Equal(t, map[string]any{"include_files": true, "include_annotations": true, "include_llm": true}, r.json(t)["options"])

	// Another organization's schedule is not found, format or not.
	require.Equal(t, http.StatusNotFound, w.orgB.do("PATCH", path, map[string]any{"format": "coco"}).Status)

	// The tick's export has the schedule's format (the scheduler's query).
	row, err := w.env.PG.Q.ExportScheduleGetByID(context.Background(), sid)
	require.NoError(t, err)
	now := time.Now()
	e, err := w.env.PG.Q.ExportLogCreateForTick(context.Background(), db.ExportLogCreateForTickParams{
		OrgID: row.OrgID, ProjectID: row.ProjectID, ScheduleID: &sid, ScheduledFor: &now, Options: row.Options,
	})
	require.NoError(t, err)
	require.Equal(t, "label_studio", e.Format)
	require.Equal(t, "label_studio", w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", e.ID), nil).json(t)["format"])
}
