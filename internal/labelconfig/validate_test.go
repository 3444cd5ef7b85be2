package labelconfig_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/labelconfig"
)

// A Label Studio result for detectionJSON, as Label Studio exports it.
const detectionResult = `[
  {"original_width": 800, "original_height": 600, "image_rotation": 0,
   "value": {"x": 10, "y": 20, "width": 30.5, "height": 40, "rotation": 0, "rectanglelabels": ["Car"]},
   "id": "a1", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "origin": "manual"},
  {"original_width": 800, "original_height": 600,
   "value": {"x": 69.5, "y": 60, "width": 30.5, "height": 40.00000001, "rectanglelabels": ["Airplane"]},
   "id": "a2", "from_name": "label", "to_name": "image", "type": "rectanglelabels"},
  {"original_width": 800, "original_height": 600,
   "value": {"points": [[10, 10], [50, 10], [30, 100]], "closed": true, "polygonlabels": ["Road"]},
   "id": "a3", "from_name": "outline", "to_name": "image", "type": "polygonlabels"},
  {"value": {"x": 100, "y": 0, "width": 0.6, "keypointlabels": ["Nose"]},
   "id": "a4", "from_name": "point", "to_name": "image", "type": "keypointlabels"},
  {"value": {"choices": ["Sunny"]}, "id": "a5", "from_name": "weather", "to_name": "image", "type": "choices"},
  {"value": {"choices": ["Blurry", "Night"]}, "id": "a6", "from_name": "tags", "to_name": "image", "type": "choices"},
  {"value": {"text": ["a red car", "at night"]}, "id": "a7", "from_name": "caption", "to_name": "image", "type": "textarea"},
  {"value": {"x": 80, "y": 5, "width": 30, "height": 10, "rotation": 15, "rectanglelabels": ["Car"]},
   "id": "a8", "from_name": "label", "to_name": "image", "type": "rectanglelabels"}
]`

func TestValidateAcceptsLabelStudioResults(t *testing.T) {
	c := mustParse(t, detectionJSON)
	regions, err := labelconfig.ParseResult([]byte(detectionResult))
	require.NoError(t, err)
	require.Len(t, regions, 8)
	require.NoError(t, c.Validate(regions, ""))

	v, err := regions[0].DecodeValue()
	require.NoError(t, err)
	require.Equal(t, labelconfig.Value{X: 10, Y: 20, Width: 30.5, Height: 40, Labels: []string{"Car"}}, v)
	require.Equal(t, 800, regions[0].OriginalWidth)
	v, err = regions[2].DecodeValue()
	require.NoError(t, err)
	require.Equal(t, [][2]float64{{10, 10}, {50, 10}, {30, 100}}, v.Points)
	v, err = regions[6].DecodeValue()
	require.NoError(t, err)
	require.Equal(t, []string{"a red car", "at night"}, v.Lines)
}

// replace swaps old for new in the n-th region of detectionResult's JSON
// (as a list of raw regions).
func mutate(t *testing.T, n int, old, new string) []labelconfig.Region {
	t.Helper()
	var raws []json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(detectionResult), &raws))
	s := string(raws[n])
	require.Contains(t, s, old, "region %d", n)
	raws[n] = json.RawMessage(strings.Replace(s, old, new, 1))
	b, err := json.Marshal(raws)
	require.NoError(t, err)
	regions, err := labelconfig.ParseResult(b)
	require.NoError(t, err)
	return regions
}

func TestValidateRejectsNamingTheRegionAndField(t *testing.T) {
	c := mustParse(t, detectionJSON)
	for _, tc := range []struct {
		name     string
		region   int
		old, new string
		field    string
		err      string
	}{
		{"x = 140", 3, `"x": 100`, `"x": 140`, "value.x", `region 3 (from_name "point"): value.x = 140 is outside 0–100`},
		{"box x = 140", 0, `"x": 10`, `"x": 140`, "value.x", `region 0 (from_name "label"): value.x = 140 is outside 0–100`},
		{"negative y", 0, `"y": 20`, `"y": -0.5`, "value.y", "value.y = -0.5 is outside 0–100"},
		{"past the right edge", 1, `"x": 69.5`, `"x": 70`, "value.width", "value.x + value.width = 70 + 30.5 = 100.5 is past the right edge (100)"},
		{"past the bottom edge", 1, `"height": 40.00000001`, `"height": 41`, "value.height", "is past the bottom edge (100)"},
		{"zero width", 0, `"width": 30.5`, `"width": 0`, "value.width", "value.width = 0 is outside 0–100 (it must be above 0)"},
		{"missing x", 0, `"x": 10, `, ``, "value.x", `region 0 (from_name "label"): value.x is missing`},
		{"x not a number", 0, `"x": 10`, `"x": "10"`, "value.x", "value.x must be a number, not a JSON string"},
		{"unknown label", 0, `["Car"]`, `["Truck"]`, "value.rectanglelabels", `region 0 (from_name "label"): value.rectanglelabels[0] = "Truck" is not one of control "label"'s labels ("Airplane", "Car")`},
		{"no label", 0, `["Car"]`, `[]`, "value.rectanglelabels", "value.rectanglelabels is empty"},
		{"labels missing", 0, `, "rectanglelabels": ["Car"]`, ``, "value.rectanglelabels", "value.rectanglelabels is missing"},
		{"wrong type", 0, `"type": "rectanglelabels"`, `"type": "polygonlabels"`, "type", `region 0 (from_name "label"): type "polygonlabels" does not match: control "label" is a rectanglelabels control`},
		{"unsupported type", 0, `"type": "rectanglelabels"`, `"type": "brushlabels"`, "type", `type "brushlabels" does not match`},
		{"unknown control", 4, `"from_name": "weather"`, `"from_name": "climate"`, "from_name", `region 4 (from_name "climate"): from_name "climate" is not a control of this label config (controls: "label", "outline"`},
		{"no control", 4, `"from_name": "weather", `, ``, "from_name", "region 4: from_name is missing"},
		{"wrong object", 4, `"to_name": "image"`, `"to_name": "img"`, "to_name", `to_name "img" does not match: control "weather" annotates "image"`},
		{"polygon point out", 2, `[30, 100]`, `[30, 100.5]`, "value.points[2]", "value.points[2] y = 100.5 is outside 0–100"},
		{"polygon of two", 2, `, [30, 100]`, ``, "value.points", "value.points has 2 points; a polygon needs at least 3"},
		{"polygon point shape", 2, `[30, 100]`, `[30]`, "value.points[2]", "value.points[2] has 1 numbers"},
		{"unknown choice", 4, `["Sunny"]`, `["Snow"]`, "value.choices", `value.choices[0] = "Snow" is not one of control "weather"'s choices ("Sunny", "Rain")`},
		{"two single choices", 4, `["Sunny"]`, `["Sunny", "Rain"]`, "value.choices", `value.choices has 2 choices; control "weather" takes a single choice`},
		{"textarea not a list", 6, `["a red car", "at night"]`, `"a red car"`, "value.text", "value.text must be a list of strings, not the string \"a red car\""},
		{"value not an object", 5, `{"choices": ["Blurry", "Night"]}`, `["Blurry"]`, "value", "value must be a JSON object, not a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var regions []labelconfig.Region
			if tc.field == "value" { // ParseResult itself refuses it
				var raws []json.RawMessage
				require.NoError(t, json.Unmarshal([]byte(detectionResult), &raws))
				raws[tc.region] = json.RawMessage(strings.Replace(string(raws[tc.region]), tc.old, tc.new, 1))
				b, _ := json.Marshal(raws)
				_, err := labelconfig.ParseResult(b)
				requireRegionErr(t, err, tc.region, tc.field, tc.err)
				return
			}
			regions = mutate(t, tc.region, tc.old, tc.new)
			requireRegionErr(t, c.Validate(regions, ""), tc.region, tc.field, tc.err)
		})
	}
}

func requireRegionErr(t *testing.T, err error, index int, field, msg string) {
	t.Helper()
	require.Error(t, err)
	var ve *labelconfig.ValidationError
	require.True(t, errors.As(err, &ve), "%T: %v", err, err)
	require.Equal(t, index, ve.Index, "error: %v", err)
	require.Equal(t, field, ve.Field, "error: %v", err)
	require.Contains(t, err.Error(), msg)
}

func span(from string, start, end int, text string, labels ...string) string {
	q, _ := json.Marshal(text)
	l, _ := json.Marshal(labels)
	return fmt.Sprintf(`{"id": "s%d", "from_name": %q, "to_name": "text", "type": "labels", "value": {"start": %d, "end": %d, "text": %s, "labels": %s}}`,
		start, from, start, end, q, l)
}

func TestValidateSpansCountCodePointsLikeLabelStudio(t *testing.T) {
	c := mustParse(t, nerJSON)
	// Label Studio's editor test "NER - Emoji - Text" (web/libs/editor/tests/
	// integration/e2e/ner/emoji.cy.ts with data/ner/emoji.ts): selecting
	// "test" stores start 21, end 25 — code points, where UTF-16 would be 22, 26.
	text := "🐱 Warning: This is a test text"
	regions, err := labelconfig.ParseResult([]byte("[" + span("label", 21, 25, "test", "MISC") + "]"))
	require.NoError(t, err)
	require.NoError(t, c.Validate(regions, text))

	regions, err = labelconfig.ParseResult([]byte("[" + span("label", 22, 26, "test", "MISC") + "]"))
	require.NoError(t, err)
	requireRegionErr(t, c.Validate(regions, text), 0, "value.text", `value.text "test" is not the text at 22–26, which is "est "`)

	// The last code point of "ü…🐱" ends at 3 however many bytes it takes.
	regions, _ = labelconfig.ParseResult([]byte("[" + span("label", 0, 3, "üé🐱", "PER") + "]"))
	require.NoError(t, c.Validate(regions, "üé🐱"))
	regions, _ = labelconfig.ParseResult([]byte("[" + span("label", 0, 4, "", "PER") + "]"))
	requireRegionErr(t, c.Validate(regions, "üé🐱"), 0, "value.end", "value.end = 4 is past the end of the text (3 code points)")
}

func TestValidateRejectsBadSpans(t *testing.T) {
	c := mustParse(t, nerJSON)
	text := "Jane Smith works at Acme in Paris."
	for _, tc := range []struct {
		name   string
		region string
		field  string
		err    string
	}{
		{"past the end", span("label", 28, 40, "", "LOC"), "value.end", `region 1 (from_name "label"): value.end = 40 is past the end of the text (34 code points)`},
		{"empty", span("label", 5, 5, "", "PER"), "value.end", "value.end = 5 must be after value.start = 5"},
		{"negative", span("label", -1, 4, "", "PER"), "value.start", "value.start = -1 is before the start of the text"},
		{"text differs", span("label", 0, 4, "John", "PER"), "value.text", `value.text "John" is not the text at 0–4, which is "Jane"`},
		{"unknown label", span("label", 0, 4, "Jane", "PERSON"), "value.labels", `value.labels[0] = "PERSON" is not one of control "label"'s labels`},
		{"xpath offsets", `{"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": "/p[1]/text()[1]", "end": "/p[1]/text()[1]", "startOffset": 0, "endOffset": 4, "labels": ["PER"]}}`,
			"value.start", "is an XPath offset (HyperText); only Text offsets (numbers) are supported"},
		{"fractional offset", `{"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 1.5, "end": 4, "labels": ["PER"]}}`,
			"value.start", "value.start must be a whole number (an offset in code points), not 1.5"},
		{"spans on a choices control", `{"from_name": "sentiment", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 4, "labels": ["PER"]}}`,
			"type", `type "labels" does not match: control "sentiment" is a choices control`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok := span("label", 0, 10, "Jane Smith", "PER")
			regions, err := labelconfig.ParseResult([]byte("[" + ok + "," + tc.region + "]"))
			require.NoError(t, err)
			requireRegionErr(t, c.Validate(regions, text), 1, tc.field, tc.err)
		})
	}
	t.Run("no text at all", func(t *testing.T) {
		regions, _ := labelconfig.ParseResult([]byte("[" + span("label", 0, 4, "", "PER") + "]"))
		requireRegionErr(t, c.Validate(regions, ""), 0, "value.end", "past the end of the text (0 code points)")
	})
}

func TestParseResultRoundTripsLabelStudioJSON(t *testing.T) {
	regions, err := labelconfig.ParseResult([]byte(detectionResult))
	require.NoError(t, err)
	require.Equal(t, json.RawMessage(`0`), regions[0].Extra["image_rotation"])
	out, err := json.Marshal(regions)
	require.NoError(t, err)
	require.JSONEq(t, detectionResult, string(out), "every field, known or not, survives")

	// An annotation or prediction object is read through its result.
	pred := `{"model_version": "gpt-4o", "score": 0.9, "result": ` + detectionResult + `}`
	again, err := labelconfig.ParseResult([]byte(pred))
	require.NoError(t, err)
	require.Equal(t, regions, again)

	score := 0.25
	r := labelconfig.Region{ID: "x", FromName: "label", ToName: "image", Type: labelconfig.RectangleLabels,
		Value: json.RawMessage(`{"x":1,"y":2,"width":3,"height":4,"rectanglelabels":["Car <&> \"quoted\"\u2028"]}`), Score: &score}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var back labelconfig.Region
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, r.Score, back.Score)
	require.JSONEq(t, string(r.Value), string(back.Value))
}

func TestParseResultRefusesMalformedJSON(t *testing.T) {
	for _, tc := range []struct {
		name, json, err string
	}{
		{"object without result", `{"annotations": []}`, `result must be a JSON list of regions, or an annotation with a "result" list`},
		{"a string", `"boxes"`, "result must be a JSON list of regions, not the string \"boxes\""},
		{"broken", `[{"id": "a"`, "result is not valid JSON"},
		{"region not an object", `[{"id": "a", "from_name": "l", "to_name": "i", "type": "choices", "value": {"choices": ["x"]}}, 5]`, "region 1: must be a JSON object (a region), not 5"},
		{"from_name not a string", `[{"from_name": 5}]`, "region 0: from_name must be a string, not 5"},
		{"original_width", `[{"from_name": "label", "original_width": "800px"}]`, `region 0 (from_name "label"): original_width must be a whole number of pixels, not "800px"`},
		{"score", `[{"from_name": "label", "score": "high"}]`, `score must be a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := labelconfig.ParseResult([]byte(tc.json))
			require.ErrorContains(t, err, tc.err)
		})
	}
}
