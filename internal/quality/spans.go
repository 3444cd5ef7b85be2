package quality

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/labelq/labelq/internal/matching"
)

// PRF is a detection count with its precision, recall and F1. Got is what is
// scored, Ref what it is scored against (the gold answer, or another
// annotator's result).
//
//	precision = TP / (TP + FP)    recall = TP / (TP + FN)    F1 = 2·TP / (2·TP + FP + FN)
//
// Nothing on either side is perfect agreement: all three are 1. Nothing got
// against something expected has precision, recall and F1 0, and so has
// something got against nothing expected.
type PRF struct {
	TP        int     `json:"tp"`
	FP        int     `json:"fp"`
	FN        int     `json:"fn"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// newPRF computes the ratios of tp matches among got and ref items.
func newPRF(tp, got, ref int) PRF {
	p := PRF{TP: tp, FP: got - tp, FN: ref - tp}
	if got == 0 && ref == 0 {
		p.Precision, p.Recall, p.F1 = 1, 1, 1
		return p
	}
	if got > 0 {
		p.Precision = float64(tp) / float64(got)
	}
	if ref > 0 {
		p.Recall = float64(tp) / float64(ref)
	}
	p.F1 = 2 * float64(tp) / float64(got+ref)
	return p
}

// Span is a labelled text span: code points [Start, End) with its labels
// (value.labels of a labels region). Two spans have the same label when
// their label sets are equal.
type Span struct {
	Start, End int
	Labels     []string
}

// SpanScore is span F1 both ways.
type SpanScore struct {
	// Exact counts a got span as found when a ref span has the same start,
	// end and labels, each ref span found at most once.
	Exact PRF `json:"exact"`
	// Overlap counts a got span as found when a ref span with the same
	// labels overlaps it by at least one code point, one-to-one: the most
	// pairs there can be, and among as many pairs those of the highest total
	// overlap (intersection over union of the two ranges, to 1e-3).
	Overlap PRF `json:"overlap"`
	// Pairs are the overlap matches: indexes into got and ref, with the
	// range IoU of each pair.
	Pairs []Pair `json:"pairs,omitempty"`
}

// Pair is one match between a got and a ref item, by index.
type Pair struct {
	Got int `json:"got"`
	Ref int `json:"ref"`
	// IoU is the pair's intersection over union (for key points, 0; see
	// Distance).
	IoU float64 `json:"iou,omitempty"`
	// Distance is a key point pair's distance as a fraction of the image
	// diagonal.
	Distance float64 `json:"distance,omitempty"`
}

// labelKey is a label set as a comparable value.
func labelKey(labels []string) string {
	l := slices.Clone(labels)
	slices.Sort(l)
	l = slices.Compact(l)
	return strings.Join(l, "\x00")
}

// SpanF1 scores got spans against ref spans (see SpanScore). The error is
// the assignment's, for more than matching.MaxAssignSide spans on a side.
func SpanF1(got, ref []Span) (SpanScore, error) {
	gk, rk := make([]string, len(got)), make([]string, len(ref))
	for i, s := range got {
		gk[i] = labelKey(s.Labels)
	}
	for i, s := range ref {
		rk[i] = labelKey(s.Labels)
	}

	type exactKey struct {
		start, end int
		labels     string
	}
	want := make(map[exactKey]int, len(ref))
	for i, s := range ref {
		want[exactKey{s.Start, s.End, rk[i]}]++
	}
	exact := 0
	for i, s := range got {
		k := exactKey{s.Start, s.End, gk[i]}
		if want[k] > 0 {
			want[k]--
			exact++
		}
	}

	// Overlap: each pair weighs the same large unit, plus its IoU in
	// thousandths, the unit exceeding the sum of the IoU parts of any
	// matching, so the most pairs win first and overlap decides among them.
	unit := int64(1000*min(len(got), len(ref)) + 1)
	var edges []matching.AssignEdge
	for i, g := range got {
		for j, r := range ref {
			if gk[i] != rk[j] {
				continue
			}
			if iou := spanIoU(g, r); iou > 0 {
				edges = append(edges, matching.AssignEdge{Row: i, Col: j, Weight: unit + int64(math.Round(iou*1000))})
			}
		}
	}
	chosen, err := matching.Assign(context.Background(), len(got), len(ref), edges)
	if err != nil {
		return SpanScore{}, fmt.Errorf("match spans: %w", err)
	}
	out := SpanScore{
		Exact:   newPRF(exact, len(got), len(ref)),
		Overlap: newPRF(len(chosen), len(got), len(ref)),
	}
	for _, e := range chosen {
		out.Pairs = append(out.Pairs, Pair{Got: e.Row, Ref: e.Col, IoU: spanIoU(got[e.Row], ref[e.Col])})
	}
	return out, nil
}

// spanIoU is the intersection over union of two code point ranges, 0 when
// they do not overlap.
func spanIoU(a, b Span) float64 {
	inter := min(a.End, b.End) - max(a.Start, b.Start)
	if inter <= 0 {
		return 0
	}
	union := max(a.End, b.End) - min(a.Start, b.Start)
	return float64(inter) / float64(union)
}
