package quality_test

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/quality"
)

// BenchmarkScoreBoxes scores 300 boxes against 300 (a crowded image: every
// reference box has a jittered copy, plus neighbours it overlaps), the whole
// of Score on decoded regions, against the usual shortcut timed in the same
// run: IoU of every pair by the interval formula, then greedy matching,
// highest IoU first. It also reports how many pairs each finds.
func BenchmarkScoreBoxes(b *testing.B) {
	cfg := scoreCfg(b)
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 300
	var refItems, gotItems []string
	type box struct{ x, y, w, h float64 }
	var refs, gots []box
	for range n {
		r := box{rng.Float64() * 90, rng.Float64() * 90, 3 + rng.Float64()*7, 3 + rng.Float64()*7}
		g := box{r.x + rng.NormFloat64()*0.8, r.y + rng.NormFloat64()*0.8, r.w * (0.9 + 0.2*rng.Float64()), r.h * (0.9 + 0.2*rng.Float64())}
		g.x, g.y = min(max(g.x, 0), 100-g.w), min(max(g.y, 0), 100-g.h)
		refs, gots = append(refs, r), append(gots, g)
		refItems = append(refItems, boxR("Car", r.x, r.y, r.w, r.h))
		gotItems = append(gotItems, boxR("Car", g.x, g.y, g.w, g.h))
	}
	ref, err := labelconfig.ParseResult([]byte("[" + strings.Join(refItems, ",") + "]"))
	if err != nil {
		b.Fatal(err)
	}
	got, err := labelconfig.ParseResult([]byte("[" + strings.Join(gotItems, ",") + "]"))
	if err != nil {
		b.Fatal(err)
	}

	greedy := func() int {
		type pair struct {
			i, j int
			iou  float64
		}
		var pairs []pair
		for i, g := range gots {
			for j, r := range refs {
				iw := min(g.x+g.w, r.x+r.w) - max(g.x, r.x)
				ih := min(g.y+g.h, r.y+r.h) - max(g.y, r.y)
				if iw <= 0 || ih <= 0 {
					continue
				}
				inter := iw * ih
				if v := inter / (g.w*g.h + r.w*r.h - inter); v >= quality.DefaultIoUThreshold {
					pairs = append(pairs, pair{i, j, v})
				}
			}
		}
		slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(b.iou, a.iou) })
		usedG, usedR := make([]bool, n), make([]bool, n)
		tp := 0
		for _, p := range pairs {
			if !usedG[p.i] && !usedR[p.j] {
				usedG[p.i], usedR[p.j] = true, true
				tp++
			}
		}
		return tp
	}
	start := time.Now()
	const baseRuns = 20
	var greedyTP int
	for range baseRuns {
		greedyTP = greedy()
	}
	base := float64(time.Since(start).Nanoseconds()) / baseRuns

	var tp int
	b.ResetTimer()
	for b.Loop() {
		r, err := quality.Score(cfg, got, ref, quality.Options{})
		if err != nil {
			b.Fatal(err)
		}
		tp = r.Controls[0].Shapes.TP
	}
	b.StopTimer()
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(per/1e6, "ms/op-exact")
	b.ReportMetric(base/1e6, "ms/op-greedy")
	b.ReportMetric(per/base, "exact/greedy-time")
	b.ReportMetric(float64(tp), "tp-exact")
	b.ReportMetric(float64(greedyTP), "tp-greedy")
}
