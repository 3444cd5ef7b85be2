package labelconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Value is a region's value decoded for the region's type. Only the fields
// of that type are set.
type Value struct {
	// Rectangles: the top-left corner, size and clockwise rotation in
	// degrees about that corner; percent of the image. Key points: X, Y and
	// the point's size in Width.
	X, Y, Width, Height, Rotation float64
	// Points are a polygon's vertices, [x, y] in percent.
	Points [][2]float64
	// Start and End delimit a text span in code points, End exclusive.
	Start, End int
	// Text is the span's quoted text ("" when the region does not quote it).
	Text string
	// Lines is a textarea's value.text.
	Lines []string
	// Labels are the region's labels (value.rectanglelabels, ...labels).
	Labels []string
	// Choices are a choices region's value.choices.
	Choices []string
}

// rawValue is every value field of the supported types. Numbers start as
// NaN, which JSON cannot hold, so a NaN after decoding means "absent"; lists
// are nil when absent.
type rawValue struct {
	X               float64         `json:"x"`
	Y               float64         `json:"y"`
	Width           float64         `json:"width"`
	Height          float64         `json:"height"`
	Rotation        float64         `json:"rotation"`
	Points          [][]float64     `json:"points"`
	Start           json.RawMessage `json:"start"`
	End             json.RawMessage `json:"end"`
	Text            json.RawMessage `json:"text"`
	Choices         []string        `json:"choices"`
	RectangleLabels []string        `json:"rectanglelabels"`
	PolygonLabels   []string        `json:"polygonlabels"`
	KeyPointLabels  []string        `json:"keypointlabels"`
	Labels          []string        `json:"labels"`
}

// DecodeValue decodes the region's value for its type, checking that the
// fields the type needs are there and of the right JSON type (not that they
// fit a config: see [Config.Validate]). The error names the field:
// "value.x is missing".
func (r Region) DecodeValue() (Value, error) {
	v, err := r.decodeValue()
	if err != nil {
		return Value{}, err
	}
	return v, nil
}

func ferr(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

func typeErr(te *json.UnmarshalTypeError) *fieldError {
	field := te.Field
	if i := strings.IndexByte(field, '.'); i >= 0 { // "rectanglelabels.0": the list's element
		field = field[:i]
	}
	switch field {
	case "choices", "rectanglelabels", "polygonlabels", "keypointlabels", "labels":
		return ferr("value."+field, "value.%s must be a list of strings, not a JSON %s", field, te.Value)
	case "points":
		return ferr("value.points", "value.points must be a list of [x, y] pairs, not a JSON %s", te.Value)
	}
	return ferr("value."+field, "value.%s must be a %s, not a JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
}

func (r Region) decodeValue() (Value, *fieldError) {
	if len(r.Value) == 0 {
		return Value{}, ferr("value", "value is missing")
	}
	nan := math.NaN()
	raw := rawValue{X: nan, Y: nan, Width: nan, Height: nan, Rotation: nan}
	if err := json.Unmarshal(r.Value, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Value{}, typeErr(te)
		}
		return Value{}, ferr("value", "value is not a valid JSON object: %v", err)
	}
	var v Value
	num := func(name string, f float64, required bool) (float64, *fieldError) {
		if math.IsNaN(f) {
			if required {
				return 0, ferr("value."+name, "value.%s is missing", name)
			}
			return 0, nil
		}
		return f, nil
	}
	labels := func(field string, l []string) ([]string, *fieldError) {
		if l == nil {
			return nil, ferr(field, "%s is missing", field)
		}
		return l, nil
	}
	var fe *fieldError
	switch r.Type {
	case RectangleLabels:
		for _, f := range []struct {
			name string
			v    float64
			dst  *float64
		}{{"x", raw.X, &v.X}, {"y", raw.Y, &v.Y}, {"width", raw.Width, &v.Width}, {"height", raw.Height, &v.Height}} {
			if *f.dst, fe = num(f.name, f.v, true); fe != nil {
				return Value{}, fe
			}
		}
		v.Rotation, _ = num("rotation", raw.Rotation, false)
		v.Labels, fe = labels("value.rectanglelabels", raw.RectangleLabels)
	case PolygonLabels:
		if v.Points, fe = points(raw.Points); fe != nil {
			return Value{}, fe
		}
		v.Labels, fe = labels("value.polygonlabels", raw.PolygonLabels)
	case KeyPointLabels:
		if v.X, fe = num("x", raw.X, true); fe != nil {
			return Value{}, fe
		}
		if v.Y, fe = num("y", raw.Y, true); fe != nil {
			return Value{}, fe
		}
		v.Width, _ = num("width", raw.Width, false)
		v.Labels, fe = labels("value.keypointlabels", raw.KeyPointLabels)
	case Labels:
		if v.Start, fe = offset("start", raw.Start); fe != nil {
			return Value{}, fe
		}
		if v.End, fe = offset("end", raw.End); fe != nil {
			return Value{}, fe
		}
		if len(raw.Text) > 0 && !isNull(raw.Text) {
			if err := json.Unmarshal(raw.Text, &v.Text); err != nil {
				return Value{}, ferr("value.text", "value.text must be the span's text (a string), not %s", jsonWhat(raw.Text))
			}
		}
		v.Labels, fe = labels("value.labels", raw.Labels)
	case Choices:
		v.Choices, fe = labels("value.choices", raw.Choices)
	case TextArea:
		v.Lines, fe = stringList("value.text", raw.Text, true)
	case "":
		return Value{}, ferr("type", "type is missing")
	default:
		return Value{}, ferr("type", "type %q is not supported; supported: %s", r.Type, quoteList(controlTypes))
	}
	if fe != nil {
		return Value{}, fe
	}
	return v, nil
}

func stringList(field string, raw json.RawMessage, required bool) ([]string, *fieldError) {
	if len(raw) == 0 || isNull(raw) {
		if required {
			return nil, ferr(field, "%s is missing", field)
		}
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, ferr(field, "%s must be a list of strings, not %s", field, jsonWhat(raw))
	}
	return out, nil
}

func points(pts [][]float64) ([][2]float64, *fieldError) {
	if pts == nil {
		return nil, ferr("value.points", "value.points is missing")
	}
	out := make([][2]float64, len(pts))
	for i, p := range pts {
		if len(p) != 2 {
			return nil, ferr(fmt.Sprintf("value.points[%d]", i), "value.points[%d] has %d numbers; a point is [x, y]", i, len(p))
		}
		out[i] = [2]float64{p[0], p[1]}
	}
	return out, nil
}

func offset(name string, raw json.RawMessage) (int, *fieldError) {
	field := "value." + name
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || isNull(t) {
		return 0, ferr(field, "%s is missing", field)
	}
	if t[0] == '"' {
		return 0, ferr(field, "%s = %s is an XPath offset (HyperText); only Text offsets (numbers) are supported", field, t)
	}
	f, err := strconv.ParseFloat(string(t), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, ferr(field, "%s must be a whole number (an offset in code points), not %s", field, jsonWhat(t))
	}
	return int(f), nil
}

// Epsilon is how far past 0 or 100 a percent coordinate may go and still be
// taken as on the edge: floats summed by an editor (x + width) land a hair
// past 100. 1e-4 percent is 0.01 px of a 10,000 px image.
const Epsilon = 1e-4

// Validate checks regions against the config, in order, and returns the
// first problem as a *ValidationError naming the region and field:
//   - from_name names a control, to_name that control's object, and type
//     is the control's type;
//   - the labels (or choices) are the control's, and are present; a
//     single-choice region has exactly one choice;
//   - rectangles: x and y within 0–100, width and height above 0, and, when
//     not rotated, x + width and y + height at most 100 (each within
//     [Epsilon]); polygons: at least three points, each within 0–100; key
//     points: x and y within 0–100;
//   - spans: 0 ≤ start < end ≤ the length of text in code points, and the
//     quoted value.text, when given, equal to that slice of text;
//   - textarea: value.text is a list of strings;
//   - original_width/original_height are not negative (whole pixels).
//
// text is the task's text for configs with a text object ("" when there is
// none): a span cannot fit in an empty text.
func (c Config) Validate(regions []Region, text string) error {
	controls := make(map[string]*Control, len(c.Controls))
	for i := range c.Controls {
		controls[c.Controls[i].Name] = &c.Controls[i]
	}
	var tx *textIndex
	for i := range regions {
		r := &regions[i]
		if err := c.validateRegion(r, controls, text, &tx); err != nil {
			return &ValidationError{Index: i, FromName: r.FromName, Field: err.field, Reason: err.reason}
		}
	}
	return nil
}

func (c Config) validateRegion(r *Region, controls map[string]*Control, text string, tx **textIndex) *fieldError {
	if r.FromName == "" {
		if r.Type == "relation" {
			return ferr("type", "relations are not supported by this label config")
		}
		return ferr("from_name", "from_name is missing; it names the control the region belongs to")
	}
	k := controls[r.FromName]
	if k == nil {
		names := make([]string, len(c.Controls))
		for i, x := range c.Controls {
			names[i] = x.Name
		}
		return ferr("from_name", "from_name %q is not a control of this label config (controls: %s)", r.FromName, quoteList(names))
	}
	if r.ToName != k.ToName {
		return ferr("to_name", "to_name %q does not match: control %q annotates %q", r.ToName, k.Name, k.ToName)
	}
	if r.Type != k.Type {
		return ferr("type", "type %q does not match: control %q is a %s control", r.Type, k.Name, k.Type)
	}
	v, fe := r.decodeValue()
	if fe != nil {
		return fe
	}
	switch k.Type {
	case RectangleLabels, PolygonLabels, KeyPointLabels, Labels:
		if fe := knownLabels(k, "value."+string(k.Type), v.Labels); fe != nil {
			return fe
		}
	case Choices:
		if fe := knownLabels(k, "value.choices", v.Choices); fe != nil {
			return fe
		}
		if !k.Multiple() && len(v.Choices) != 1 {
			return ferr("value.choices", "value.choices has %d choices; control %q takes a single choice", len(v.Choices), k.Name)
		}
	}
	switch k.Type {
	case RectangleLabels:
		for _, f := range []struct {
			name string
			v    float64
		}{{"x", v.X}, {"y", v.Y}} {
			if fe := percent("value."+f.name, f.v); fe != nil {
				return fe
			}
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"width", v.Width}, {"height", v.Height}} {
			if f.v <= 0 || f.v > 100+Epsilon {
				return ferr("value."+f.name, "value.%s = %s is outside 0–100 (it must be above 0)", f.name, num(f.v))
			}
		}
		if v.Rotation == 0 {
			if v.X+v.Width > 100+Epsilon {
				return ferr("value.width", "value.x + value.width = %s + %s = %s is past the right edge (100)", num(v.X), num(v.Width), num(v.X+v.Width))
			}
			if v.Y+v.Height > 100+Epsilon {
				return ferr("value.height", "value.y + value.height = %s + %s = %s is past the bottom edge (100)", num(v.Y), num(v.Height), num(v.Y+v.Height))
			}
		}
	case PolygonLabels:
		if len(v.Points) < 3 {
			return ferr("value.points", "value.points has %d points; a polygon needs at least 3", len(v.Points))
		}
		for j, p := range v.Points {
			for a, name := range []string{"x", "y"} {
				if fe := percent(fmt.Sprintf("value.points[%d] %s", j, name), p[a]); fe != nil {
					fe.field = fmt.Sprintf("value.points[%d]", j)
					return fe
				}
			}
		}
	case KeyPointLabels:
		if fe := percent("value.x", v.X); fe != nil {
			return fe
		}
		if fe := percent("value.y", v.Y); fe != nil {
			return fe
		}
	case Labels:
		if *tx == nil {
			*tx = newTextIndex(text)
		}
		if fe := (*tx).checkSpan(v); fe != nil {
			return fe
		}
	}
	return nil
}

func knownLabels(k *Control, field string, labels []string) *fieldError {
	if len(labels) == 0 {
		return ferr(field, "%s is empty; a region carries at least one of control %q's %s", field, k.Name, noun(k))
	}
	for j, l := range labels {
		if !k.HasLabel(l) {
			return ferr(field, "%s[%d] = %q is not one of control %q's %s (%s)", field, j, l, k.Name, noun(k), quoteList(k.Labels))
		}
	}
	return nil
}

func noun(k *Control) string {
	if k.Type == Choices {
		return "choices"
	}
	return "labels"
}

func percent(field string, v float64) *fieldError {
	if v < -Epsilon || v > 100+Epsilon {
		return ferr(field, "%s = %s is outside 0–100", field, num(v))
	}
	return nil
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// textIndex maps code-point offsets to byte offsets of a text.
type textIndex struct {
	text string
	// byteAt[i] is the byte offset of code point i; byteAt[n] = len(text).
	// Nil when the text is ASCII (offsets are bytes).
	byteAt []int
	n      int
}

func newTextIndex(text string) *textIndex {
	ti := &textIndex{text: text}
	ascii := true
	for i := 0; i < len(text); i++ {
		if text[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		ti.n = len(text)
		return ti
	}
	ti.byteAt = make([]int, 0, len(text)+1)
	for i := range text { // ranges over code points (invalid bytes count one each)
		ti.byteAt = append(ti.byteAt, i)
	}
	ti.n = len(ti.byteAt)
	ti.byteAt = append(ti.byteAt, len(text))
	return ti
}

// Len is the text's length in code points.
func (t *textIndex) Len() int { return t.n }

// Slice is text[start:end] in code points.
func (t *textIndex) Slice(start, end int) string {
	if t.byteAt == nil {
		return t.text[start:end]
	}
	return t.text[t.byteAt[start]:t.byteAt[end]]
}

func (t *textIndex) checkSpan(v Value) *fieldError {
	switch {
	case v.Start < 0:
		return ferr("value.start", "value.start = %d is before the start of the text", v.Start)
	case v.End <= v.Start:
		return ferr("value.end", "value.end = %d must be after value.start = %d", v.End, v.Start)
	case v.End > t.n:
		return ferr("value.end", "value.end = %d is past the end of the text (%d code points)", v.End, t.n)
	}
	if v.Text != "" {
		if got := t.Slice(v.Start, v.End); got != v.Text {
			return ferr("value.text", "value.text %q is not the text at %d–%d, which is %q", clip(v.Text), v.Start, v.End, clip(got))
		}
	}
	return nil
}

func clip(s string) string {
	const max = 60
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String() + "…"
}
