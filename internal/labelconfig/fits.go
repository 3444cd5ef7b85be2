package labelconfig

import (
	"fmt"
	"slices"
	"strings"
)

// Export formats an export can ask for (export options' "format").
const (
	FormatLabelq      = "labelq" // the archive layout labelq always had: files, annotations, llm outputs
	FormatLabelStudio = "label_studio"
	FormatJSONMin     = "json_min"
	FormatCSV         = "csv"
	FormatCOCO        = "coco"
	FormatYOLO        = "yolo"
	FormatVOC         = "voc"
	FormatCoNLL2003   = "conll2003"
)

// Formats lists every export format, the default first.
func Formats() []string {
	return []string{FormatLabelq, FormatLabelStudio, FormatJSONMin, FormatCSV, FormatCOCO, FormatYOLO, FormatVOC, FormatCoNLL2003}
}

// FlatColumns are the fields json_min and csv add to each task's data and
// control values; an object's data field or a control may not be named so.
var FlatColumns = []string{"id", "annotator", "annotation_id", "created_at"}

// Fits reports whether an export format can represent what this config
// annotates, with a message saying what the config lacks:
//   - coco: an image object with a rectanglelabels or polygonlabels control;
//   - yolo, voc: an image object with a rectanglelabels control;
//   - conll2003: a text object with a labels control;
//   - json_min, csv: any config whose data fields and control names do not
//     collide with each other or with [FlatColumns];
//   - labelq, label_studio: any config.
func (c Config) Fits(format string) error {
	switch format {
	case FormatLabelq, FormatLabelStudio:
		return nil
	case FormatJSONMin, FormatCSV:
		return c.flatColumns(format)
	case FormatCOCO:
		return c.need(format, "image objects annotated with boxes or polygons", ObjectImage, RectangleLabels, PolygonLabels)
	case FormatYOLO, FormatVOC:
		return c.need(format, "image objects annotated with boxes", ObjectImage, RectangleLabels)
	case FormatCoNLL2003:
		return c.need(format, "text objects annotated with labelled spans", ObjectText, Labels)
	}
	return fmt.Errorf("format %q is not an export format; use one of %s", format, quoteList(Formats()))
}

func (c Config) need(format, what string, obj ObjectType, types ...ControlType) error {
	for _, k := range c.Controls {
		if !slices.Contains(types, k.Type) {
			continue
		}
		if o, ok := c.Object(k.ToName); ok && o.Type == obj {
			return nil
		}
	}
	want := make([]string, len(types))
	for i, t := range types {
		want[i] = string(t)
	}
	return fmt.Errorf("format %s exports %s, but this label config has no %s control on %s %s object (it has %s); choose label_studio, json_min or csv, or add such a control",
		format, what, strings.Join(want, " or "), article(string(obj)), obj, c.summary())
}

// summary describes the config in a few words: `rectanglelabels "label" on image "image"`.
func (c Config) summary() string {
	parts := make([]string, 0, len(c.Controls))
	for _, k := range c.Controls {
		o, _ := c.Object(k.ToName)
		parts = append(parts, fmt.Sprintf("%s %q on %s %q", k.Type, k.Name, o.Type, o.Name))
	}
	if len(parts) == 0 {
		return "no controls"
	}
	return strings.Join(parts, ", ")
}

func (c Config) flatColumns(format string) error {
	owner := make(map[string]string)
	for _, col := range FlatColumns {
		owner[col] = fmt.Sprintf("the %q column %s adds", col, format)
	}
	claim := func(name, who string) error {
		if prev, ok := owner[name]; ok {
			return fmt.Errorf("format %s puts data fields and controls side by side, and %s is named like %s; rename one in the label config", format, who, prev)
		}
		owner[name] = who
		return nil
	}
	seenKey := make(map[string]bool)
	for _, o := range c.Objects {
		if seenKey[o.DataKey()] { // two objects may show the same field
			continue
		}
		seenKey[o.DataKey()] = true
		if err := claim(o.DataKey(), fmt.Sprintf("data field %q (object %q)", o.DataKey(), o.Name)); err != nil {
			return err
		}
	}
	for _, k := range c.Controls {
		if err := claim(k.Name, fmt.Sprintf("control %q", k.Name)); err != nil {
			return err
		}
	}
	return nil
}
