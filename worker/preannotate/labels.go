package preannotate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/verify"
)

// OutputFormatPrediction is llm_params.output_format of an output that is a
// Label Studio prediction built from the project's label config.
const OutputFormatPrediction = "label_studio_prediction"

// Bounds of the annotation guide: the schema sent with it lists every label in
// its enums, so the guide only has to orient the model, and a config with
// thousands of labels must not make every prompt that much longer.
const (
	guideLabelsPerControl = 50
	guideMaxBytes         = 4 << 10
)

// labelConfigOf is the label config pre-annotation derives its schema from:
// the project's, unless the project has a hand-written annotation_schema, which
// then wins (it was written on purpose, and the model's reply is stored as it
// came, as before label configs). Nil when there is none to use.
func labelConfigOf(pr db.Project) (*labelconfig.Config, error) {
	if isJSONNull(pr.LabelConfig) || !isJSONNull(pr.AnnotationSchema) {
		return nil, nil
	}
	cfg, err := labelconfig.Parse(pr.LabelConfig)
	if err != nil {
		return nil, err
	}
	return &cfg, nil
}

func isJSONNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// guide tells the model what the label config's controls are and how to
// answer for each: one line per control with its labels (bounded, the schema
// has them all), then what coordinates and offsets mean. It is part of the
// prompt hash, so a changed config never reuses an answer to the old one.
func guide(cfg labelconfig.Config) string {
	var sb strings.Builder
	sb.WriteString("Annotate with the project's label config. Your JSON answer has one property per control:\n")
	var boxes, spans bool
	for i, k := range cfg.Controls {
		line := controlLine(cfg, k)
		if sb.Len()+len(line) > guideMaxBytes {
			fmt.Fprintf(&sb, "- … and %d more controls (the JSON Schema lists them all)\n", len(cfg.Controls)-i)
			break
		}
		sb.WriteString(line)
		boxes = boxes || hasCoordinates(k.Type)
		spans = spans || k.Type == labelconfig.Labels
	}
	if boxes {
		sb.WriteString("Coordinates are percent of the image's width and height (0–100) from its top-left corner, " +
			"as the image is shown; give each item your confidence from 0 to 1 as score.\n")
	}
	if spans {
		sb.WriteString("For a span, quote it exactly in text and give start and end in Unicode code points, " +
			"counting from 0 at the first character after the <<<BEGIN FILE>>> line; end is just past the span's " +
			"last character. A span whose text is not in the file is dropped.\n")
	}
	sb.WriteString("Leave a control empty (an empty list, or \"\") when nothing in the input calls for it.")
	return sb.String()
}

func controlLine(cfg labelconfig.Config, k labelconfig.Control) string {
	o, _ := cfg.Object(k.ToName)
	what := map[labelconfig.ControlType]string{
		labelconfig.RectangleLabels: "boxes", labelconfig.PolygonLabels: "polygons",
		labelconfig.KeyPointLabels: "points", labelconfig.Labels: "text spans",
		labelconfig.TextArea: "free text",
	}[k.Type]
	if k.Type == labelconfig.Choices {
		what = "one choice"
		if k.Multiple() {
			what = "any number of choices"
		}
	}
	b := []byte("- ")
	b = labelconfig.AppendString(b, k.Name)
	b = fmt.Appendf(b, ": %s on %s ", what, o.Type)
	b = labelconfig.AppendString(b, o.Name)
	for i, l := range k.Labels {
		if i == guideLabelsPerControl {
			b = fmt.Appendf(b, ", … and %d more", len(k.Labels)-i)
			break
		}
		if i == 0 {
			b = append(b, "; labels: "...)
		} else {
			b = append(b, ", "...)
		}
		b = labelconfig.AppendString(b, l)
	}
	return string(append(b, '\n'))
}

// regionCounts are what became of the model's items.
type regionCounts struct {
	regions, repaired, dropped int
}

// prediction turns the model's answer (following the config's output schema)
// into the Label Studio prediction stored as the output:
//
//	{"model_version": "gpt-4o-mini", "score": 0.8, "result": [regions]}
//
// text is the text the model was shown (spans are checked against it and
// repaired or dropped, see labelconfig.Config.ToRegions); img, when known, is
// the image facts file:validate recorded, whose displayed size becomes
// original_width and original_height of every box, polygon and point (as Label
// Studio records them; its choices and text areas carry none).
// score is the mean of the regions' scores, left out when no region has one.
func prediction(cfg labelconfig.Config, model string, answer []byte, text string, img *verify.Image) ([]byte, regionCounts, error) {
	regions, repaired, dropped, err := cfg.ToRegions(answer, text)
	if err != nil {
		return nil, regionCounts{}, err
	}
	var sum float64
	var scored int
	for i := range regions {
		r := &regions[i]
		if img != nil && hasCoordinates(r.Type) {
			r.OriginalWidth, r.OriginalHeight = img.Displayed()
		}
		if r.Score != nil {
			sum += *r.Score
			scored++
		}
	}
	b := []byte(`{"model_version":`)
	b = labelconfig.AppendString(b, model)
	if scored > 0 {
		b = fmt.Appendf(b, `,"score":%s`, jsonNumber(sum/float64(scored)))
	}
	b = append(b, `,"result":[`...)
	for i := range regions {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = regions[i].AppendJSON(b); err != nil {
			return nil, regionCounts{}, fmt.Errorf("encode region %d: %w", i, err)
		}
	}
	b = append(b, "]}"...)
	return b, regionCounts{regions: len(regions), repaired: repaired, dropped: dropped}, nil
}

// hasCoordinates reports the region types whose values are percent of the image.
func hasCoordinates(t labelconfig.ControlType) bool {
	switch t {
	case labelconfig.RectangleLabels, labelconfig.PolygonLabels, labelconfig.KeyPointLabels:
		return true
	}
	return false
}

func jsonNumber(f float64) string {
	b, _ := json.Marshal(f) // a mean of JSON numbers is finite
	return string(b)
}

// imageFacts are the version's recorded image facts, nil when there are none.
func imageFacts(v db.FileVersion) *verify.Image {
	if v.ImageWidth == nil || v.ImageHeight == nil {
		return nil
	}
	im := &verify.Image{Width: int(*v.ImageWidth), Height: int(*v.ImageHeight), Orientation: 1}
	if v.ImageOrientation != nil {
		im.Orientation = int(*v.ImageOrientation)
	}
	return im
}
