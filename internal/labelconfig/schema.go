package labelconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// SchemaDialect is the JSON Schema draft OutputSchema writes.
const SchemaDialect = "https://json-schema.org/draft/2020-12/schema"

// OutputSchema is the JSON Schema (draft 2020-12) a model's structured answer
// must follow for this config: an object with one property per control,
// named like the control:
//   - rectanglelabels: a list of {label, x, y, width, height, score}, the
//     box's top-left corner and size in percent of the image (0–100) and the
//     model's confidence (0–1);
//   - polygonlabels: a list of {label, points: [{x, y}], score};
//   - keypointlabels: a list of {label, x, y, score};
//   - labels: a list of {label, text, start, end}: the quoted span and its
//     offsets in code points;
//   - choices: one of the choices, or for a multiple-choice control a list
//     of them;
//   - textarea: a string ("" for nothing).
//
// label is an enum of the control's labels. The schema suits OpenAI's strict
// structured outputs and the stricter common subset of other providers:
// every object has additionalProperties false and all its properties
// required, and there are no numeric bounds (the ranges are in the
// descriptions; [Config.ToRegions] enforces them).
func (c Config) OutputSchema() (json.RawMessage, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	props := make(map[string]any, len(c.Controls))
	required := make([]string, 0, len(c.Controls))
	for _, k := range c.Controls {
		o, _ := c.Object(k.ToName)
		props[k.Name] = controlSchema(k, o)
		required = append(required, k.Name)
	}
	root := map[string]any{
		"$schema":              SchemaDialect,
		"type":                 "object",
		"description":          "Annotations of the task, one property per control of the label config.",
		"properties":           props,
		"required":             required,
		"additionalProperties": false,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode output schema: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func object(desc string, props map[string]any) map[string]any {
	req := make([]string, 0, len(props))
	for k := range props {
		req = append(req, k)
	}
	sort.Strings(req)
	return map[string]any{"type": "object", "description": desc, "properties": props, "required": req, "additionalProperties": false}
}

func number(desc string) map[string]any { return map[string]any{"type": "number", "description": desc} }

func controlSchema(k Control, o Object) map[string]any {
	label := map[string]any{"type": "string", "enum": k.Labels, "description": "One of the labels of " + k.Name + "."}
	score := number("Your confidence in this item, from 0 to 1.")
	list := func(desc string, item map[string]any) map[string]any {
		return map[string]any{"type": "array", "description": desc, "items": item}
	}
	where := fmt.Sprintf("%s %q", o.Type, o.Name)
	switch k.Type {
	case RectangleLabels:
		return list("Boxes around the things to label in "+where+"; empty when there are none.",
			object("One box.", map[string]any{
				"label":  label,
				"x":      number("Left edge, in percent of the image width (0–100)."),
				"y":      number("Top edge, in percent of the image height (0–100)."),
				"width":  number("Width, in percent of the image width (above 0; x + width at most 100)."),
				"height": number("Height, in percent of the image height (above 0; y + height at most 100)."),
				"score":  score,
			}))
	case PolygonLabels:
		point := object("One vertex.", map[string]any{
			"x": number("In percent of the image width (0–100)."),
			"y": number("In percent of the image height (0–100)."),
		})
		return list("Polygons around the things to label in "+where+"; empty when there are none.",
			object("One polygon.", map[string]any{
				"label":  label,
				"points": list("The vertices in order, at least 3.", point),
				"score":  score,
			}))
	case KeyPointLabels:
		return list("Points to label in "+where+"; empty when there are none.",
			object("One point.", map[string]any{
				"label": label,
				"x":     number("In percent of the image width (0–100)."),
				"y":     number("In percent of the image height (0–100)."),
				"score": score,
			}))
	case Labels:
		return list("Spans of "+where+" to label; empty when there are none.",
			object("One span.", map[string]any{
				"label": label,
				"text":  map[string]any{"type": "string", "description": "The span, quoted exactly from the text."},
				"start": map[string]any{"type": "integer", "description": "Offset of the span's first character in the text, counting Unicode code points from 0."},
				"end":   map[string]any{"type": "integer", "description": "Offset just past the span's last character, in code points."},
			}))
	case Choices:
		choice := map[string]any{"type": "string", "enum": k.Labels}
		if k.Multiple() {
			return map[string]any{"type": "array", "description": "The choices that apply to " + where + " (any number).", "items": choice}
		}
		choice["description"] = "The one choice that applies to " + where + "."
		return choice
	case TextArea:
		return map[string]any{"type": "string", "description": "Free text about " + where + "; empty for nothing."}
	}
	return map[string]any{}
}

// ToRegions turns a model's answer (following [Config.OutputSchema]) into
// Label Studio regions, one per item, with region ids "llm-1", "llm-2", ...
// in answer order and each item's score as the region's. Image regions carry
// no original_width/original_height: the caller knows the image and sets
// them.
//
// A span whose offsets do not select its quoted text is repaired: the quoted
// text is looked up in text and the occurrence nearest the given start is
// taken (repaired counts these). A span whose text is not found, and any
// item that does not fit the config once built (a label not in the list, a
// box past the edge of the image, an empty polygon), is left out and counted
// in dropped. An answer that is not an object of that shape (a property that
// is no control, a box whose x is a string) is an error; a control missing
// from the answer gives no regions.
func (c Config) ToRegions(answer []byte, text string) (regions []Region, repaired, dropped int, err error) {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(answer, &props); err != nil || props == nil {
		return nil, 0, 0, fmt.Errorf("answer must be a JSON object with one property per control, not %s", jsonWhat(answer))
	}
	for name := range props {
		if _, ok := c.Control(name); !ok {
			return nil, 0, 0, fmt.Errorf("answer has a property %q, which is not a control of the label config", name)
		}
	}
	controls := make(map[string]*Control, len(c.Controls))
	for i := range c.Controls {
		controls[c.Controls[i].Name] = &c.Controls[i]
	}
	tx := newTextIndex(text)
	for _, k := range c.Controls {
		raw, ok := props[k.Name]
		if !ok || isNull(raw) {
			continue
		}
		items, err := answerItems(k, raw, tx)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("answer.%s: %w", k.Name, err)
		}
		for _, it := range items {
			if it.drop {
				dropped++
				continue
			}
			r := Region{
				ID: fmt.Sprintf("llm-%d", len(regions)+1), FromName: k.Name, ToName: k.ToName, Type: k.Type,
				Value: it.value, Score: it.score,
			}
			if fe := c.validateRegion(&r, controls, text, &tx); fe != nil {
				dropped++
				continue
			}
			if it.repaired {
				repaired++
			}
			regions = append(regions, r)
		}
	}
	return regions, repaired, dropped, nil
}

type answerItem struct {
	value    json.RawMessage
	score    *float64
	repaired bool
	drop     bool
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs of strings and numbers get here
		panic(err)
	}
	return b
}

// decodeList decodes a JSON list of T, naming the item at fault.
func decodeList[T any](raw json.RawMessage) ([]T, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("must be a list, not %s", jsonWhat(raw))
	}
	out := make([]T, len(items))
	for i, it := range items {
		dec := json.NewDecoder(bytes.NewReader(it))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out[i]); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, fmt.Errorf("[%d].%s must be a %s, not a JSON %s", i, te.Field, jsonKind(te.Type.Kind().String()), te.Value)
			}
			return nil, fmt.Errorf("[%d]: %s", i, strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	return out, nil
}

type answerBox struct {
	Label  string   `json:"label"`
	X      float64  `json:"x"`
	Y      float64  `json:"y"`
	Width  float64  `json:"width"`
	Height float64  `json:"height"`
	Score  *float64 `json:"score"`
}

type answerPolygon struct {
	Label  string `json:"label"`
	Points []struct {
		X float64 `json:"x"`
		Y float64 `json:"y"`
	} `json:"points"`
	Score *float64 `json:"score"`
}

type answerPoint struct {
	Label string   `json:"label"`
	X     float64  `json:"x"`
	Y     float64  `json:"y"`
	Score *float64 `json:"score"`
}

type answerSpan struct {
	Label string `json:"label"`
	Text  string `json:"text"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

func answerItems(k Control, raw json.RawMessage, tx *textIndex) ([]answerItem, error) {
	var out []answerItem
	switch k.Type {
	case RectangleLabels:
		boxes, err := decodeList[answerBox](raw)
		if err != nil {
			return nil, err
		}
		for _, b := range boxes {
			out = append(out, answerItem{score: b.Score, value: mustJSON(struct {
				X        float64  `json:"x"`
				Y        float64  `json:"y"`
				Width    float64  `json:"width"`
				Height   float64  `json:"height"`
				Rotation float64  `json:"rotation"`
				Labels   []string `json:"rectanglelabels"`
			}{b.X, b.Y, b.Width, b.Height, 0, []string{b.Label}})})
		}
	case PolygonLabels:
		polys, err := decodeList[answerPolygon](raw)
		if err != nil {
			return nil, err
		}
		for _, p := range polys {
			pts := make([][2]float64, len(p.Points))
			for i, q := range p.Points {
				pts[i] = [2]float64{q.X, q.Y}
			}
			out = append(out, answerItem{score: p.Score, value: mustJSON(struct {
				Points [][2]float64 `json:"points"`
				Closed bool         `json:"closed"`
				Labels []string     `json:"polygonlabels"`
			}{pts, true, []string{p.Label}})})
		}
	case KeyPointLabels:
		pts, err := decodeList[answerPoint](raw)
		if err != nil {
			return nil, err
		}
		for _, p := range pts {
			out = append(out, answerItem{score: p.Score, value: mustJSON(struct {
				X      float64  `json:"x"`
				Y      float64  `json:"y"`
				Labels []string `json:"keypointlabels"`
			}{p.X, p.Y, []string{p.Label}})})
		}
	case Labels:
		spans, err := decodeList[answerSpan](raw)
		if err != nil {
			return nil, err
		}
		for _, s := range spans {
			start, end, repaired, ok := tx.locate(s.Text, s.Start, s.End)
			if !ok {
				out = append(out, answerItem{drop: true})
				continue
			}
			out = append(out, answerItem{repaired: repaired, value: mustJSON(struct {
				Start  int      `json:"start"`
				End    int      `json:"end"`
				Text   string   `json:"text"`
				Labels []string `json:"labels"`
			}{start, end, s.Text, []string{s.Label}})})
		}
	case Choices:
		var choices []string
		if k.Multiple() {
			if err := json.Unmarshal(raw, &choices); err != nil {
				return nil, fmt.Errorf("must be a list of choices, not %s", jsonWhat(raw))
			}
		} else {
			var one string
			if err := json.Unmarshal(raw, &one); err != nil {
				return nil, fmt.Errorf("must be one choice (a string), not %s", jsonWhat(raw))
			}
			if one != "" {
				choices = []string{one}
			}
		}
		if len(choices) > 0 {
			out = append(out, answerItem{value: mustJSON(struct {
				Choices []string `json:"choices"`
			}{choices})})
		}
	case TextArea:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("must be a string, not %s", jsonWhat(raw))
		}
		if s != "" {
			out = append(out, answerItem{value: mustJSON(struct {
				Text []string `json:"text"`
			}{[]string{s}})})
		}
	}
	return out, nil
}

// locate finds the span quote: the given offsets when they select it,
// otherwise the occurrence of quote nearest start (the earlier one on a
// tie).
func (t *textIndex) locate(quote string, start, end int) (s, e int, repaired, ok bool) {
	if quote == "" {
		return 0, 0, false, false
	}
	if start >= 0 && start < end && end <= t.n && t.Slice(start, end) == quote {
		return start, end, false, true
	}
	qn := utf8.RuneCountInString(quote)
	best, bestDist := -1, 0
	for from := 0; from <= len(t.text); {
		i := strings.Index(t.text[from:], quote)
		if i < 0 {
			break
		}
		b := from + i
		cp := t.codePointAt(b)
		d := cp - start
		if d < 0 {
			d = -d
		}
		if best < 0 || d < bestDist {
			best, bestDist = cp, d
		}
		if cp > start { // later occurrences are farther still
			break
		}
		from = b + 1
	}
	if best < 0 {
		return 0, 0, false, false
	}
	return best, best + qn, true, true
}

// codePointAt is the code-point offset of byte offset b (a code point start).
func (t *textIndex) codePointAt(b int) int {
	if t.byteAt == nil {
		return b
	}
	return sort.SearchInts(t.byteAt, b)
}
