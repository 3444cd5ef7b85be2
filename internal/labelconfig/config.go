package labelconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ObjectType is what an object shows: an image or a text.
type ObjectType string

// Object types.
const (
	ObjectImage ObjectType = "image"
	ObjectText  ObjectType = "text"
)

// ControlType is how a control annotates its object. The values are Label
// Studio's result types (a region's "type"), which are also the keys of the
// labels in a region's value ("rectanglelabels": ["Car"]).
type ControlType string

// Control types.
const (
	RectangleLabels ControlType = "rectanglelabels" // boxes on an image
	PolygonLabels   ControlType = "polygonlabels"   // polygons on an image
	KeyPointLabels  ControlType = "keypointlabels"  // points on an image
	Labels          ControlType = "labels"          // spans of a text
	Choices         ControlType = "choices"         // a classification of the object
	TextArea        ControlType = "textarea"        // free text about the object
)

// Choice modes of a choices control.
const (
	ChoiceSingle   = "single"
	ChoiceMultiple = "multiple"
)

var (
	objectTypes  = []ObjectType{ObjectImage, ObjectText}
	controlTypes = []ControlType{RectangleLabels, PolygonLabels, KeyPointLabels, Labels, Choices, TextArea}
)

// Config is a project's label config: the objects of a task and the controls
// that annotate them, in the order the project defines them. It is what the
// API stores as JSON; build one with [Parse] or [FromXML], or check one built
// in code with [Config.Check].
type Config struct {
	Objects  []Object  `json:"objects"`
	Controls []Control `json:"controls"`
}

// Object is a thing to annotate, read from a task data field.
type Object struct {
	// Name is what controls refer to (to_name). Names are unique among
	// objects and controls together, as in Label Studio.
	Name string     `json:"name"`
	Type ObjectType `json:"type"`
	// Value names the task data field: "$image" reads data.image.
	Value string `json:"value"`
}

// DataKey is the task data field the object reads: Value without its "$".
func (o Object) DataKey() string { return strings.TrimPrefix(o.Value, "$") }

// Control annotates one object.
type Control struct {
	Name string      `json:"name"`
	Type ControlType `json:"type"`
	// ToName is the name of the object the control annotates.
	ToName string `json:"to_name"`
	// Choice is "single" or "multiple" for a choices control (empty means
	// single) and empty for every other type.
	Choice string `json:"choice,omitempty"`
	// Labels are the label values a region may carry; for choices, the
	// choice values. Empty for textarea, required otherwise.
	Labels []string `json:"labels,omitempty"`
}

// Multiple reports whether a choices control takes several choices.
func (c Control) Multiple() bool { return c.Choice == ChoiceMultiple }

// HasLabel reports whether v is one of the control's labels.
func (c Control) HasLabel(v string) bool { return slices.Contains(c.Labels, v) }

// Object returns the object named name.
func (c Config) Object(name string) (Object, bool) {
	for _, o := range c.Objects {
		if o.Name == name {
			return o, true
		}
	}
	return Object{}, false
}

// Control returns the control named name.
func (c Config) Control(name string) (Control, bool) {
	for _, k := range c.Controls {
		if k.Name == name {
			return k, true
		}
	}
	return Control{}, false
}

// ConfigError is a label config refused for a reason a person can act on.
// Field is where: "controls[1].to_name", "objects[0].value", or "" for the
// config as a whole.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "label config: " + e.Reason
	}
	return "label config: " + e.Field + ": " + e.Reason
}

func configErr(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// MaxConfigBytes bounds the JSON Parse reads.
const MaxConfigBytes = 1 << 20

// Parse reads a label config from JSON and checks it (see [Config.Check]).
// Unknown fields are refused, so a typo does not silently drop a setting.
// A choices control without a choice mode gets "single". Every error is a
// *ConfigError.
func Parse(b []byte) (Config, error) {
	if len(b) > MaxConfigBytes {
		return Config{}, configErr("", "is %d bytes; at most %d are allowed", len(b), MaxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, jsonConfigErr(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, configErr("", "has data after the JSON object")
	}
	c.normalize()
	if err := c.Check(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func jsonConfigErr(err error) *ConfigError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return configErr("", "must be a JSON object with objects and controls, not a JSON %s", te.Value)
		}
		return configErr(te.Field, "must be a %s, not a JSON %s", jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return configErr("", "is not valid JSON (at byte %d): %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return configErr("", "is empty or cut short; send a JSON object with objects and controls")
	}
	// DisallowUnknownFields: `json: unknown field "x"`.
	return configErr("", "%s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(k string) string {
	switch k {
	case "slice":
		return "list"
	case "struct", "map":
		return "object"
	case "float32", "float64", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "number"
	case "bool":
		return "boolean"
	}
	return k
}

// normalize fills defaults: a choices control is single-choice unless it says
// otherwise.
func (c *Config) normalize() {
	for i := range c.Controls {
		if c.Controls[i].Type == Choices && c.Controls[i].Choice == "" {
			c.Controls[i].Choice = ChoiceSingle
		}
	}
}

// fits reports which object types a control type can annotate.
func (t ControlType) fits(o ObjectType) bool {
	switch t {
	case RectangleLabels, PolygonLabels, KeyPointLabels:
		return o == ObjectImage
	case Labels:
		return o == ObjectText
	case Choices, TextArea:
		return true
	}
	return false
}

// takesLabels reports whether the control type carries label values.
func (t ControlType) takesLabels() bool { return t != TextArea }

// Check reports the first thing wrong with the config as a *ConfigError:
// at least one object and one control; names present and unique among
// objects and controls; known types; object values naming a data field
// ("$image"); every to_name naming an object the control type can annotate
// (boxes, polygons and points on images, spans on texts); labels present,
// non-empty, without control characters and unique for every control but
// textarea, absent for textarea;
// choice only on choices, and single or multiple.
func (c Config) Check() error {
	if len(c.Objects) == 0 {
		return configErr("objects", "is empty; add the image or text to annotate, e.g. {\"name\": \"image\", \"type\": \"image\", \"value\": \"$image\"}")
	}
	if len(c.Controls) == 0 {
		return configErr("controls", "is empty; add at least one control, e.g. {\"name\": \"label\", \"type\": \"rectanglelabels\", \"to_name\": \"image\", \"labels\": [\"Car\"]}")
	}
	seen := make(map[string]string, len(c.Objects)+len(c.Controls))
	checkName := func(field, name string) error {
		switch {
		case name == "":
			return configErr(field, "is empty; every object and control needs a name")
		case !utf8.ValidString(name):
			return configErr(field, "is not valid UTF-8")
		case seen[name] != "":
			return configErr(field, "%q is already the name of %s; names must be unique among objects and controls", name, seen[name])
		}
		seen[name] = field
		return nil
	}
	for i, o := range c.Objects {
		f := fmt.Sprintf("objects[%d]", i)
		if err := checkName(f+".name", o.Name); err != nil {
			return err
		}
		if !slices.Contains(objectTypes, o.Type) {
			return configErr(f+".type", "%q is not an object type; use one of %s", o.Type, quoteList(objectTypes))
		}
		if !strings.HasPrefix(o.Value, "$") || len(o.Value) < 2 {
			return configErr(f+".value", "%q must name a task data field, like \"$%s\"", o.Value, o.Type)
		}
	}
	for i, k := range c.Controls {
		f := fmt.Sprintf("controls[%d]", i)
		if err := checkName(f+".name", k.Name); err != nil {
			return err
		}
		if !slices.Contains(controlTypes, k.Type) {
			return configErr(f+".type", "%q is not a control type; use one of %s", k.Type, quoteList(controlTypes))
		}
		o, ok := c.Object(k.ToName)
		switch {
		case k.ToName == "":
			return configErr(f+".to_name", "is empty; name the object control %q annotates (%s)", k.Name, objectNames(c.Objects))
		case !ok:
			return configErr(f+".to_name", "%q is not an object of this config (objects: %s)", k.ToName, objectNames(c.Objects))
		case !k.Type.fits(o.Type):
			return configErr(f+".to_name", "%q is %s %s object; a %s control annotates %s objects", k.ToName, article(string(o.Type)), o.Type, k.Type, fitting(k.Type))
		}
		switch {
		case k.Type == Choices && k.Choice != ChoiceSingle && k.Choice != ChoiceMultiple && k.Choice != "":
			return configErr(f+".choice", "%q is not a choice mode; use \"single\" or \"multiple\"", k.Choice)
		case k.Type != Choices && k.Choice != "":
			return configErr(f+".choice", "is only for choices controls; remove it from %s control %q", k.Type, k.Name)
		}
		if !k.Type.takesLabels() {
			if len(k.Labels) > 0 {
				return configErr(f+".labels", "a textarea control takes no labels; remove them from %q", k.Name)
			}
			continue
		}
		what := "labels"
		if k.Type == Choices {
			what = "choices"
		}
		if len(k.Labels) == 0 {
			return configErr(f+".labels", "is empty; list the %s of %s control %q", what, k.Type, k.Name)
		}
		dup := make(map[string]bool, len(k.Labels))
		for j, l := range k.Labels {
			switch {
			case strings.TrimSpace(l) == "":
				return configErr(fmt.Sprintf("%s.labels[%d]", f, j), "is empty")
			case !utf8.ValidString(l):
				return configErr(fmt.Sprintf("%s.labels[%d]", f, j), "is not valid UTF-8")
			case strings.IndexFunc(l, unicode.IsControl) >= 0:
				return configErr(fmt.Sprintf("%s.labels[%d]", f, j), "%q has a control character (a line break, tab, ...); export files put one label a line", l)
			case dup[l]:
				return configErr(fmt.Sprintf("%s.labels[%d]", f, j), "%q is listed twice in control %q", l, k.Name)
			}
			dup[l] = true
		}
	}
	return nil
}

func article(w string) string {
	if w != "" && strings.ContainsRune("aeiou", rune(w[0])) {
		return "an"
	}
	return "a"
}

func fitting(t ControlType) string {
	switch t {
	case Labels:
		return "text"
	case Choices, TextArea:
		return "image or text"
	}
	return "image"
}

func objectNames(objs []Object) string {
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = fmt.Sprintf("%q (%s)", o.Name, o.Type)
	}
	return strings.Join(names, ", ")
}

func quoteList[T ~string](vs []T) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", string(v))
	}
	return strings.Join(q, ", ")
}
