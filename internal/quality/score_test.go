package quality_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/quality"
)

const scoreConfig = `{
  "objects": [
    {"name": "image", "type": "image", "value": "$image"},
    {"name": "text", "type": "text", "value": "$text"}
  ],
  "controls": [
    {"name": "box", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", "Person"]},
    {"name": "outline", "type": "polygonlabels", "to_name": "image", "labels": ["Road"]},
    {"name": "point", "type": "keypointlabels", "to_name": "image", "labels": ["Nose"]},
    {"name": "weather", "type": "choices", "to_name": "image", "labels": ["Sunny", "Rain"]},
    {"name": "tags", "type": "choices", "to_name": "image", "choice": "multiple", "labels": ["Blurry", "Night", "Snow"]},
    {"name": "ner", "type": "labels", "to_name": "text", "labels": ["PER", "ORG", "LOC"]},
    {"name": "caption", "type": "textarea", "to_name": "image"}
  ]
}`

func scoreCfg(t testing.TB) labelconfig.Config {
	t.Helper()
	c, err := labelconfig.Parse([]byte(scoreConfig))
	require.NoError(t, err)
	return c
}

func regions(t testing.TB, items ...string) []labelconfig.Region {
	t.Helper()
	rs, err := labelconfig.ParseResult([]byte("[" + strings.Join(items, ",") + "]"))
	require.NoError(t, err)
	return rs
}

func boxR(label string, x, y, w, h float64) string {
	return fmt.Sprintf(`{"from_name":"box","to_name":"image","type":"rectanglelabels","original_width":800,"original_height":600,
		"value":{"x":%v,"y":%v,"width":%v,"height":%v,"rotation":0,"rectanglelabels":[%q]}}`, x, y, w, h, label)
}

func polyR(xy ...float64) string {
	var pts []string
	for i := 0; i < len(xy); i += 2 {
		pts = append(pts, fmt.Sprintf("[%v,%v]", xy[i], xy[i+1]))
	}
	return `{"from_name":"outline","to_name":"image","type":"polygonlabels","value":{"points":[` + strings.Join(pts, ",") + `],"polygonlabels":["Road"]}}`
}

func pointR(x, y float64) string {
	return fmt.Sprintf(`{"from_name":"point","to_name":"image","type":"keypointlabels","original_width":1000,"original_height":1000,
		"value":{"x":%v,"y":%v,"width":0.5,"keypointlabels":["Nose"]}}`, x, y)
}

func choiceR(name string, choices ...string) string {
	b, _ := json.Marshal(append([]string{}, choices...))
	return fmt.Sprintf(`{"from_name":%q,"to_name":"image","type":"choices","value":{"choices":%s}}`, name, b)
}

func spanR(start, end int, label string) string {
	return fmt.Sprintf(`{"from_name":"ner","to_name":"text","type":"labels","value":{"start":%d,"end":%d,"labels":[%q]}}`, start, end, label)
}

func textR(lines ...string) string {
	b, _ := json.Marshal(lines)
	return fmt.Sprintf(`{"from_name":"caption","to_name":"image","type":"textarea","value":{"text":%s}}`, b)
}

func control(t *testing.T, r quality.Result, name string) quality.ControlScore {
	t.Helper()
	for _, c := range r.Controls {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no control %q", name)
	return quality.ControlScore{}
}

// TestScoreEveryControl scores one result using every control type against a
// reference, each count worked out by hand in the comments.
func TestScoreEveryControl(t *testing.T) {
	cfg := scoreCfg(t)
	ref := regions(t,
		boxR("Car", 0, 0, 10, 10), boxR("Person", 50, 50, 10, 10),
		polyR(0, 0, 2, 0, 2, 1, 1, 1, 1, 2, 0, 2), // L, area 3
		pointR(10, 10),
		choiceR("weather", "Sunny"),
		choiceR("tags", "Night", "Snow"),
		spanR(0, 5, "PER"), spanR(10, 15, "LOC"), spanR(22, 28, "LOC"), spanR(52, 60, "PER"), spanR(70, 80, "ORG"),
		textR("sitting"),
	)
	got := regions(t,
		// Car 1% to the right: IoU 90/110. A box where the Person is, but
		// labelled Car: no match. So TP 1, FP 1, FN 1.
		boxR("Car", 1, 0, 10, 10), boxR("Car", 50, 50, 10, 10),
		polyR(0, 0, 2, 0, 2, 2, 1, 2, 1, 1, 0, 1), // J: IoU 2/4 with the L, at the threshold
		pointR(10.5, 10), // 5 px of a 1414 px diagonal
		choiceR("weather", "Rain"),
		choiceR("tags", "Blurry", "Night"), // Jaccard 1/3
		spanR(0, 5, "PER"), spanR(10, 15, "ORG"), spanR(20, 30, "LOC"), spanR(40, 45, "PER"), spanR(50, 55, "PER"),
		textR("kit", "ten"), // "kit\nten" against "sitting": 4 edits of 7
	)
	r, err := quality.Score(cfg, got, ref, quality.Options{})
	require.NoError(t, err)
	require.Len(t, r.Controls, len(cfg.Controls))

	box := control(t, r, "box")
	require.Equal(t, "f1@iou0.5", box.Metric)
	require.Equal(t, 0.5, box.Score)
	require.Equal(t, quality.PRF{TP: 1, FP: 1, FN: 1, Precision: 0.5, Recall: 0.5, F1: 0.5}, box.Shapes.PRF)
	require.InDelta(t, 90.0/110, box.Shapes.MeanIoU, 1e-12)
	require.Equal(t, []quality.Pair{{Got: 0, Ref: 0, IoU: box.Shapes.Pairs[0].IoU}}, box.Shapes.Pairs)
	require.Equal(t, 2, box.Got)
	require.Equal(t, 2, box.Ref)

	outline := control(t, r, "outline")
	require.Equal(t, 1.0, outline.Score, "IoU 0.5 meets the default threshold")
	require.InDelta(t, 0.5, outline.Shapes.MeanIoU, 1e-12)
	require.Equal(t, 2, outline.Shapes.Pairs[0].Got, "indexes into the whole result")
	require.Equal(t, 2, outline.Shapes.Pairs[0].Ref)

	point := control(t, r, "point")
	require.Equal(t, "f1@dist0.02", point.Metric)
	require.Equal(t, 1.0, point.Score)
	require.InDelta(t, 5/math.Hypot(1000, 1000), point.Points.MeanDistance, 1e-12)

	weather := control(t, r, "weather")
	require.Equal(t, "accuracy", weather.Metric)
	require.Equal(t, 0.0, weather.Score)
	require.Equal(t, []string{"Rain"}, weather.Choices.Got)

	tags := control(t, r, "tags")
	require.Equal(t, "jaccard", tags.Metric)
	require.InDelta(t, 1.0/3, tags.Score, 1e-15)

	ner := control(t, r, "ner")
	require.Equal(t, "exact_span_f1", ner.Metric)
	require.InDelta(t, 0.2, ner.Score, 1e-15)
	require.InDelta(t, 0.6, ner.Spans.Overlap.F1, 1e-15)
	require.Equal(t, 8, ner.Spans.Pairs[1].Got, "span pairs index the whole result too")
	require.Equal(t, 8, ner.Spans.Pairs[1].Ref)

	caption := control(t, r, "caption")
	require.Equal(t, "text_similarity", caption.Metric)
	require.InDelta(t, 3.0/7, caption.Score, 1e-15)
	require.Equal(t, quality.TextScore{Similarity: caption.Score, Distance: 4, GotLength: 7, RefLength: 7}, *caption.Text)

	want := (0.5 + 1 + 1 + 0 + 1.0/3 + 0.2 + 3.0/7) / 7
	require.InDelta(t, want, r.Score, 1e-12)
	require.Equal(t, "mean(box:f1@iou0.5,outline:f1@iou0.5,point:f1@dist0.02,weather:accuracy,tags:jaccard,ner:exact_span_f1,caption:text_similarity)", r.Metric)

	// The detail is what a submission stores.
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var back quality.Result
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, r, back)

	t.Run("a stricter threshold drops the polygon pair", func(t *testing.T) {
		r, err := quality.Score(cfg, got, ref, quality.Options{IoUThreshold: 0.75})
		require.NoError(t, err)
		require.Equal(t, 0.0, control(t, r, "outline").Score)
		require.Equal(t, 0.5, control(t, r, "box").Shapes.F1, "box IoU 0.82 still matches")
		require.Equal(t, "f1@iou0.75", control(t, r, "box").Metric)
	})
	t.Run("a tighter tolerance drops the key point", func(t *testing.T) {
		r, err := quality.Score(cfg, got, ref, quality.Options{KeypointTolerance: 0.003})
		require.NoError(t, err)
		require.Equal(t, 0.0, control(t, r, "point").Score)
	})
}

func TestScoreAgainstItselfIsOne(t *testing.T) {
	cfg := scoreCfg(t)
	res := regions(t,
		boxR("Car", 3, 4, 10, 20), boxR("Car", 3, 4, 10, 20), boxR("Person", 60, 10, 5, 5),
		polyR(0, 0, 3, 0, 3, 3, 2, 3, 2, 1, 1, 1, 1, 3, 0, 3),
		pointR(1, 2), pointR(1, 2.1),
		choiceR("weather", "Sunny"), choiceR("tags"),
		spanR(0, 3, "PER"), spanR(2, 9, "ORG"),
		textR("a", "b"),
	)
	r, err := quality.Score(cfg, res, res, quality.Options{})
	require.NoError(t, err)
	require.Equal(t, 1.0, r.Score)
	for _, c := range r.Controls {
		require.Equal(t, 1.0, c.Score, c.Name)
		require.False(t, c.Empty, c.Name)
	}
	box := control(t, r, "box")
	require.Equal(t, []quality.Pair{{Got: 0, Ref: 0, IoU: 1}, {Got: 1, Ref: 1, IoU: 1}, {Got: 2, Ref: 2, IoU: 1}}, box.Shapes.Pairs,
		"two identical boxes pair in order")
}

func TestScoreEmpty(t *testing.T) {
	cfg := scoreCfg(t)
	t.Run("nothing against nothing", func(t *testing.T) {
		r, err := quality.Score(cfg, nil, nil, quality.Options{})
		require.NoError(t, err)
		require.Equal(t, 1.0, r.Score)
		require.Equal(t, "empty", r.Metric)
		for _, c := range r.Controls {
			require.True(t, c.Empty, c.Name)
			require.Equal(t, 1.0, c.Score, c.Name)
		}
		require.Equal(t, 1.0, control(t, r, "box").Shapes.MeanIoU)
		b, err := json.Marshal(r)
		require.NoError(t, err, "no NaN")
		require.NotContains(t, string(b), "NaN")
	})
	t.Run("unused controls stay out of the mean", func(t *testing.T) {
		ref := regions(t, boxR("Car", 0, 0, 10, 10), choiceR("weather", "Sunny"))
		got := regions(t, choiceR("weather", "Sunny"))
		r, err := quality.Score(cfg, got, ref, quality.Options{})
		require.NoError(t, err)
		require.Equal(t, 0.5, r.Score, "box F1 0 and weather 1; the five unused controls do not count")
		require.Equal(t, "mean(box:f1@iou0.5,weather:accuracy)", r.Metric)
		require.True(t, control(t, r, "caption").Empty)
		require.Equal(t, quality.PRF{FN: 1}, control(t, r, "box").Shapes.PRF)
		require.Equal(t, 0.0, control(t, r, "box").Shapes.MeanIoU)
	})
	t.Run("something against nothing", func(t *testing.T) {
		for _, item := range []string{
			boxR("Car", 0, 0, 10, 10), polyR(0, 0, 1, 0, 1, 1), pointR(5, 5), choiceR("weather", "Rain"),
			choiceR("tags", "Snow"), spanR(0, 2, "PER"), textR("hello"),
		} {
			rs := regions(t, item)
			for _, pair := range [][2][]labelconfig.Region{{rs, nil}, {nil, rs}} {
				r, err := quality.Score(cfg, pair[0], pair[1], quality.Options{})
				require.NoError(t, err)
				require.Equal(t, 0.0, r.Score, item)
				require.NotContains(t, r.Metric, "mean(", "one control used")
			}
		}
	})
	t.Run("an empty answer is still an answer", func(t *testing.T) {
		// A multi-choice region with no choices on both sides agrees.
		r, err := quality.Score(cfg, regions(t, choiceR("tags")), regions(t, choiceR("tags")), quality.Options{})
		require.NoError(t, err)
		require.Equal(t, 1.0, r.Score)
		require.Equal(t, "tags:jaccard", r.Metric)
	})
}

func TestScoreRotatedBoxes(t *testing.T) {
	cfg := scoreCfg(t)
	// 200 × 100 px image; the turned box covers 40…50% × 50…70%.
	turned := `{"from_name":"box","to_name":"image","type":"rectanglelabels","original_width":200,"original_height":100,
		"value":{"x":50,"y":50,"width":10,"height":20,"rotation":90,"rectanglelabels":["Car"]}}`
	r, err := quality.Score(cfg, regions(t, turned), regions(t, boxR("Car", 40, 50, 10, 20)), quality.Options{})
	require.NoError(t, err)
	require.Equal(t, 1.0, r.Score)
	require.InDelta(t, 1, control(t, r, "box").Shapes.MeanIoU, 1e-12)
}

func TestScoreErrors(t *testing.T) {
	cfg := scoreCfg(t)
	for _, tc := range []struct {
		name     string
		got, ref []labelconfig.Region
		opts     quality.Options
		contains string
		is       error
	}{
		{name: "unknown control", got: regions(t, `{"from_name":"nope","to_name":"image","type":"choices","value":{"choices":["x"]}}`),
			contains: `result region 0: from_name "nope" is not a control`},
		{name: "wrong type", ref: regions(t, `{"from_name":"box","to_name":"image","type":"choices","value":{"choices":["x"]}}`),
			contains: `reference region 0 (from_name "box"): type "choices", but the control is rectanglelabels`},
		{name: "bad value", got: regions(t, boxR("Car", 0, 0, 10, 10), `{"from_name":"box","to_name":"image","type":"rectanglelabels","value":{"x":1}}`),
			contains: "result region 1"},
		{name: "self-intersecting polygon", got: regions(t, polyR(0, 0, 2, 2, 2, 0, 0, 2)),
			contains: "result region 0", is: quality.ErrSelfIntersecting},
		{name: "flat box", ref: regions(t, boxR("Car", 0, 0, 0, 10)), contains: "reference region 0", is: quality.ErrDegenerate},
		{name: "threshold above 1", opts: quality.Options{IoUThreshold: 1.5}, contains: "IoU threshold"},
		{name: "negative tolerance", opts: quality.Options{KeypointTolerance: -1}, contains: "tolerance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := quality.Score(cfg, tc.got, tc.ref, tc.opts)
			require.ErrorContains(t, err, tc.contains)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
}
