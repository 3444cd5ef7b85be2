package preannotate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/worker/preannotate"
)

const nerConfig = `{"objects":[{"name":"text","type":"text","value":"$text"}],
	"controls":[{"name":"label","type":"labels","to_name":"text","labels":["PER","ORG","LOC"]}]}`

const detectionConfig = `{"objects":[{"name":"image","type":"image","value":"$image"}],
	"controls":[{"name":"label","type":"rectanglelabels","to_name":"image","labels":["Car","Person"]},
	{"name":"time","type":"choices","to_name":"image","labels":["day","night"]}]}`

// setLabelConfig gives the fixture's project a label config, as
// PUT /v1/projects/{id}/label-config stores it.
func (w *fixture) setLabelConfig(raw string) labelconfig.Config {
	w.t.Helper()
	cfg, err := labelconfig.Parse([]byte(raw))
	require.NoError(w.t, err)
	_, err = w.env.PG.Pool.Exec(context.Background(), `UPDATE projects SET label_config = $2 WHERE id = $1`, w.project.ID, raw)
	require.NoError(w.t, err)
	return cfg
}

// prediction is the stored llm_output version of a succeeded run, its object
// decoded as a Label Studio prediction, and its llm_params.
type storedPrediction struct {
	version      db.FileVersion
	raw          []byte
	ModelVersion string          `json:"model_version"`
	Score        *float64        `json:"score"`
	Result       json.RawMessage `json:"result"`
	params       map[string]any
}

func (w *fixture) prediction(run db.LlmRun) storedPrediction {
	w.t.Helper()
	require.Equal(w.t, db.LlmRunStatusSucceeded, run.Status, "run error: %v", run.Error)
	out, err := w.env.PG.Q.FileVersionGetByID(context.Background(), *run.OutputVersionID)
	require.NoError(w.t, err)
	require.Equal(w.t, "application/json", *out.MimeType)
	p := storedPrediction{version: out, raw: w.object(out.StoragePath)}
	dec := json.NewDecoder(bytes.NewReader(p.raw))
	dec.DisallowUnknownFields()
	require.NoError(w.t, dec.Decode(&p), "the output is a Label Studio prediction and nothing else: %s", p.raw)
	require.NoError(w.t, json.Unmarshal(out.LlmParams, &p.params))
	return p
}

// span is a span of the model's answer.
type span struct {
	Label string `json:"label"`
	Text  string `json:"text"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// at is the span of quote in text at its code-point offsets, as Label Studio
// counts them.
func at(text, label, quote string) span {
	i := strings.Index(text, quote)
	if i < 0 {
		panic(quote + " is not in the text")
	}
	start := utf8.RuneCountInString(text[:i])
	return span{Label: label, Text: quote, Start: start, End: start + utf8.RuneCountInString(quote)}
}

// exportLabelStudio passes tasks through the label_studio converter and reads
// result.json back.
func exportLabelStudio(t *testing.T, cfg labelconfig.Config, tasks ...formats.Task) []struct {
	Data        map[string]string `json:"data"`
	Predictions []struct {
		ModelVersion string          `json:"model_version"`
		Score        *float64        `json:"score"`
		Result       json.RawMessage `json:"result"`
	} `json:"predictions"`
} {
	t.Helper()
	w := &entryWriter{}
	conv, err := formats.New(labelconfig.FormatLabelStudio, cfg, w)
	require.NoError(t, err)
	for _, tk := range tasks {
		require.NoError(t, conv.Add(tk))
	}
	require.NoError(t, conv.Close())
	require.Equal(t, []string{formats.ResultJSON}, w.names)
	var out []struct {
		Data        map[string]string `json:"data"`
		Predictions []struct {
			ModelVersion string          `json:"model_version"`
			Score        *float64        `json:"score"`
			Result       json.RawMessage `json:"result"`
		} `json:"predictions"`
	}
	require.NoError(t, json.Unmarshal(w.buf.Bytes(), &out), "%s", w.buf.String())
	return out
}

type entryWriter struct {
	names []string
	buf   bytes.Buffer
}

func (e *entryWriter) Create(name string) (io.Writer, error) {
	e.names = append(e.names, name)
	return &e.buf, nil
}

// The acceptance case for spans: the schema sent is the config's, the spans are
// checked against the text (one repaired, one dropped), and what is stored is a
// Label Studio prediction that validates against the config and comes out of the
// label_studio export as it went in.
func TestLabelConfigSpansBecomeAPrediction(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	cfg := w.setLabelConfig(nerConfig)
	pg := w.env.PG
	ep, _ := pg.InsertWebhook(t, w.keys, w.org.ID, testenv.WebhookRow{URL: "https://example.com/pre",
		EventTypes: []string{webhook.PreannotationSucceeded}})

	// The cat is one code point and four bytes: offsets in bytes (or UTF-16
	// units) are off by three (or one) after it.
	text := "🐱 Alice Smith works at Acme Corp in Paris."
	per, org, loc := at(text, "PER", "Alice Smith"), at(text, "ORG", "Acme Corp"), at(text, "LOC", "Paris")
	wrongOrg := org
	wrongOrg.Start, wrongOrg.End = strings.Index(text, "Acme Corp"), strings.Index(text, "Acme Corp")+len("Acme Corp") // byte offsets
	require.NotEqual(t, org.Start, wrongOrg.Start)
	answer, err := json.Marshal(map[string][]span{"label": {per, wrongOrg, {Label: "LOC", Text: "Berlin", Start: 36, End: 42}, loc}})
	require.NoError(t, err)
	w.srv.Next(llmtest.Fault{Content: string(answer)})

	v := w.valid("news-1.txt", "text/plain; charset=utf-8", []byte(text), nil)
	require.NoError(t, w.process(v))

	// What the model was asked.
	reqs := w.srv.Requests()
	require.Len(t, reqs, 1)
	want, err := cfg.OutputSchema()
	require.NoError(t, err)
	require.True(t, reqs[0].Strict())
	require.JSONEq(t, string(want), string(reqs[0].Schema()), "the schema sent is the one derived from the label config")
	sys := reqs[0].Messages[0].Content
	require.Contains(t, sys, "## Annotation guide")
	require.Contains(t, sys, `- "label": text spans on text "text"; labels: "PER", "ORG", "LOC"`)
	require.Contains(t, sys, "Unicode code points")
	require.Contains(t, reqs[0].Messages[1].Content, text)

	// What was stored.
	run := w.run(v)
	require.False(t, run.OutputUnwrapped)
	p := w.prediction(run)
	require.Equal(t, "gpt-4o-mini", p.ModelVersion)
	require.Nil(t, p.Score, "spans carry no score, so the prediction has none")
	regions, err := labelconfig.ParseResult(p.raw)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(regions, text), "the stored prediction fits the config and the text")
	type got struct {
		ID, From, To string
		Type         labelconfig.ControlType
		Start, End   int
		Text         string
		Labels       []string
	}
	var gots []got
	for _, r := range regions {
		val, err := r.DecodeValue()
		require.NoError(t, err)
		require.Zero(t, r.OriginalWidth, "a text region has no image size")
		gots = append(gots, got{r.ID, r.FromName, r.ToName, r.Type, val.Start, val.End, val.Text, val.Labels})
	}
	require.Equal(t, []got{
		{"llm-1", "label", "text", labelconfig.Labels, per.Start, per.End, "Alice Smith", []string{"PER"}},
		{"llm-2", "label", "text", labelconfig.Labels, org.Start, org.End, "Acme Corp", []string{"ORG"}}, // repaired
		{"llm-3", "label", "text", labelconfig.Labels, loc.Start, loc.End, "Paris", []string{"LOC"}},     // Berlin dropped
	}, gots)
	require.Equal(t, 23, org.Start, "code points, not bytes")
	require.Equal(t, preannotate.OutputFormatPrediction, p.params["output_format"])
	require.EqualValues(t, 3, p.params["regions"])
	require.EqualValues(t, 1, p.params["regions_repaired"])
	require.EqualValues(t, 1, p.params["regions_dropped"])
	require.Equal(t, run.SchemaHash, p.params["schema_hash"])

	var data webhook.PreannotationData
	testenv.RequireWebhookEvent(t, pg.Pool, w.org.ID, db.EntityTypeFileVersion, v.ID, webhook.PreannotationSucceeded, []int64{ep.ID}, &data)
	require.Equal(t, 1, *data.RegionsRepaired)
	require.Equal(t, 1, *data.RegionsDropped)
	require.Equal(t, []string{"preannotated"}, w.events(v))

	// The label_studio export carries it as the task's prediction.
	exported := exportLabelStudio(t, cfg, formats.Task{ID: 1, FileID: v.FileID, VersionID: v.ID, Filename: "news-1.txt", Text: text,
		Predictions: []formats.Prediction{{ModelVersion: p.ModelVersion, Score: p.Score, Result: regions}}})
	require.Len(t, exported, 1)
	require.Equal(t, text, exported[0].Data["text"])
	require.Len(t, exported[0].Predictions, 1)
	require.Equal(t, "gpt-4o-mini", exported[0].Predictions[0].ModelVersion)
	require.JSONEq(t, string(p.Result), string(exported[0].Predictions[0].Result), "the prediction travels region by region as stored")
	back, err := labelconfig.ParseResult(exported[0].Predictions[0].Result)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(back, text))

	// The same bytes in another file: a cache hit copies the prediction and its
	// counts, without a call.
	dup := w.valid("news-2.txt", "text/plain; charset=utf-8", []byte(text), &v.ID)
	require.NoError(t, w.process(dup))
	require.Len(t, w.srv.Requests(), 1, "no second call")
	dp := w.prediction(w.run(dup))
	require.Equal(t, p.raw, dp.raw)
	require.EqualValues(t, 1, dp.params["regions_repaired"])
	require.EqualValues(t, 1, dp.params["regions_dropped"])
	require.EqualValues(t, *w.run(dup).CachedFromID, dp.params["cached_from_run_id"])
}

// The acceptance case for boxes: an image project's answer becomes boxes (and a
// choice) whose original size is the image as displayed, and the prediction's
// score is the mean of the boxes' scores.
func TestLabelConfigBoxesOnAnImage(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	cfg := w.setLabelConfig(detectionConfig)
	answer := `{"label":[
		{"label":"Car","x":10,"y":20,"width":30,"height":40,"score":0.9},
		{"label":"Person","x":50,"y":10,"width":20,"height":30,"score":0.6},
		{"label":"Car","x":95,"y":0,"width":10,"height":10,"score":0.5}],
		"time":"night"}`
	w.srv.Next(llmtest.Fault{Content: answer})

	v := w.valid("street.png", "image/png", []byte("\x89PNG\r\n\x1a\nnot really an image"), nil)
	// Stored 640×480 with EXIF orientation 6 (turned a quarter): shown 480×640.
	_, err := w.env.PG.Pool.Exec(context.Background(),
		`UPDATE file_versions SET image_width = 640, image_height = 480, image_orientation = 6 WHERE id = $1`, v.ID)
	require.NoError(t, err)
	require.NoError(t, w.process(v))

	reqs := w.srv.Requests()
	require.Len(t, reqs, 1)
	want, err := cfg.OutputSchema()
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(reqs[0].Schema()))
	require.True(t, strings.HasPrefix(reqs[0].Messages[1].Parts[1].ImageURL, "data:image/png;base64,"), "the model sees the image")
	sys := reqs[0].Messages[0].Content
	require.Contains(t, sys, `- "label": boxes on image "image"; labels: "Car", "Person"`)
	require.Contains(t, sys, `- "time": one choice on image "image"; labels: "day", "night"`)
	require.Contains(t, sys, "percent of the image's width and height")

	p := w.prediction(w.run(v))
	require.NotNil(t, p.Score)
	require.InDelta(t, 0.75, *p.Score, 1e-9, "the mean of the kept boxes' scores")
	regions, err := labelconfig.ParseResult(p.raw)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(regions, ""))
	require.Len(t, regions, 3, "two boxes and the choice; the box past the edge is dropped")
	for i, r := range regions[:2] {
		require.Equal(t, labelconfig.RectangleLabels, r.Type)
		require.Equal(t, fmt.Sprintf("llm-%d", i+1), r.ID)
		require.Equal(t, 480, r.OriginalWidth, "the displayed width")
		require.Equal(t, 640, r.OriginalHeight)
	}
	box, err := regions[0].DecodeValue()
	require.NoError(t, err)
	require.Equal(t, []float64{10, 20, 30, 40}, []float64{box.X, box.Y, box.Width, box.Height})
	require.Equal(t, []string{"Car"}, box.Labels)
	require.InDelta(t, 0.9, *regions[0].Score, 1e-9)
	require.Equal(t, labelconfig.Choices, regions[2].Type)
	require.Zero(t, regions[2].OriginalWidth, "a choice carries no image size, as in Label Studio")
	choice, err := regions[2].DecodeValue()
	require.NoError(t, err)
	require.Equal(t, []string{"night"}, choice.Choices)
	require.EqualValues(t, 3, p.params["regions"])
	require.EqualValues(t, 0, p.params["regions_repaired"])
	require.EqualValues(t, 1, p.params["regions_dropped"])

	exported := exportLabelStudio(t, cfg, formats.Task{ID: 1, FileID: v.FileID, VersionID: v.ID, Filename: "street.png",
		Image:       &formats.ImageFacts{Width: 640, Height: 480, Orientation: 6},
		Predictions: []formats.Prediction{{ModelVersion: p.ModelVersion, Score: p.Score, Result: regions}}})
	require.Len(t, exported, 1)
	require.Equal(t, "images/street.png", exported[0].Data["image"])
	require.JSONEq(t, string(p.Result), string(exported[0].Predictions[0].Result))
	require.InDelta(t, *p.Score, *exported[0].Predictions[0].Score, 1e-9)
}

// A changed label config is a new run with a new schema and prompt hash, and a
// new call: the answer to the old config is not reused.
func TestLabelConfigChangeIsANewRun(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	w.setLabelConfig(nerConfig)
	text := []byte("Alice works at Acme.")
	v := w.valid("a.txt", "text/plain", text, nil)
	w.srv.Next(llmtest.Fault{Content: `{"label":[{"label":"PER","text":"Alice","start":0,"end":5}]}`})
	require.NoError(t, w.process(v))
	first := w.run(v)
	require.Equal(t, db.LlmRunStatusSucceeded, first.Status)

	changed := w.setLabelConfig(strings.Replace(nerConfig, `"LOC"]`, `"LOC","MISC"]`, 1))
	w.srv.Next(llmtest.Fault{Content: `{"label":[{"label":"ORG","text":"Acme","start":15,"end":19}]}`})
	require.NoError(t, w.process(v))

	reqs := w.srv.Requests()
	require.Len(t, reqs, 2, "the changed config is asked again")
	want, err := changed.OutputSchema()
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(reqs[1].Schema()))
	require.Contains(t, reqs[1].Messages[0].Content, `"MISC"`)
	runs := w.runs(v)
	require.Len(t, runs, 2)
	require.NotEqual(t, runs[0].SchemaHash, runs[1].SchemaHash)
	require.NotEqual(t, runs[0].PromptHash, runs[1].PromptHash, "the guide is in the prompt hash")
	require.Nil(t, runs[1].CachedFromID)
	second := w.prediction(runs[1])
	regions, err := labelconfig.ParseResult(second.raw)
	require.NoError(t, err)
	require.NoError(t, changed.Validate(regions, string(text)))
	require.Len(t, regions, 1)
	val, err := regions[0].DecodeValue()
	require.NoError(t, err)
	require.Equal(t, []string{"ORG"}, val.Labels)
}

// A hand-written annotation_schema wins over the label config: it is sent as it
// is, and the reply is stored as it came.
func TestHandWrittenSchemaWinsOverTheLabelConfig(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{project: []testenv.ProjectOpt{withSchema(labelSchema)}})
	w.setLabelConfig(nerConfig)
	v := w.valid("r.txt", "text/plain", []byte("Great value."), nil)
	require.NoError(t, w.process(v))

	req, ok := w.srv.LastRequest()
	require.True(t, ok)
	require.JSONEq(t, labelSchema, string(req.Schema()))
	require.NotContains(t, req.Messages[0].Content, "Annotation guide")
	run := w.run(v)
	out, err := w.env.PG.Q.FileVersionGetByID(context.Background(), *run.OutputVersionID)
	require.NoError(t, err)
	require.JSONEq(t, `{"label":"positive","confidence":0}`, string(w.object(out.StoragePath)))
	var params map[string]any
	require.NoError(t, json.Unmarshal(out.LlmParams, &params))
	require.NotContains(t, params, "output_format")
	require.NotContains(t, params, "regions_dropped")
}

// A reply the derived schema refuses gets its one repair call like any other,
// and a reply in a code fence is unwrapped before it becomes a prediction.
func TestLabelConfigRepairAndUnwrap(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	cfg := w.setLabelConfig(nerConfig)
	text := "Bob lives in Rome."
	w.srv.Next(
		llmtest.Fault{Content: `{"label":[{"label":"CITY","text":"Rome","start":13,"end":17}]}`}, // not a label
		llmtest.Fault{Content: "```json\n" + `{"label":[{"label":"LOC","text":"Rome","start":13,"end":17}]}` + "\n```"},
	)
	v := w.valid("b.txt", "text/plain", []byte(text), nil)
	require.NoError(t, w.process(v))
	require.Len(t, w.srv.Requests(), 2)
	run := w.run(v)
	require.Equal(t, int32(2), run.Attempts)
	require.True(t, run.OutputUnwrapped)
	p := w.prediction(run)
	regions, err := labelconfig.ParseResult(p.raw)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(regions, text))
	require.Len(t, regions, 1)
	require.EqualValues(t, 0, p.params["regions_repaired"])
	require.Equal(t, "code_fence", p.params["unwrapped"])
}

// A label config whose derived schema is over the limits of an annotation schema
// costs no call: the version is not pre-annotated, and says why.
func TestLabelConfigTooLargeForASchemaIsSkipped(t *testing.T) {
	t.Parallel()
	w := newFixture(t, fixtureOpts{})
	cfg := labelconfig.Config{Objects: []labelconfig.Object{{Name: "text", Type: labelconfig.ObjectText, Value: "$text"}}}
	for i := range 300 {
		cfg.Controls = append(cfg.Controls, labelconfig.Control{
			Name: fmt.Sprintf("control_%03d", i), Type: labelconfig.Labels, ToName: "text", Labels: []string{"PER", "ORG"},
		})
	}
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	w.setLabelConfig(string(raw))
	v := w.valid("c.txt", "text/plain", []byte("Alice."), nil)

	err = w.process(v)
	require.ErrorIs(t, err, preannotate.ErrNotEligible)
	require.Empty(t, w.srv.Requests(), "nothing is sent")
	got, err := w.env.PG.Q.FileVersionGetByID(context.Background(), v.ID)
	require.NoError(t, err)
	require.Equal(t, db.LlmRunStatusSkipped, *got.PreannotationStatus)
	require.Contains(t, *got.PreannotationReason, "the project's label config cannot be used: the JSON Schema derived from it is refused")
}
