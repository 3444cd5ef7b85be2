package labelconfig_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/labelconfig"
)

const detectionJSON = `{
  "objects": [{"name": "image", "type": "image", "value": "$image"}],
  "controls": [
    {"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Airplane", "Car"]},
    {"name": "outline", "type": "polygonlabels", "to_name": "image", "labels": ["Road"]},
    {"name": "point", "type": "keypointlabels", "to_name": "image", "labels": ["Nose"]},
    {"name": "weather", "type": "choices", "to_name": "image", "labels": ["Sunny", "Rain"]},
    {"name": "tags", "type": "choices", "to_name": "image", "choice": "multiple", "labels": ["Blurry", "Night"]},
    {"name": "caption", "type": "textarea", "to_name": "image"}
  ]
}`

const nerJSON = `{
  "objects": [{"name": "text", "type": "text", "value": "$ner"}],
  "controls": [
    {"name": "label", "type": "labels", "to_name": "text", "labels": ["PER", "ORG", "LOC", "MISC"]},
    {"name": "sentiment", "type": "choices", "to_name": "text", "labels": ["Positive", "Negative"]}
  ]
}`

func mustParse(t testing.TB, s string) labelconfig.Config {
	t.Helper()
	c, err := labelconfig.Parse([]byte(s))
	require.NoError(t, err)
	return c
}

func TestParseReadsObjectsAndControlsAndDefaultsChoiceToSingle(t *testing.T) {
	c := mustParse(t, detectionJSON)
	require.Equal(t, []labelconfig.Object{{Name: "image", Type: labelconfig.ObjectImage, Value: "$image"}}, c.Objects)
	require.Len(t, c.Controls, 6)
	require.Equal(t, labelconfig.Control{Name: "label", Type: labelconfig.RectangleLabels, ToName: "image", Labels: []string{"Airplane", "Car"}}, c.Controls[0])
	weather, ok := c.Control("weather")
	require.True(t, ok)
	require.Equal(t, labelconfig.ChoiceSingle, weather.Choice, "a choices control without a mode is single-choice")
	tags, _ := c.Control("tags")
	require.True(t, tags.Multiple())
	require.Equal(t, "image", c.Objects[0].DataKey())

	// What Parse returns is what the API stores: it parses back to itself.
	b, err := json.Marshal(c)
	require.NoError(t, err)
	require.Equal(t, c, mustParse(t, string(b)))
}

func TestParseRefusesNamingTheField(t *testing.T) {
	obj := `"objects": [{"name": "image", "type": "image", "value": "$image"}]`
	for _, tc := range []struct {
		name, json, field, reason string
	}{
		{"not JSON", `{"objects": [`, "", "is empty or cut short"},
		{"not an object", `[1, 2]`, "", "must be a JSON object"},
		{"trailing data", `{` + obj + `, "controls": [{"name": "c", "type": "textarea", "to_name": "image"}]} {}`, "", "data after"},
		{"unknown field", `{` + obj + `, "controls": [{"name": "c", "type": "textarea", "to_name": "image", "colour": "red"}]}`, "", `unknown field "colour"`},
		{"no objects", `{"objects": [], "controls": [{"name": "c", "type": "textarea", "to_name": "image"}]}`, "objects", "is empty"},
		{"no controls", `{` + obj + `, "controls": []}`, "controls", "is empty"},
		{"labels not a list", `{` + obj + `, "controls": [{"name": "c", "type": "choices", "to_name": "image", "labels": "Car"}]}`, "controls.labels", "must be a list"},
		{"object type", `{"objects": [{"name": "v", "type": "video", "value": "$v"}], "controls": [{"name": "c", "type": "textarea", "to_name": "v"}]}`, "objects[0].type", `"video" is not an object type`},
		{"object value", `{"objects": [{"name": "image", "type": "image", "value": "image"}], "controls": [{"name": "c", "type": "textarea", "to_name": "image"}]}`, "objects[0].value", "must name a task data field"},
		{"empty name", `{` + obj + `, "controls": [{"name": "", "type": "textarea", "to_name": "image"}]}`, "controls[0].name", "is empty"},
		{"duplicate name", `{` + obj + `, "controls": [{"name": "image", "type": "textarea", "to_name": "image"}]}`, "controls[0].name", `"image" is already the name of objects[0].name`},
		{"control type", `{` + obj + `, "controls": [{"name": "c", "type": "brushlabels", "to_name": "image", "labels": ["a"]}]}`, "controls[0].type", `"brushlabels" is not a control type`},
		{"to_name missing", `{` + obj + `, "controls": [{"name": "c", "type": "textarea"}]}`, "controls[0].to_name", "is empty"},
		{"to_name unknown", `{` + obj + `, "controls": [{"name": "c", "type": "textarea", "to_name": "img"}]}`, "controls[0].to_name", `"img" is not an object of this config (objects: "image" (image))`},
		{"boxes on text", `{"objects": [{"name": "t", "type": "text", "value": "$t"}], "controls": [{"name": "c", "type": "rectanglelabels", "to_name": "t", "labels": ["a"]}]}`, "controls[0].to_name", `"t" is a text object; a rectanglelabels control annotates image objects`},
		{"spans on image", `{` + obj + `, "controls": [{"name": "c", "type": "labels", "to_name": "image", "labels": ["a"]}]}`, "controls[0].to_name", "annotates text objects"},
		{"no labels", `{` + obj + `, "controls": [{"name": "c", "type": "rectanglelabels", "to_name": "image"}]}`, "controls[0].labels", `is empty; list the labels of rectanglelabels control "c"`},
		{"no choices", `{` + obj + `, "controls": [{"name": "c", "type": "choices", "to_name": "image", "labels": []}]}`, "controls[0].labels", "list the choices"},
		{"blank label", `{` + obj + `, "controls": [{"name": "c", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", " "]}]}`, "controls[0].labels[1]", "is empty"},
		{"duplicate label", `{` + obj + `, "controls": [{"name": "c", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", "Car"]}]}`, "controls[0].labels[1]", `"Car" is listed twice`},
		{"textarea labels", `{` + obj + `, "controls": [{"name": "c", "type": "textarea", "to_name": "image", "labels": ["a"]}]}`, "controls[0].labels", "takes no labels"},
		{"choice mode", `{` + obj + `, "controls": [{"name": "c", "type": "choices", "to_name": "image", "choice": "many", "labels": ["a"]}]}`, "controls[0].choice", `"many" is not a choice mode`},
		{"choice elsewhere", `{` + obj + `, "controls": [{"name": "c", "type": "rectanglelabels", "to_name": "image", "choice": "single", "labels": ["a"]}]}`, "controls[0].choice", "only for choices controls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := labelconfig.Parse([]byte(tc.json))
			require.Error(t, err)
			var ce *labelconfig.ConfigError
			require.True(t, errors.As(err, &ce), "%T: %v", err, err)
			require.Equal(t, tc.field, ce.Field, "error: %v", err)
			require.Contains(t, ce.Reason, tc.reason)
		})
	}
}

func TestFitsSaysWhichFormatsAConfigCanExport(t *testing.T) {
	det := mustParse(t, detectionJSON)
	ner := mustParse(t, nerJSON)
	polygons := mustParse(t, `{"objects": [{"name": "image", "type": "image", "value": "$image"}],
		"controls": [{"name": "outline", "type": "polygonlabels", "to_name": "image", "labels": ["Road"]}]}`)
	classify := mustParse(t, `{"objects": [{"name": "image", "type": "image", "value": "$image"}],
		"controls": [{"name": "choice", "type": "choices", "to_name": "image", "labels": ["A", "B"]}]}`)
	for _, tc := range []struct {
		name   string
		cfg    labelconfig.Config
		format string
		err    string // "" fits
	}{
		{"coco boxes", det, "coco", ""},
		{"coco polygons", polygons, "coco", ""},
		{"yolo boxes", det, "yolo", ""},
		{"voc boxes", det, "voc", ""},
		{"yolo polygons only", polygons, "yolo", "no rectanglelabels control on an image object"},
		{"coco of text", ner, "coco", "format coco exports image objects annotated with boxes or polygons, but this label config has no rectanglelabels or polygonlabels control on an image object (it has labels \"label\" on text \"text\", choices \"sentiment\" on text \"text\")"},
		{"voc of classification", classify, "voc", "choose label_studio, json_min or csv"},
		{"conll of text", ner, "conll2003", ""},
		{"conll of images", det, "conll2003", "no labels control on a text object"},
		{"label_studio anything", ner, "label_studio", ""},
		{"labelq anything", det, "labelq", ""},
		{"csv", det, "csv", ""},
		{"json_min", ner, "json_min", ""},
		{"unknown format", det, "pascal", `format "pascal" is not an export format; use one of "labelq", "label_studio"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Fits(tc.format)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}

	t.Run("flat formats refuse colliding columns", func(t *testing.T) {
		c := mustParse(t, `{"objects": [{"name": "image", "type": "image", "value": "$id"}],
			"controls": [{"name": "c", "type": "textarea", "to_name": "image"}]}`)
		require.ErrorContains(t, c.Fits("csv"), `data field "id" (object "image") is named like the "id" column csv adds`)
		c = mustParse(t, `{"objects": [{"name": "image", "type": "image", "value": "$image"}],
			"controls": [{"name": "annotator", "type": "textarea", "to_name": "image"}]}`)
		require.ErrorContains(t, c.Fits("json_min"), `control "annotator" is named like the "annotator" column json_min adds`)
		c = mustParse(t, `{"objects": [{"name": "image", "type": "image", "value": "$caption"}],
			"controls": [{"name": "caption", "type": "textarea", "to_name": "image"}]}`)
		require.ErrorContains(t, c.Fits("csv"), `control "caption" is named like data field "caption"`)
		require.NoError(t, c.Fits("label_studio"), "label_studio keeps data and results apart")
	})
}
