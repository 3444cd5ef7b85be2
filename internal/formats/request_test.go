package formats_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/formats"
)

const boxesConfig = `{"objects": [{"name": "image", "type": "image", "value": "$image"}],
  "controls": [{"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Car"]}]}`

const spansConfig = `{"objects": [{"name": "text", "type": "text", "value": "$text"}],
  "controls": [{"name": "label", "type": "labels", "to_name": "text", "labels": ["PER"]}]}`

// TestFit: which requests each format takes, and the field a refusal names.
func TestFit(t *testing.T) {
	for _, tc := range []struct {
		name, format, config    string
		files, annotations, llm bool
		field, contains         string
	}{
		{name: "labelq needs no config", format: "labelq", files: true, annotations: true},
		{name: "labelq with nothing", format: "labelq", field: "options", contains: "at least one"},
		{name: "unknown format", format: "tfrecord", config: boxesConfig, annotations: true, field: "format", contains: "not an export format"},
		{name: "no config", format: "coco", annotations: true, field: "format", contains: "has none"},
		{name: "null config", format: "yolo", config: "null", annotations: true, field: "format", contains: "has none"},
		{name: "broken config", format: "coco", config: `{"objects": []}`, annotations: true, field: "format", contains: "not valid"},
		{name: "coco of a text project", format: "coco", config: spansConfig, annotations: true, field: "format", contains: "format coco exports image objects"},
		{name: "conll of an image project", format: "conll2003", config: boxesConfig, annotations: true, field: "format", contains: "text objects"},
		{name: "coco", format: "coco", config: boxesConfig, annotations: true},
		{name: "coco with images", format: "coco", config: boxesConfig, files: true, annotations: true},
		{name: "conll with files", format: "conll2003", config: spansConfig, files: true, annotations: true, field: "options.include_files", contains: "shows no image"},
		{name: "yolo without annotations", format: "yolo", config: boxesConfig, field: "options.include_annotations", contains: "is for label_studio"},
		{name: "yolo with predictions", format: "yolo", config: boxesConfig, annotations: true, llm: true, field: "options.include_llm", contains: "travel in label_studio"},
		{name: "label_studio predictions only", format: "label_studio", config: boxesConfig, llm: true},
		{name: "label_studio data only", format: "label_studio", config: spansConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := formats.Fit(tc.format, []byte(tc.config), tc.files, tc.annotations, tc.llm)
			if tc.field == "" {
				require.NoError(t, err)
				if tc.format != "labelq" {
					require.NotEmpty(t, cfg.Controls)
				}
				return
			}
			var fe *formats.FitError
			require.True(t, errors.As(err, &fe), "a *FitError, got %v", err)
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, fe.Reason, tc.contains)
		})
	}
}

func TestDefaults(t *testing.T) {
	yes, no := true, false
	f, a, l := formats.Defaults("labelq", nil, nil, nil)
	require.Equal(t, []bool{true, true, false}, []bool{f, a, l})
	f, a, l = formats.Defaults("coco", nil, nil, nil)
	require.Equal(t, []bool{false, true, false}, []bool{f, a, l})
	f, a, l = formats.Defaults("label_studio", nil, nil, nil)
	require.Equal(t, []bool{false, true, true}, []bool{f, a, l})
	f, a, l = formats.Defaults("label_studio", &yes, &no, &no)
	require.Equal(t, []bool{true, false, false}, []bool{f, a, l})
}
