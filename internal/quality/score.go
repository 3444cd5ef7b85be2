package quality

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/matching"
)

// Defaults for Options fields left zero.
const (
	// DefaultIoUThreshold is the IoU from which a box or polygon counts as
	// found, as in PASCAL VOC and COCO's AP50.
	DefaultIoUThreshold = 0.5
	// DefaultKeypointTolerance is the distance, as a fraction of the image
	// diagonal, within which a key point counts as found: 2% is 20 px on a
	// 800 × 600 image.
	DefaultKeypointTolerance = 0.02
)

// iouSlack lets an IoU a rounding below the threshold count: boxes that
// overlap by exactly half in percent come out at 0.49999999999999994.
const iouSlack = 1e-9

// weightUnits quantises IoU and key point similarity (in [0, 1]) for the
// exact assignment: units of 1e-9.
const weightUnits = 1e9

// Options tune Score. The zero value takes the defaults.
type Options struct {
	// IoUThreshold is the IoU from which a pair of boxes or polygons with the
	// same labels can match, in (0, 1]; 0 means DefaultIoUThreshold. It is
	// the project's quality_iou_threshold.
	IoUThreshold float64
	// KeypointTolerance is the distance, as a fraction of the image
	// diagonal, within which a pair of key points with the same labels can
	// match, in (0, 1]; 0 means DefaultKeypointTolerance.
	KeypointTolerance float64
}

func (o Options) withDefaults() (Options, error) {
	o.IoUThreshold = cmp.Or(o.IoUThreshold, DefaultIoUThreshold)
	o.KeypointTolerance = cmp.Or(o.KeypointTolerance, DefaultKeypointTolerance)
	if !(o.IoUThreshold > 0 && o.IoUThreshold <= 1) {
		return o, fmt.Errorf("IoU threshold %v is outside (0, 1]", o.IoUThreshold)
	}
	if !(o.KeypointTolerance > 0 && o.KeypointTolerance <= 1) {
		return o, fmt.Errorf("key point tolerance %v is outside (0, 1]", o.KeypointTolerance)
	}
	return o, nil
}

// Result is a result scored against a reference, per control of the label
// config. It is what a submission's score, metric and detail are made of,
// and marshals to JSON as that detail (no NaN or infinity anywhere).
type Result struct {
	// Score is in [0, 1]: the mean of the Score of the controls that are not
	// Empty, or 1 when every control is.
	Score float64 `json:"score"`
	// Metric names what Score is: "box:f1@iou0.5" for a config whose only
	// used control is "box", "mean(box:f1@iou0.5,quality:accuracy)" for
	// several, "empty" when neither result has a region.
	Metric string `json:"metric"`
	// Controls has an entry for every control of the config, in its order.
	Controls []ControlScore `json:"controls"`
}

// ControlScore is one control's score. Score is the control's primary
// metric, named by Metric:
//
//	choices, single          "accuracy"        1 when the choices are the same, else 0
//	choices, multiple        "jaccard"         |got ∩ ref| / |got ∪ ref| of the choice sets
//	rectanglelabels          "f1@iou<t>"       F1 of boxes matched at IoU ≥ t (Shapes)
//	polygonlabels            "f1@iou<t>"       F1 of polygons matched at IoU ≥ t (Shapes)
//	keypointlabels           "f1@dist<d>"      F1 of points matched within d of the diagonal (Points)
//	labels                   "exact_span_f1"   F1 of spans with the same start, end and labels (Spans)
//	textarea                 "text_similarity" 1 − normalised edit distance (Text)
//
// Exact span F1 is primary for labels because it is what NER is judged by
// (CoNLL); the overlap F1 is beside it in Spans. For shapes, F1 rather than
// mean IoU: a missed or extra box must cost, and mean IoU, over the matched
// pairs only, cannot see it; it is beside F1 in Shapes.
type ControlScore struct {
	Name   string                  `json:"name"`
	Type   labelconfig.ControlType `json:"type"`
	Metric string                  `json:"metric"`
	Score  float64                 `json:"score"`
	// Empty is set when neither result has a region of the control: its
	// Score is 1 (nothing against nothing agrees) but the overall Score
	// leaves it out, so that a control the reference does not use (a
	// comment box left empty on both sides) cannot dilute the controls it
	// does.
	Empty bool `json:"empty,omitempty"`
	// Got and Ref count the control's regions in either result.
	Got int `json:"got"`
	Ref int `json:"ref"`

	Choices *ChoiceScore `json:"choices,omitempty"`
	Shapes  *ShapeScore  `json:"shapes,omitempty"`
	Points  *PointScore  `json:"points,omitempty"`
	Spans   *SpanScore   `json:"spans,omitempty"`
	Text    *TextScore   `json:"text,omitempty"`
}

// ChoiceScore compares the choices of a choices control: the union of the
// choices of its regions on either side, sorted.
type ChoiceScore struct {
	Got []string `json:"got"`
	Ref []string `json:"ref"`
	// Jaccard is |Got ∩ Ref| / |Got ∪ Ref|, 1 when both are empty.
	Jaccard float64 `json:"jaccard"`
}

// ShapeScore matches boxes or polygons one-to-one. Only a pair with the same
// labels (as a set) and an IoU of at least Threshold can match; among those
// the matching maximises the total IoU exactly (matching.Assign, IoU in
// units of 1e-9), then the number of pairs. Matching per label is what COCO
// does per category: a box in the right place with the wrong label counts
// as a false positive and a false negative. Pairs indexes got and ref in
// the results given to Score.
type ShapeScore struct {
	PRF
	Threshold float64 `json:"threshold"`
	// MeanIoU is the mean IoU of the matched pairs: 0 when none matched, 1
	// when neither side has a shape.
	MeanIoU float64 `json:"mean_iou"`
	Pairs   []Pair  `json:"pairs,omitempty"`
}

// PointScore matches key points one-to-one. A pair with the same labels
// within Tolerance (distance over the image diagonal, in pixels when the
// regions give the image size, else as on a square image) can match; the
// matching maximises Σ (1 − distance/Tolerance), then the number of pairs.
// Key point size (value.width) is not scored.
type PointScore struct {
	PRF
	Tolerance float64 `json:"tolerance"`
	// MeanDistance is the mean distance of the matched pairs, as a fraction
	// of the diagonal: 0 when none matched or neither side has a point.
	MeanDistance float64 `json:"mean_distance"`
	Pairs        []Pair  `json:"pairs,omitempty"`
}

// TextScore compares the text of a textarea control: the lines of its
// regions joined by newlines, region after region.
type TextScore struct {
	// Similarity is 1 − Distance / max(GotLength, RefLength), 1 for two
	// empty texts.
	Similarity float64 `json:"similarity"`
	// Distance is the Levenshtein distance in code points.
	Distance int `json:"distance"`
	// GotLength and RefLength are the texts' lengths in code points.
	GotLength int `json:"got_length"`
	RefLength int `json:"ref_length"`
}

// region is a decoded region with its index in the result.
type region struct {
	index int
	r     *labelconfig.Region
	v     labelconfig.Value
}

// Score scores got (an annotator's result) against ref (the gold answer or
// another annotator's result), control by control of cfg, and averages the
// controls either uses (see Result and ControlScore). Every region must name
// a control of cfg and have its type, and its value must decode; a polygon
// must be simple (see CheckPolygon). The error names the region at fault,
// "result region 3" for got[3] and "reference region 3" for ref[3], and
// wraps ErrSelfIntersecting, ErrDegenerate or ErrNotFinite for a shape that
// cannot be measured.
func Score(cfg labelconfig.Config, got, ref []labelconfig.Region, opts Options) (Result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Result{}, fmt.Errorf("score: %w", err)
	}
	controls := make(map[string]int, len(cfg.Controls))
	for i, k := range cfg.Controls {
		controls[k.Name] = i
	}
	gotBy, err := byControl(cfg, controls, got, "result")
	if err != nil {
		return Result{}, err
	}
	refBy, err := byControl(cfg, controls, ref, "reference")
	if err != nil {
		return Result{}, err
	}

	res := Result{Controls: make([]ControlScore, len(cfg.Controls))}
	var sum float64
	var used []string
	for i, k := range cfg.Controls {
		g, r := gotBy[i], refBy[i]
		cs := ControlScore{Name: k.Name, Type: k.Type, Got: len(g), Ref: len(r)}
		if err := scoreControl(&cs, k, g, r, opts); err != nil {
			return Result{}, err
		}
		cs.Score = clamp01(cs.Score)
		if len(g) == 0 && len(r) == 0 {
			cs.Empty = true
		} else {
			sum += cs.Score
			used = append(used, k.Name+":"+cs.Metric)
		}
		res.Controls[i] = cs
	}
	switch len(used) {
	case 0:
		res.Score, res.Metric = 1, "empty"
	case 1:
		res.Score, res.Metric = sum, used[0]
	default:
		res.Score, res.Metric = clamp01(sum/float64(len(used))), "mean("+strings.Join(used, ",")+")"
	}
	return res, nil
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }

// byControl decodes the regions and groups them by control index.
func byControl(cfg labelconfig.Config, controls map[string]int, regions []labelconfig.Region, side string) ([][]region, error) {
	out := make([][]region, len(cfg.Controls))
	for i := range regions {
		r := &regions[i]
		k, ok := controls[r.FromName]
		if !ok {
			return nil, fmt.Errorf("%s region %d: from_name %q is not a control of the label config", side, i, r.FromName)
		}
		if want := cfg.Controls[k].Type; r.Type != want {
			return nil, fmt.Errorf("%s region %d (from_name %q): type %q, but the control is %s", side, i, r.FromName, r.Type, want)
		}
		v, err := r.DecodeValue()
		if err != nil {
			return nil, fmt.Errorf("%s region %d (from_name %q): %w", side, i, r.FromName, err)
		}
		out[k] = append(out[k], region{index: i, r: r, v: v})
	}
	return out, nil
}

func scoreControl(cs *ControlScore, k labelconfig.Control, got, ref []region, opts Options) error {
	switch k.Type {
	case labelconfig.Choices:
		c := scoreChoices(got, ref)
		cs.Choices = &c
		if k.Multiple() {
			cs.Metric, cs.Score = "jaccard", c.Jaccard
		} else {
			cs.Metric = "accuracy"
			if slices.Equal(c.Got, c.Ref) {
				cs.Score = 1
			}
		}
	case labelconfig.RectangleLabels, labelconfig.PolygonLabels:
		s, err := scoreShapes(k.Type, got, ref, opts.IoUThreshold)
		if err != nil {
			return err
		}
		cs.Shapes = &s
		cs.Metric, cs.Score = "f1@iou"+strconv.FormatFloat(opts.IoUThreshold, 'g', -1, 64), s.F1
	case labelconfig.KeyPointLabels:
		p, err := scorePoints(got, ref, opts.KeypointTolerance)
		if err != nil {
			return err
		}
		cs.Points = &p
		cs.Metric, cs.Score = "f1@dist"+strconv.FormatFloat(opts.KeypointTolerance, 'g', -1, 64), p.F1
	case labelconfig.Labels:
		s, err := scoreSpans(got, ref)
		if err != nil {
			return err
		}
		cs.Spans = &s
		cs.Metric, cs.Score = "exact_span_f1", s.Exact.F1
	case labelconfig.TextArea:
		t := scoreText(got, ref)
		cs.Text = &t
		cs.Metric, cs.Score = "text_similarity", t.Similarity
	default:
		return fmt.Errorf("control %q: type %q cannot be scored", k.Name, k.Type)
	}
	return nil
}

func scoreChoices(got, ref []region) ChoiceScore {
	set := func(rs []region) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.v.Choices...)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	c := ChoiceScore{Got: set(got), Ref: set(ref)}
	union := len(c.Got) + len(c.Ref)
	inter := 0
	for _, v := range c.Got {
		if _, ok := slices.BinarySearch(c.Ref, v); ok {
			inter++
		}
	}
	union -= inter
	if union == 0 {
		c.Jaccard = 1
	} else {
		c.Jaccard = float64(inter) / float64(union)
	}
	return c
}

func scoreShapes(typ labelconfig.ControlType, got, ref []region, threshold float64) (ShapeScore, error) {
	prep := func(rs []region, side string) ([]shape, []string, error) {
		shapes := make([]shape, len(rs))
		keys := make([]string, len(rs))
		for i, r := range rs {
			var err error
			if typ == labelconfig.RectangleLabels {
				shapes[i], err = prepareBox(Box{
					X: r.v.X, Y: r.v.Y, Width: r.v.Width, Height: r.v.Height, Rotation: r.v.Rotation,
					ImageWidth: float64(r.r.OriginalWidth), ImageHeight: float64(r.r.OriginalHeight),
				})
			} else {
				pts := make([]Point, len(r.v.Points))
				for j, p := range r.v.Points {
					pts[j] = Point{p[0], p[1]}
				}
				shapes[i], err = preparePolygon(pts)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("%s region %d (from_name %q): %w", side, r.index, r.r.FromName, err)
			}
			keys[i] = labelKey(r.v.Labels)
		}
		return shapes, keys, nil
	}
	gs, gk, err := prep(got, "result")
	if err != nil {
		return ShapeScore{}, err
	}
	rs, rk, err := prep(ref, "reference")
	if err != nil {
		return ShapeScore{}, err
	}
	var edges []matching.AssignEdge
	iou := map[[2]int]float64{}
	for i := range gs {
		for j := range rs {
			if gk[i] != rk[j] {
				continue
			}
			v := shapeIoU(&gs[i], &rs[j])
			if v > 0 && v >= threshold-iouSlack {
				edges = append(edges, matching.AssignEdge{Row: i, Col: j, Weight: max(1, int64(math.Round(v*weightUnits)))})
				iou[[2]int{i, j}] = v
			}
		}
	}
	chosen, err := matching.Assign(context.Background(), len(gs), len(rs), edges)
	if err != nil {
		return ShapeScore{}, fmt.Errorf("match %s: %w", typ, err)
	}
	s := ShapeScore{PRF: newPRF(len(chosen), len(gs), len(rs)), Threshold: threshold}
	for _, e := range chosen {
		v := iou[[2]int{e.Row, e.Col}]
		s.MeanIoU += v
		s.Pairs = append(s.Pairs, Pair{Got: got[e.Row].index, Ref: ref[e.Col].index, IoU: v})
	}
	switch {
	case len(chosen) > 0:
		s.MeanIoU /= float64(len(chosen))
	case len(gs) == 0 && len(rs) == 0:
		s.MeanIoU = 1
	}
	return s, nil
}

func scorePoints(got, ref []region, tolerance float64) (PointScore, error) {
	for _, side := range [2]struct {
		name string
		rs   []region
	}{{"result", got}, {"reference", ref}} {
		for _, r := range side.rs {
			if math.IsNaN(r.v.X) || math.IsInf(r.v.X, 0) || math.IsNaN(r.v.Y) || math.IsInf(r.v.Y, 0) {
				return PointScore{}, fmt.Errorf("%s region %d (from_name %q): key point: %w", side.name, r.index, r.r.FromName, ErrNotFinite)
			}
		}
	}
	gk, rk := make([]string, len(got)), make([]string, len(ref))
	for i, r := range got {
		gk[i] = labelKey(r.v.Labels)
	}
	for i, r := range ref {
		rk[i] = labelKey(r.v.Labels)
	}
	var edges []matching.AssignEdge
	dist := map[[2]int]float64{}
	for i, g := range got {
		for j, r := range ref {
			if gk[i] != rk[j] {
				continue
			}
			d := pointDistance(g, r)
			if d <= tolerance {
				sim := 1 - d/tolerance
				edges = append(edges, matching.AssignEdge{Row: i, Col: j, Weight: max(1, int64(math.Round(sim*weightUnits)))})
				dist[[2]int{i, j}] = d
			}
		}
	}
	chosen, err := matching.Assign(context.Background(), len(got), len(ref), edges)
	if err != nil {
		return PointScore{}, fmt.Errorf("match key points: %w", err)
	}
	p := PointScore{PRF: newPRF(len(chosen), len(got), len(ref)), Tolerance: tolerance}
	for _, e := range chosen {
		d := dist[[2]int{e.Row, e.Col}]
		p.MeanDistance += d
		p.Pairs = append(p.Pairs, Pair{Got: got[e.Row].index, Ref: ref[e.Col].index, Distance: d})
	}
	if len(chosen) > 0 {
		p.MeanDistance /= float64(len(chosen))
	}
	return p, nil
}

// pointDistance is the distance between two key points over the image
// diagonal, in pixels of the reference's image size, else the result's, else
// a square image.
func pointDistance(g, r region) float64 {
	w, h := float64(r.r.OriginalWidth), float64(r.r.OriginalHeight)
	if w <= 0 || h <= 0 {
		w, h = float64(g.r.OriginalWidth), float64(g.r.OriginalHeight)
	}
	if w <= 0 || h <= 0 {
		w, h = 100, 100
	}
	dx, dy := (g.v.X-r.v.X)/100*w, (g.v.Y-r.v.Y)/100*h
	return math.Hypot(dx, dy) / math.Hypot(w, h)
}

func scoreSpans(got, ref []region) (SpanScore, error) {
	spans := func(rs []region) []Span {
		out := make([]Span, len(rs))
		for i, r := range rs {
			out[i] = Span{Start: r.v.Start, End: r.v.End, Labels: r.v.Labels}
		}
		return out
	}
	s, err := SpanF1(spans(got), spans(ref))
	if err != nil {
		return SpanScore{}, err
	}
	for i := range s.Pairs {
		s.Pairs[i].Got, s.Pairs[i].Ref = got[s.Pairs[i].Got].index, ref[s.Pairs[i].Ref].index
	}
	return s, nil
}

func scoreText(got, ref []region) TextScore {
	text := func(rs []region) []rune {
		var parts []string
		for _, r := range rs {
			parts = append(parts, strings.Join(r.v.Lines, "\n"))
		}
		return []rune(strings.Join(parts, "\n"))
	}
	g, r := text(got), text(ref)
	t := TextScore{Distance: levenshtein(g, r), GotLength: len(g), RefLength: len(r), Similarity: 1}
	if longer := max(len(g), len(r)); longer > 0 {
		t.Similarity = 1 - float64(t.Distance)/float64(longer)
	}
	return t
}
