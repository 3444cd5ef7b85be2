package labelconfig

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Label Studio tags FromXML understands, by lower-case name (Label Studio's
// editor matches tag names without regard to case).
var (
	xmlObjects = map[string]ObjectType{"image": ObjectImage, "text": ObjectText}
	xmlControl = map[string]ControlType{
		"rectanglelabels": RectangleLabels,
		"polygonlabels":   PolygonLabels,
		"keypointlabels":  KeyPointLabels,
		"labels":          Labels,
		"choices":         Choices,
		"textarea":        TextArea,
	}
	// Layout and decoration only: they hold no data and produce no results.
	xmlVisual = map[string]bool{
		"view": true, "header": true, "style": true, "collapse": true, "panel": true,
		"filter": true, "shortcut": true,
	}
)

const xmlSupported = "View, Image, Text, RectangleLabels, PolygonLabels, KeyPointLabels, Labels, Choices, TextArea, " +
	"Label, Choice (and Header, Style, Collapse, Panel, Filter, Shortcut, which only change the layout and are ignored)"

// maxXMLDepth bounds element nesting.
const maxXMLDepth = 64

// FromXML imports a Label Studio XML label config:
//
//	<View>
//	  <Image name="image" value="$image"/>
//	  <RectangleLabels name="label" toName="image">
//	    <Label value="Car"/>
//	  </RectangleLabels>
//	</View>
//
// Objects are <Image> and <Text> (name, value); controls are
// <RectangleLabels>, <PolygonLabels>, <KeyPointLabels>, <Labels> with <Label
// value> children, <Choices> (choice="single", "single-radio" or "multiple")
// with <Choice value> children, and <TextArea>, each with name and toName.
// A <Choice alias> replaces the value, as it does in Label Studio's results.
// <View> nesting and the purely visual tags (Header, Style, Collapse, Panel,
// Filter, Shortcut) are ignored, and so are attributes that only change the
// look (background, hotkey, ...). Any other tag is refused by name and line:
// "unsupported tag <Video> at line 3; supported: ...". So are the features
// this config cannot express: a toName with several objects, labels loaded
// from task data (value="$options" on a control) and per-region choices.
// The result is checked like [Parse]'s; every error is a *ConfigError.
func FromXML(r io.Reader) (Config, error) {
	x := xmlImport{dec: xml.NewDecoder(io.LimitReader(r, MaxConfigBytes+1))}
	x.dec.Entity = xml.HTMLEntity // &nbsp; and friends appear in hand-written configs
	if err := x.run(); err != nil {
		return Config{}, err
	}
	x.cfg.normalize()
	if err := x.cfg.Check(); err != nil {
		return Config{}, x.locate(err)
	}
	return x.cfg, nil
}

type xmlImport struct {
	dec *xml.Decoder
	cfg Config
	// lines of each object and control, for errors Check finds later.
	objLines, ctlLines []int
	objTags, ctlTags   []string
}

func (x *xmlImport) line() int {
	l, _ := x.dec.InputPos()
	return l
}

func xmlErr(format string, args ...any) *ConfigError {
	return &ConfigError{Reason: fmt.Sprintf(format, args...)}
}

func (x *xmlImport) run() error {
	// stack holds, per open element, the index of the label-bearing control
	// it is inside (-1: none), so <Label> and <Choice> find their control
	// through layout tags.
	type open struct {
		tag     string
		control int
	}
	var stack []open
	sawRoot := false
	for {
		tok, err := x.dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return xmlErr("is not well-formed XML at line %d: %s", se.Line, se.Msg)
			}
			return xmlErr("cannot be read: %v", err)
		}
		if x.dec.InputOffset() > MaxConfigBytes {
			return xmlErr("is larger than %d bytes", MaxConfigBytes)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			tag := strings.ToLower(name)
			line := x.line()
			if len(stack) == 0 {
				if sawRoot {
					return xmlErr("has a second root element <%s> at line %d; wrap everything in one <View>", name, line)
				}
				sawRoot = true
				if tag != "view" {
					return xmlErr("must start with <View>, not <%s> (line %d)", name, line)
				}
			}
			if len(stack) >= maxXMLDepth {
				return xmlErr("nests elements more than %d deep at line %d", maxXMLDepth, line)
			}
			parent := -1
			if len(stack) > 0 {
				parent = stack[len(stack)-1].control
			}
			control := parent
			switch {
			case xmlVisual[tag]:
			case xmlObjects[tag] != "":
				if err := x.object(name, xmlObjects[tag], t.Attr, line); err != nil {
					return err
				}
			case xmlControl[tag] != "":
				if parent >= 0 {
					return xmlErr("<%s> at line %d is inside <%s name=%q>; controls cannot be nested", name, line, x.ctlTags[parent], x.cfg.Controls[parent].Name)
				}
				if err := x.control(name, xmlControl[tag], t.Attr, line); err != nil {
					return err
				}
				control = len(x.cfg.Controls) - 1
			case tag == "label" || tag == "choice":
				if err := x.label(name, tag, parent, t.Attr, line); err != nil {
					return err
				}
			default:
				return xmlErr("unsupported tag <%s> at line %d; supported: %s", name, line, xmlSupported)
			}
			stack = append(stack, open{tag: tag, control: control})
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if !sawRoot {
		return xmlErr("is empty; expected <View> with objects and controls")
	}
	return nil
}

func attr(attrs []xml.Attr, name string) (string, bool) {
	for _, a := range attrs {
		if strings.EqualFold(a.Name.Local, name) {
			return a.Value, true
		}
	}
	return "", false
}

func (x *xmlImport) object(tag string, typ ObjectType, attrs []xml.Attr, line int) error {
	name, _ := attr(attrs, "name")
	value, _ := attr(attrs, "value")
	if !strings.HasPrefix(value, "$") {
		return xmlErr("<%s name=%q> at line %d: value %q must name a task data field, like value=\"$%s\"", tag, name, line, value, typ)
	}
	x.cfg.Objects = append(x.cfg.Objects, Object{Name: name, Type: typ, Value: value})
	x.objLines = append(x.objLines, line)
	x.objTags = append(x.objTags, tag)
	return nil
}

func (x *xmlImport) control(tag string, typ ControlType, attrs []xml.Attr, line int) error {
	name, _ := attr(attrs, "name")
	toName, _ := attr(attrs, "toName")
	if strings.Contains(toName, ",") {
		return xmlErr("<%s name=%q> at line %d: toName %q names several objects; a control here annotates one object", tag, name, line, toName)
	}
	if v, ok := attr(attrs, "value"); ok && strings.HasPrefix(v, "$") && typ != TextArea {
		return xmlErr("<%s name=%q> at line %d: labels loaded from task data (value=%q) are not supported; list them as child tags", tag, name, line, v)
	}
	if v, _ := attr(attrs, "perRegion"); strings.EqualFold(v, "true") {
		return xmlErr("<%s name=%q> at line %d: perRegion controls are not supported", tag, name, line)
	}
	k := Control{Name: name, Type: typ, ToName: toName}
	if typ == Choices {
		switch mode, _ := attr(attrs, "choice"); mode {
		case "", "single", "single-radio":
			k.Choice = ChoiceSingle
		case "multiple":
			k.Choice = ChoiceMultiple
		default:
			return xmlErr("<%s name=%q> at line %d: choice=%q is not single, single-radio or multiple", tag, name, line, mode)
		}
	}
	x.cfg.Controls = append(x.cfg.Controls, k)
	x.ctlLines = append(x.ctlLines, line)
	x.ctlTags = append(x.ctlTags, tag)
	return nil
}

func (x *xmlImport) label(tag, lower string, control int, attrs []xml.Attr, line int) error {
	want := "RectangleLabels, PolygonLabels, KeyPointLabels or Labels"
	if lower == "choice" {
		want = "Choices"
	}
	if control < 0 {
		return xmlErr("<%s> at line %d must be inside %s", tag, line, want)
	}
	k := &x.cfg.Controls[control]
	if (lower == "choice") != (k.Type == Choices) {
		return xmlErr("<%s> at line %d is inside <%s name=%q>; it belongs inside %s", tag, line, x.ctlTags[control], k.Name, want)
	}
	value, ok := attr(attrs, "value")
	if !ok {
		return xmlErr("<%s> at line %d has no value attribute", tag, line)
	}
	if alias, ok := attr(attrs, "alias"); ok && alias != "" && lower == "choice" {
		value = alias
	}
	k.Labels = append(k.Labels, value)
	return nil
}

// locate turns a Check error about objects[i] or controls[i] into one that
// names the XML tag and line.
func (x *xmlImport) locate(err error) error {
	var ce *ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	var i int
	var where string
	switch {
	case scanIndex(ce.Field, "objects[", &i) && i < len(x.objLines):
		o := x.cfg.Objects[i]
		where = fmt.Sprintf("<%s name=%q> at line %d", x.objTags[i], o.Name, x.objLines[i])
	case scanIndex(ce.Field, "controls[", &i) && i < len(x.ctlLines):
		k := x.cfg.Controls[i]
		where = fmt.Sprintf("<%s name=%q> at line %d", x.ctlTags[i], k.Name, x.ctlLines[i])
	default:
		return err
	}
	field := ce.Field[strings.IndexByte(ce.Field, ']')+1:]
	field = strings.TrimPrefix(field, ".")
	field = strings.NewReplacer("to_name", "toName", "labels", "labels (<Label>/<Choice> children)").Replace(field)
	// The tag and line say where; the JSON field path would only confuse.
	return &ConfigError{Reason: fmt.Sprintf("%s: %s: %s", where, field, ce.Reason)}
}

func scanIndex(field, prefix string, i *int) bool {
	if !strings.HasPrefix(field, prefix) {
		return false
	}
	_, err := fmt.Sscanf(field[len(prefix):], "%d]", i)
	return err == nil
}
