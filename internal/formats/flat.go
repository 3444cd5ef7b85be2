package formats

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/labelq/labelq/internal/labelconfig"
)

// flatValue is one control's value in json_min and csv, flattened as Label
// Studio's prettify_result does: a choices region with one choice is that
// choice, a textarea region with one line that line, any other region its
// value object (with original_width/original_height when the region has
// them); a choices or textarea control with one region is that region's
// value, any other control the list of its regions' values.
type flatValue struct {
	name string
	// plain is set when the value is a single string (csv writes it as it
	// is); raw is the value as JSON either way.
	plain *string
	raw   []byte
}

// flatten computes the flat values of an annotation, control by control in
// config order; controls without regions are left out.
func flatten(cfg labelconfig.Config, a *Annotation) ([]flatValue, error) {
	if a == nil {
		return nil, nil
	}
	var out []flatValue
	for _, k := range cfg.Controls {
		var items [][]byte
		var lone *string
		n := 0
		for i := range a.Result {
			r := &a.Result[i]
			if r.FromName != k.Name || r.Type != k.Type {
				continue
			}
			item, plain, err := flatItem(k, r)
			if err != nil {
				return nil, fmt.Errorf("annotation %d: region %d: %w", a.ID, i, err)
			}
			items = append(items, item)
			lone = plain
			n++
		}
		if n == 0 {
			continue
		}
		v := flatValue{name: k.Name}
		if n == 1 && (k.Type == labelconfig.Choices || k.Type == labelconfig.TextArea) {
			v.raw, v.plain = items[0], lone
		} else {
			v.raw = append([]byte{'['}, bytes.Join(items, []byte{','})...)
			v.raw = append(v.raw, ']')
		}
		out = append(out, v)
	}
	return out, nil
}

func flatItem(k labelconfig.Control, r *labelconfig.Region) (raw []byte, plain *string, err error) {
	if k.Type == labelconfig.Choices || k.Type == labelconfig.TextArea {
		v, err := r.DecodeValue()
		if err != nil {
			return nil, nil, err
		}
		one := v.Choices
		if k.Type == labelconfig.TextArea {
			one = v.Lines
		}
		if len(one) == 1 {
			s := one[0]
			return labelconfig.AppendString(nil, s), &s, nil
		}
	}
	var b bytes.Buffer
	if err := json.Compact(&b, r.Value); err != nil || b.Len() < 2 || b.Bytes()[0] != '{' {
		return nil, nil, errors.New("value is not a JSON object")
	}
	out := b.Bytes()
	if r.OriginalWidth > 0 || r.OriginalHeight > 0 {
		out = out[:len(out)-1]
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, `"original_width":`...)
		out = strconv.AppendInt(out, int64(r.OriginalWidth), 10)
		out = append(out, `,"original_height":`...)
		out = strconv.AppendInt(out, int64(r.OriginalHeight), 10)
		out = append(out, '}')
	}
	return out, nil, nil
}

// jsonMin writes result.json: a JSON list with one record per task, Label
// Studio's JSON-MIN:
//
//	{"image": "images/a.jpg", "id": 7, "label": [{"x": 10, ..., "rectanglelabels": ["Car"], "original_width": 800, "original_height": 600}],
//	 "choice": "Sunny", "annotator": 12, "annotation_id": 3, "created_at": "2025-01-02T03:04:05Z"}
//
// The data fields come first, then id, the controls' flat values (see
// flatValue) and who made the latest annotation when; annotator,
// annotation_id and created_at are null for a task without annotations.
type jsonMin struct {
	doc
	cfg   labelconfig.Config
	keys  []dataKey
	tasks int64
}

func newJSONMin(cfg labelconfig.Config, w Writer) *jsonMin {
	return &jsonMin{doc: doc{w: w, name: ResultJSON}, cfg: cfg, keys: dataKeys(cfg)}
}

func (j *jsonMin) Add(t Task) error {
	if err := j.open(); err != nil {
		return err
	}
	a := t.Latest()
	values, err := flatten(j.cfg, a)
	if err != nil {
		return taskErr("json_min", t, err)
	}
	b := j.scratch
	if j.tasks == 0 {
		b = append(b, "[\n{"...)
	} else {
		b = append(b, ",\n{"...)
	}
	for _, k := range j.keys {
		b = labelconfig.AppendString(b, k.key)
		b = append(b, ':')
		b = labelconfig.AppendString(b, k.value(t))
		b = append(b, ',')
	}
	b = append(b, `"id":`...)
	b = strconv.AppendInt(b, t.ID, 10)
	for _, v := range values {
		b = append(b, ',')
		b = labelconfig.AppendString(b, v.name)
		b = append(b, ':')
		b = append(b, v.raw...)
	}
	if a == nil {
		b = append(b, `,"annotator":null,"annotation_id":null,"created_at":null}`...)
	} else {
		b = append(b, `,"annotator":`...)
		b = strconv.AppendInt(b, a.CompletedBy, 10)
		b = append(b, `,"annotation_id":`...)
		b = strconv.AppendInt(b, a.ID, 10)
		b = append(b, `,"created_at":`...)
		b = appendTime(b, a.CreatedAt)
		b = append(b, '}')
	}
	j.tasks++
	return j.emit(b)
}

func (j *jsonMin) Close() error {
	if j.closed {
		return errors.New("json_min: closed twice")
	}
	if j.tasks == 0 {
		return j.finish([]byte("[]\n"))
	}
	return j.finish([]byte("\n]\n"))
}

// csvOut writes result.csv, Label Studio's CSV: a header of every column in
// alphabetical order (the data fields, id, the controls, annotator,
// annotation_id, created_at), then one row per task. A control's cell is its
// flat value (see flatValue) as it is when that is one string, else as JSON;
// a control without regions, and the annotation columns of a task without
// annotations, are empty. Fields are quoted only where CSV needs it (Label
// Studio quotes every non-number) and no spreadsheet-formula escaping is
// applied: the file is data, and a value must read back as it was.
type csvOut struct {
	doc
	cfg     labelconfig.Config
	cols    []string
	col     map[string]int // column → index
	keys    []dataKey
	csv     *csv.Writer
	row     []string
	started bool
}

func newCSV(cfg labelconfig.Config, w Writer) *csvOut {
	c := &csvOut{doc: doc{w: w, name: ResultCSV}, cfg: cfg, keys: dataKeys(cfg), col: map[string]int{}}
	cols := append([]string{}, labelconfig.FlatColumns...)
	for _, k := range c.keys {
		cols = append(cols, k.key)
	}
	for _, k := range cfg.Controls {
		cols = append(cols, k.Name)
	}
	slices.Sort(cols)
	c.cols = slices.Compact(cols)
	for i, name := range c.cols {
		c.col[name] = i
	}
	c.row = make([]string, len(c.cols))
	return c
}

func (c *csvOut) begin() error {
	if c.started {
		return nil
	}
	if err := c.open(); err != nil {
		return err
	}
	c.started = true
	c.csv = csv.NewWriter(c.out)
	return c.csv.Write(c.cols)
}

func (c *csvOut) Add(t Task) error {
	if err := c.begin(); err != nil {
		return err
	}
	a := t.Latest()
	values, err := flatten(c.cfg, a)
	if err != nil {
		return taskErr("csv", t, err)
	}
	clear(c.row)
	for _, k := range c.keys {
		c.row[c.col[k.key]] = k.value(t)
	}
	c.row[c.col["id"]] = strconv.FormatInt(t.ID, 10)
	for _, v := range values {
		if v.plain != nil {
			c.row[c.col[v.name]] = *v.plain
		} else {
			c.row[c.col[v.name]] = string(v.raw)
		}
	}
	if a != nil {
		c.row[c.col["annotator"]] = strconv.FormatInt(a.CompletedBy, 10)
		c.row[c.col["annotation_id"]] = strconv.FormatInt(a.ID, 10)
		if !a.CreatedAt.IsZero() {
			c.row[c.col["created_at"]] = a.CreatedAt.UTC().Format(time.RFC3339Nano)
		}
	}
	if err := c.csv.Write(c.row); err != nil {
		return fmt.Errorf("write %s: %w", c.name, err)
	}
	return nil
}

func (c *csvOut) Close() error {
	if c.closed {
		return errors.New("csv: closed twice")
	}
	if err := c.begin(); err != nil {
		return err
	}
	c.csv.Flush()
	if err := c.csv.Error(); err != nil {
		return fmt.Errorf("write %s: %w", c.name, err)
	}
	return c.finish(nil)
}
