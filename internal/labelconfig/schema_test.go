package labelconfig_test

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/schema"
)

// strictFriendly walks a schema and fails on anything OpenAI's strict
// structured outputs refuse: an object without additionalProperties false or
// with a property left out of required, or a numeric/length bound.
func strictFriendly(t *testing.T, path string, node map[string]any) {
	t.Helper()
	for _, k := range []string{"minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format"} {
		require.NotContains(t, node, k, "%s uses %s", path, k)
	}
	if node["type"] == "object" {
		require.Equal(t, false, node["additionalProperties"], "%s: additionalProperties", path)
		props, _ := node["properties"].(map[string]any)
		require.NotEmpty(t, props, "%s: properties", path)
		keys := make([]string, 0, len(props))
		for k, v := range props {
			keys = append(keys, k)
			strictFriendly(t, path+"."+k, v.(map[string]any))
		}
		var req []string
		for _, r := range node["required"].([]any) {
			req = append(req, r.(string))
		}
		sort.Strings(keys)
		sort.Strings(req)
		require.Equal(t, keys, req, "%s: every property is required", path)
	}
	if items, ok := node["items"].(map[string]any); ok {
		strictFriendly(t, path+"[]", items)
	}
}

func compileOutputSchema(t *testing.T, c labelconfig.Config) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	raw, err := c.OutputSchema()
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc["$schema"])
	strictFriendly(t, "$", doc)
	compiled, err := schema.Compile(raw) // the compiler the API and the pre-annotation worker use
	require.NoError(t, err)
	return compiled, doc
}

func validates(t *testing.T, s *jsonschema.Schema, answer string) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(answer))
	require.NoError(t, err)
	return s.Validate(inst)
}

func TestOutputSchemaFollowsTheConfig(t *testing.T) {
	c := mustParse(t, detectionJSON)
	s, doc := compileOutputSchema(t, c)
	props := doc["properties"].(map[string]any)
	require.ElementsMatch(t, []string{"label", "outline", "point", "weather", "tags", "caption"}, keys(props))

	box := props["label"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	require.ElementsMatch(t, []string{"label", "x", "y", "width", "height", "score"}, keys(box))
	require.Equal(t, []any{"Airplane", "Car"}, box["label"].(map[string]any)["enum"])
	require.Equal(t, "number", box["x"].(map[string]any)["type"])
	require.Equal(t, map[string]any{"type": "string", "enum": []any{"Sunny", "Rain"}, "description": `The one choice that applies to image "image".`}, props["weather"])
	require.Equal(t, "array", props["tags"].(map[string]any)["type"])
	require.Equal(t, "string", props["caption"].(map[string]any)["type"])

	good := `{"label": [{"label": "Car", "x": 10, "y": 20, "width": 30, "height": 40, "score": 0.9}],
		"outline": [{"label": "Road", "points": [{"x": 1, "y": 1}, {"x": 9, "y": 1}, {"x": 5, "y": 9}], "score": 0.5}],
		"point": [], "weather": "Rain", "tags": ["Night"], "caption": "a car"}`
	require.NoError(t, validates(t, s, good))
	for name, bad := range map[string]string{
		"label not in the enum": strings.Replace(good, `"label": "Car"`, `"label": "Truck"`, 1),
		"a box without score":   strings.Replace(good, `, "score": 0.9`, ``, 1),
		"an extra property":     strings.Replace(good, `"caption": "a car"`, `"caption": "a car", "notes": ""`, 1),
		"a missing control":     strings.Replace(good, `, "caption": "a car"`, ``, 1),
		"a single choice list":  strings.Replace(good, `"weather": "Rain"`, `"weather": ["Rain"]`, 1),
	} {
		require.Error(t, validates(t, s, bad), name)
	}

	ner := mustParse(t, nerJSON)
	s, doc = compileOutputSchema(t, ner)
	spanProps := doc["properties"].(map[string]any)["label"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	require.ElementsMatch(t, []string{"label", "text", "start", "end"}, keys(spanProps))
	require.Equal(t, "integer", spanProps["start"].(map[string]any)["type"])
	require.NoError(t, validates(t, s, `{"label": [{"label": "PER", "text": "Jane", "start": 0, "end": 4}], "sentiment": "Positive"}`))
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestToRegionsBuildsLabelStudioRegions(t *testing.T) {
	c := mustParse(t, detectionJSON)
	answer := `{"label": [{"label": "Car", "x": 10, "y": 20, "width": 30, "height": 40, "score": 0.9},
	                      {"label": "Airplane", "x": 95, "y": 0, "width": 10, "height": 10, "score": 0.4}],
		"outline": [{"label": "Road", "points": [{"x": 1, "y": 1}, {"x": 9, "y": 1}, {"x": 5, "y": 9}], "score": 0.5}],
		"point": [{"label": "Nose", "x": 50, "y": 50, "score": 1}],
		"weather": "Rain", "tags": [], "caption": "a car"}`
	regions, repaired, dropped, err := c.ToRegions([]byte(answer), "")
	require.NoError(t, err)
	require.Equal(t, 0, repaired)
	require.Equal(t, 1, dropped, "the box past the right edge (95 + 10) is left out")
	require.NoError(t, c.Validate(regions, ""), "what ToRegions returns validates")
	require.Len(t, regions, 5)

	byName := map[string]labelconfig.Region{}
	for _, r := range regions {
		byName[r.FromName] = r
	}
	box := byName["label"]
	require.Equal(t, "llm-1", box.ID)
	require.Equal(t, labelconfig.RectangleLabels, box.Type)
	require.Equal(t, "image", box.ToName)
	require.Equal(t, 0.9, *box.Score)
	require.JSONEq(t, `{"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Car"]}`, string(box.Value))
	require.JSONEq(t, `{"points": [[1, 1], [9, 1], [5, 9]], "closed": true, "polygonlabels": ["Road"]}`, string(byName["outline"].Value))
	require.JSONEq(t, `{"x": 50, "y": 50, "keypointlabels": ["Nose"]}`, string(byName["point"].Value))
	require.JSONEq(t, `{"choices": ["Rain"]}`, string(byName["weather"].Value))
	require.JSONEq(t, `{"text": ["a car"]}`, string(byName["caption"].Value))
	require.NotContains(t, byName, "tags", "no choices, no region")
}

func TestToRegionsRepairsOrDropsSpans(t *testing.T) {
	c := mustParse(t, nerJSON)
	text := "Paris is in France. 🐱 Acme moved from Paris to Lyon."
	// code points: "Paris"@0, "France"@12, "Acme"@22, "Paris"@38, "Lyon"@47
	answer := `{"label": [
		{"label": "LOC", "text": "France", "start": 12, "end": 18},
		{"label": "ORG", "text": "Acme", "start": 23, "end": 27},
		{"label": "LOC", "text": "Paris", "start": 36, "end": 41},
		{"label": "LOC", "text": "Lyon", "start": 900, "end": 904},
		{"label": "PER", "text": "Berlin", "start": 0, "end": 6},
		{"label": "PER", "text": "", "start": 0, "end": 5}
	], "sentiment": "Positive"}`
	regions, repaired, dropped, err := c.ToRegions([]byte(answer), text)
	require.NoError(t, err)
	require.Equal(t, 3, repaired, "Acme (UTF-16 offsets), Paris (off by two), Lyon (out of range)")
	require.Equal(t, 2, dropped, "Berlin is not in the text; an empty quote locates nothing")
	require.NoError(t, c.Validate(regions, text))

	var got []string
	for _, r := range regions {
		if r.Type != labelconfig.Labels {
			continue
		}
		v, err := r.DecodeValue()
		require.NoError(t, err)
		got = append(got, v.Text+"@"+itoa(v.Start)+"-"+itoa(v.End))
	}
	require.Equal(t, []string{"France@12-18", "Acme@22-26", "Paris@38-43", "Lyon@47-51"}, got,
		"Paris near 36 is the second one (38), not the first (0)")
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestToRegionsRefusesAnswersOfAnotherShape(t *testing.T) {
	c := mustParse(t, detectionJSON)
	for _, tc := range []struct{ answer, err string }{
		{`[1]`, "answer must be a JSON object with one property per control, not a list"},
		{`{"boxes": []}`, `answer has a property "boxes", which is not a control of the label config`},
		{`{"label": [{"label": "Car", "x": "ten", "y": 0, "width": 1, "height": 1, "score": 1}]}`, "answer.label: [0].x must be a number, not a JSON string"},
		{`{"label": [{"label": "Car", "x": 1, "y": 0, "width": 1, "height": 1, "score": 1, "colour": "red"}]}`, `answer.label: [0]: unknown field "colour"`},
		{`{"label": {"label": "Car"}}`, "answer.label: must be a list, not an object"},
		{`{"weather": ["Rain"]}`, "answer.weather: must be one choice (a string), not a list"},
		{`{"tags": "Night"}`, "answer.tags: must be a list of choices"},
		{`{"caption": ["x"]}`, "answer.caption: must be a string"},
	} {
		_, _, _, err := c.ToRegions([]byte(tc.answer), "")
		require.ErrorContains(t, err, tc.err, tc.answer)
	}
	regions, _, dropped, err := c.ToRegions([]byte(`{"weather": "Snow", "tags": ["Night", "Fog"]}`), "")
	require.NoError(t, err)
	require.Empty(t, regions)
	require.Equal(t, 2, dropped, "choices outside the config are left out, not stored")
}
