package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExportIncludeConsensus: include_consensus is accepted with format labelq
// (alone it is a selection, and the export's options say it), and refused
// with a 422 on options.include_consensus naming the format that takes it
// with every converted format, for exports and schedules alike.
func TestExportIncludeConsensus(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	images := w.formatProject(t, "consensus-images", boxesLabelConfig)
	texts := w.formatProject(t, "consensus-texts", spansLabelConfig)
	exports := func(pid int64) string { return fmt.Sprintf("/v1/projects/%d/exports", pid) }
	schedules := func(pid int64) string { return fmt.Sprintf("/v1/projects/%d/export-schedules", pid) }
	consensus := map[string]any{"include_consensus": true}

	for _, tc := range []struct {
		format string
		pid    int64
	}{
		{"label_studio", images}, {"label_studio", texts}, {"json_min", images}, {"csv", texts},
		{"coco", images}, {"yolo", images}, {"voc", images}, {"conll2003", texts},
	} {
		t.Run(tc.format, func(t *testing.T) {
			requireFormatInvalid(t, w.orgA.do("POST", exports(tc.pid), map[string]any{"format": tc.format, "options": consensus}),
				"options.include_consensus", "only format labelq supports", "format "+tc.format)
			requireFormatInvalid(t, w.orgA.do("POST", schedules(tc.pid), map[string]any{"cron_spec": "@daily", "format": tc.format, "options": consensus}),
				"options.include_consensus", "only format labelq supports")
		})
	}
	// false is no request for consensus results: any format takes it.
	r := w.orgA.do("POST", exports(images), map[string]any{"format": "coco", "options": map[string]any{"include_consensus": false}})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	e := w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", id(t, r)), nil).json(t)
	require.Equal(t, map[string]any{"include_files": false, "include_annotations": true, "include_llm": false}, e["options"])
	// An unknown format is still the format's error.
	requireFormatInvalid(t, w.orgA.do("POST", exports(images), map[string]any{"format": "tfrecord", "options": consensus}), "format", "not an export format")
	// Not a boolean.
	bad := w.orgA.do("POST", exports(images), map[string]any{"options": map[string]any{"include_consensus": "yes"}})
	require.Equal(t, http.StatusUnprocessableEntity, bad.Status, string(bad.Body))
	require.Contains(t, string(bad.Body), "include_consensus")

	// labelq: with the defaults, and alone.
	r = w.orgA.do("POST", exports(images), map[string]any{"options": consensus})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	e = w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", id(t, r)), nil).json(t)
	require.Equal(t, "labelq", e["format"])
	require.Equal(t, map[string]any{"include_files": true, "include_annotations": true, "include_llm": false, "include_consensus": true}, e["options"])
	r = w.orgA.do("POST", exports(images), map[string]any{"format": "labelq", "options": map[string]any{
		"include_files": false, "include_annotations": false, "include_consensus": true,
	}})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	e = w.orgA.do("GET", fmt.Sprintf("/v1/exports/%d", id(t, r)), nil).json(t)
	require.Equal(t, map[string]any{"include_files": false, "include_annotations": false, "include_llm": false, "include_consensus": true}, e["options"])
	// Nothing at all is still refused, and the reason names consensus too.
	requireFormatInvalid(t, w.orgA.do("POST", exports(images), map[string]any{"options": map[string]any{
		"include_files": false, "include_annotations": false, "include_consensus": false,
	}}), "options", "consensus")

	// A labelq schedule takes it; turning it into label_studio with the
	// option kept is refused.
	r = w.orgA.do("POST", schedules(images), map[string]any{"cron_spec": "@daily", "options": consensus})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.Equal(t, map[string]any{"include_files": true, "include_annotations": true, "include_llm": false, "include_consensus": true}, r.json(t)["options"])
	path := fmt.Sprintf("/v1/export-schedules/%d", id(t, r))
	requireFormatInvalid(t, w.orgA.do("PATCH", path, map[string]any{"format": "label_studio", "options": consensus}), "options.include_consensus", "only format labelq supports")
}
