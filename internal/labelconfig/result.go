package labelconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Region is one item of a Label Studio result: what one control said about
// one object.
//
//	{"id": "a1", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
//	 "original_width": 800, "original_height": 600,
//	 "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Car"]}}
//
// Coordinates are percent of the image (0–100); text offsets count code
// points (see the package doc). Value is kept as the bytes it came as, and
// fields this type does not name (origin, image_rotation, parentID, ...) are
// kept in Extra, so a region read and written again is the same JSON.
type Region struct {
	ID       string
	FromName string
	ToName   string
	Type     ControlType
	Value    json.RawMessage
	// OriginalWidth and OriginalHeight are the image's size in pixels as the
	// annotator saw it; 0 when the region does not say.
	OriginalWidth, OriginalHeight int
	// Score is the model's confidence in a predicted region.
	Score *float64
	Extra map[string]json.RawMessage
}

// The region fields Region names; anything else goes to Extra.
var regionKeys = []string{"id", "from_name", "to_name", "type", "value", "original_width", "original_height", "score"}

// UnmarshalJSON reads one region. A field of the wrong JSON type is an error
// naming it.
func (r *Region) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return &fieldError{reason: "must be a JSON object (a region), not " + jsonWhat(b)}
	}
	*r = Region{}
	str := func(key string, dst *string) error {
		raw, ok := m[key]
		if !ok || isNull(raw) {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return &fieldError{field: key, reason: key + " must be a string, not " + jsonWhat(raw)}
		}
		return nil
	}
	size := func(key string, dst *int) error {
		raw, ok := m[key]
		if !ok || isNull(raw) {
			return nil
		}
		f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
		if err != nil || f != math.Trunc(f) || f < 0 || f > math.MaxInt32 {
			return &fieldError{field: key, reason: key + " must be a whole number of pixels, not " + string(raw)}
		}
		*dst = int(f)
		return nil
	}
	var typ string
	for _, err := range []error{
		str("id", &r.ID), str("from_name", &r.FromName), str("to_name", &r.ToName), str("type", &typ),
		size("original_width", &r.OriginalWidth), size("original_height", &r.OriginalHeight),
	} {
		if err != nil {
			return err
		}
	}
	r.Type = ControlType(typ)
	if raw, ok := m["value"]; ok && !isNull(raw) {
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			return &fieldError{field: "value", reason: "value must be a JSON object, not " + jsonWhat(raw)}
		}
		r.Value = slices.Clone(raw)
	}
	if raw, ok := m["score"]; ok && !isNull(raw) {
		var s float64
		if err := json.Unmarshal(raw, &s); err != nil {
			return &fieldError{field: "score", reason: "score must be a number, not " + jsonWhat(raw)}
		}
		r.Score = &s
	}
	for _, k := range regionKeys {
		delete(m, k)
	}
	if len(m) > 0 {
		r.Extra = m
	}
	return nil
}

// MarshalJSON writes the region with its Extra fields.
func (r Region) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 256+len(r.Value)))
}

// AppendJSON appends the region's JSON to b (MarshalJSON without the copy).
func (r Region) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	if r.ID != "" {
		b = append(b, `"id":`...)
		b = AppendString(b, r.ID)
		b = append(b, ',')
	}
	b = append(b, `"type":`...)
	b = AppendString(b, string(r.Type))
	b = append(b, `,"from_name":`...)
	b = AppendString(b, r.FromName)
	b = append(b, `,"to_name":`...)
	b = AppendString(b, r.ToName)
	if r.OriginalWidth != 0 || r.OriginalHeight != 0 {
		b = append(b, `,"original_width":`...)
		b = strconv.AppendInt(b, int64(r.OriginalWidth), 10)
		b = append(b, `,"original_height":`...)
		b = strconv.AppendInt(b, int64(r.OriginalHeight), 10)
	}
	b = append(b, `,"value":`...)
	if len(r.Value) == 0 {
		b = append(b, "{}"...)
	} else {
		if !json.Valid(r.Value) {
			return nil, fmt.Errorf("region %q: value is not valid JSON", r.ID)
		}
		b = append(b, r.Value...)
	}
	if r.Score != nil {
		if math.IsNaN(*r.Score) || math.IsInf(*r.Score, 0) {
			return nil, fmt.Errorf("region %q: score %v is not a JSON number", r.ID, *r.Score)
		}
		b = append(b, `,"score":`...)
		b = strconv.AppendFloat(b, *r.Score, 'g', -1, 64)
	}
	if len(r.Extra) > 0 {
		keys := make([]string, 0, len(r.Extra))
		for k := range r.Extra {
			if !slices.Contains(regionKeys, k) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := r.Extra[k]
			if !json.Valid(v) {
				return nil, fmt.Errorf("region %q: %s is not valid JSON", r.ID, k)
			}
			b = append(b, ',')
			b = AppendString(b, k)
			b = append(b, ':')
			b = append(b, v...)
		}
	}
	return append(b, '}'), nil
}

// AppendString appends s as a JSON string, without escaping <, > and & (the
// output is a data file, not HTML).
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			i++
			continue
		}
		if c < 0x80 {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 { // invalid UTF-8: replace, as encoding/json does
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // valid JSON, but not JavaScript before ES2019
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// ParseResult reads a Label Studio result: a JSON list of regions, or an
// annotation or prediction object holding one in "result". It checks the
// JSON shape of each region (see [Config.Validate] for the checks against a
// config); an error is a *ValidationError naming the region.
func ParseResult(b []byte) ([]Region, error) {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' {
		var wrapper struct {
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(t, &wrapper); err != nil {
			return nil, fmt.Errorf("result is not valid JSON: %w", err)
		}
		if len(wrapper.Result) == 0 {
			return nil, errors.New(`result must be a JSON list of regions, or an annotation with a "result" list`)
		}
		t = bytes.TrimSpace(wrapper.Result)
	}
	if len(t) == 0 || t[0] != '[' {
		return nil, errors.New("result must be a JSON list of regions, not " + jsonWhat(t))
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(t, &raws); err != nil {
		return nil, fmt.Errorf("result is not valid JSON: %w", err)
	}
	regions := make([]Region, len(raws))
	for i, raw := range raws {
		if err := regions[i].UnmarshalJSON(raw); err != nil {
			return nil, asValidation(i, &regions[i], err)
		}
	}
	return regions, nil
}

// ValidationError is a region that does not fit the label config or the
// result format. Index is the region's place in the result, from 0 (as in
// result[3]).
type ValidationError struct {
	Index    int
	FromName string // the region's from_name, "" when it has none
	// Field is the region field at fault: "from_name", "type", "value.x",
	// "value.rectanglelabels", "value.start", ...
	Field string
	// Reason says what is wrong with Field, naming it: "value.x = 140 is
	// outside 0–100".
	Reason string
}

func (e *ValidationError) Error() string {
	if e.FromName == "" {
		return fmt.Sprintf("region %d: %s", e.Index, e.Reason)
	}
	return fmt.Sprintf("region %d (from_name %q): %s", e.Index, e.FromName, e.Reason)
}

// fieldError is a problem with one field of a region, before the region's
// index is known.
type fieldError struct {
	field, reason string
}

func (e *fieldError) Error() string { return e.reason }

func asValidation(i int, r *Region, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &ValidationError{Index: i, FromName: r.FromName, Field: fe.field, Reason: fe.reason}
	}
	return &ValidationError{Index: i, FromName: r.FromName, Reason: err.Error()}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// jsonWhat names the kind of a JSON value for an error message.
func jsonWhat(raw []byte) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		if len(t) > 40 {
			return "a string"
		}
		return "the string " + string(t)
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if len(t) > 40 {
		return "a number"
	}
	return string(t)
}
