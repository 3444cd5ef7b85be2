package preannotate

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/verify"
)

func mustConfig(t *testing.T, c labelconfig.Config) labelconfig.Config {
	t.Helper()
	b, err := json.Marshal(c)
	require.NoError(t, err)
	cfg, err := labelconfig.Parse(b)
	require.NoError(t, err)
	return cfg
}

func TestGuideIsBounded(t *testing.T) {
	labels := make([]string, 120)
	for i := range labels {
		labels[i] = fmt.Sprintf("L%03d", i)
	}
	cfg := labelconfig.Config{Objects: []labelconfig.Object{{Name: "text", Type: labelconfig.ObjectText, Value: "$text"}}}
	for i := range 200 {
		cfg.Controls = append(cfg.Controls, labelconfig.Control{
			Name: fmt.Sprintf("control_%03d", i), Type: labelconfig.Labels, ToName: "text", Labels: labels,
		})
	}
	cfg = mustConfig(t, cfg)

	g := guide(cfg)
	require.LessOrEqual(t, len(g), guideMaxBytes+1024, "the guide stays bounded whatever the config's size")
	require.Contains(t, g, `"L049", … and 70 more`, "at most guideLabelsPerControl labels a control")
	require.NotContains(t, g, `"L050"`)
	require.Regexp(t, `… and \d+ more controls \(the JSON Schema lists them all\)`, g)
	require.Contains(t, g, "Unicode code points", "the span rule follows the controls it applies to")

	small := mustConfig(t, labelconfig.Config{
		Objects:  []labelconfig.Object{{Name: "img", Type: labelconfig.ObjectImage, Value: "$image"}},
		Controls: []labelconfig.Control{{Name: "tags", Type: labelconfig.Choices, ToName: "img", Choice: "multiple", Labels: []string{"a \"quoted\" tag"}}},
	})
	g = guide(small)
	require.Contains(t, g, `- "tags": any number of choices on image "img"; labels: "a \"quoted\" tag"`)
	require.NotContains(t, g, "code points", "no span rule without spans")
	require.NotContains(t, g, "percent", "no coordinate rule without boxes")
}

func TestLabelConfigOfPrefersAHandWrittenSchema(t *testing.T) {
	cfgJSON := json.RawMessage(`{"objects":[{"name":"t","type":"text","value":"$text"}],"controls":[{"name":"c","type":"choices","to_name":"t","labels":["x"]}]}`)
	for name, tc := range map[string]struct {
		pr   db.Project
		want bool
	}{
		"no config":                  {db.Project{}, false},
		"null config":                {db.Project{LabelConfig: json.RawMessage("null")}, false},
		"config":                     {db.Project{LabelConfig: cfgJSON}, true},
		"config and null schema":     {db.Project{LabelConfig: cfgJSON, AnnotationSchema: json.RawMessage(" null ")}, true},
		"config and a schema":        {db.Project{LabelConfig: cfgJSON, AnnotationSchema: json.RawMessage(`{"type":"object"}`)}, false},
		"a schema and no config yet": {db.Project{AnnotationSchema: json.RawMessage(`{"type":"object"}`)}, false},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := labelConfigOf(tc.pr)
			require.NoError(t, err)
			require.Equal(t, tc.want, cfg != nil)
		})
	}
	_, err := labelConfigOf(db.Project{LabelConfig: json.RawMessage(`{"objects":[],"controls":[]}`)})
	var ce *labelconfig.ConfigError
	require.ErrorAs(t, err, &ce, "a stored config that no longer parses says why")
}

func TestPredictionWithoutImageFactsOrScores(t *testing.T) {
	cfg := mustConfig(t, labelconfig.Config{
		Objects: []labelconfig.Object{{Name: "image", Type: labelconfig.ObjectImage, Value: "$image"}},
		Controls: []labelconfig.Control{
			{Name: "pt", Type: labelconfig.KeyPointLabels, ToName: "image", Labels: []string{"eye"}},
			{Name: "note", Type: labelconfig.TextArea, ToName: "image"},
		},
	})
	b, counts, err := prediction(cfg, `model "x"`, []byte(`{"pt":[{"label":"eye","x":1,"y":2,"score":0.25}],"note":"blurry"}`), "", nil)
	require.NoError(t, err)
	require.Equal(t, regionCounts{regions: 2}, counts)
	var p struct {
		ModelVersion string          `json:"model_version"`
		Score        float64         `json:"score"`
		Result       json.RawMessage `json:"result"`
	}
	require.NoError(t, json.Unmarshal(b, &p), "%s", b)
	require.Equal(t, `model "x"`, p.ModelVersion)
	require.InDelta(t, 0.25, p.Score, 1e-12)
	regions, err := labelconfig.ParseResult(b)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(regions, ""))
	require.Zero(t, regions[0].OriginalWidth, "no image facts, no original size")

	b, _, err = prediction(cfg, "m", []byte(`{"pt":[{"label":"eye","x":1,"y":2,"score":0.5}],"note":""}`), "",
		&verify.Image{Width: 30, Height: 20, Orientation: 1})
	require.NoError(t, err)
	regions, err = labelconfig.ParseResult(b)
	require.NoError(t, err)
	require.Len(t, regions, 1, "an empty note is no region")
	require.Equal(t, [2]int{30, 20}, [2]int{regions[0].OriginalWidth, regions[0].OriginalHeight})

	_, _, err = prediction(cfg, "m", []byte(`{"other":[]}`), "", nil)
	require.ErrorContains(t, err, `"other"`)

	b, _, err = prediction(cfg, "m", []byte(`{"pt":[],"note":"x"}`), "", nil)
	require.NoError(t, err)
	require.False(t, strings.Contains(string(b), `"score"`), "no region with a score: no score")
}
