package quality_test

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/quality"
)

// TestCohenKappaTable checks κ on published 2 × 2 tables: the textbook
// 20/5/10/15 (P_o = 0.7, P_e = 0.5, κ = 0.4) and Wikipedia's two tables with
// the same P_o = 0.6 and different marginals (κ = 0.06/0.46 and 0.14/0.54).
func TestCohenKappaTable(t *testing.T) {
	for _, tc := range []struct {
		table              [][]int
		kappa, obs, expect float64
	}{
		{[][]int{{20, 5}, {10, 15}}, 0.4, 0.7, 0.5},
		{[][]int{{45, 15}, {25, 15}}, 0.06 / 0.46, 0.6, 0.54},
		{[][]int{{25, 35}, {5, 35}}, 0.14 / 0.54, 0.6, 0.46},
		{[][]int{{10, 0}, {0, 10}}, 1, 1, 0.5},     // perfect agreement
		{[][]int{{0, 10}, {10, 0}}, -1, 0, 0.5},    // perfect disagreement
		{[][]int{{25, 25}, {25, 25}}, 0, 0.5, 0.5}, // chance
	} {
		k, err := quality.CohenKappaTable(tc.table)
		require.NoError(t, err)
		require.InDelta(t, tc.kappa, k.Kappa, 1e-12, "%v", tc.table)
		require.InDelta(t, tc.obs, k.Observed, 1e-12)
		require.InDelta(t, tc.expect, k.Expected, 1e-12)
		require.False(t, k.Degenerate)
	}
}

func TestCohenKappaFromLabels(t *testing.T) {
	// The 20/5/10/15 table as 50 paired labels, shuffled.
	var a, b []string
	add := func(n int, x, y string) {
		for range n {
			a, b = append(a, x), append(b, y)
		}
	}
	add(20, "yes", "yes")
	add(5, "yes", "no")
	add(10, "no", "yes")
	add(15, "no", "no")
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(a), func(i, j int) { a[i], a[j], b[i], b[j] = a[j], a[i], b[j], b[i] })
	k, err := quality.CohenKappa(a, b)
	require.NoError(t, err)
	require.InDelta(t, 0.4, k.Kappa, 1e-12)
	require.Equal(t, 50, k.Items)

	t.Run("a category only one rater uses", func(t *testing.T) {
		// A: x x y y, B: x x y z. P_o = 3/4; A's marginals x 2, y 2; B's x 2,
		// y 1, z 1: P_e = (2·2 + 2·1 + 0·1)/16 = 6/16; κ = (12 − 6)/(16 − 6).
		k, err := quality.CohenKappa([]string{"x", "x", "y", "y"}, []string{"x", "x", "y", "z"})
		require.NoError(t, err)
		require.InDelta(t, 0.6, k.Kappa, 1e-12)
	})
	t.Run("one category throughout is degenerate", func(t *testing.T) {
		k, err := quality.CohenKappa([]int{3, 3, 3}, []int{3, 3, 3})
		require.NoError(t, err)
		require.Equal(t, quality.Kappa{Kappa: 1, Observed: 1, Expected: 1, Items: 3, Degenerate: true}, k)
	})
	t.Run("errors", func(t *testing.T) {
		_, err := quality.CohenKappa([]int{1}, []int{1, 2})
		require.Error(t, err)
		_, err = quality.CohenKappa([]int{}, []int{})
		require.ErrorIs(t, err, quality.ErrNoRatings)
		_, err = quality.CohenKappaTable([][]int{{1, 2}, {3}})
		require.Error(t, err)
		_, err = quality.CohenKappaTable([][]int{{1, -2}, {3, 4}})
		require.Error(t, err)
	})
}

// fleissWikipedia is the worked example of Wikipedia's "Fleiss' kappa"
// article: 10 subjects, 14 raters, 5 categories; P̄ = 0.378, P̄_e = 0.213,
// κ = 0.210.
var fleissWikipedia = [][]int{
	{0, 0, 0, 0, 14},
	{0, 2, 6, 4, 2},
	{0, 0, 3, 5, 6},
	{0, 3, 9, 2, 0},
	{2, 2, 8, 1, 1},
	{7, 7, 0, 0, 0},
	{3, 2, 6, 3, 0},
	{2, 5, 3, 2, 2},
	{6, 5, 2, 1, 0},
	{0, 2, 2, 3, 7},
}

func TestFleissKappa(t *testing.T) {
	t.Run("wikipedia", func(t *testing.T) {
		k, err := quality.FleissKappa(fleissWikipedia)
		require.NoError(t, err)
		require.InDelta(t, 0.378, k.Observed, 5e-4)
		require.InDelta(t, 0.213, k.Expected, 5e-4)
		require.InDelta(t, 0.210, k.Kappa, 5e-4)
		require.Equal(t, 10, k.Items)
	})
	t.Run("two raters is Scott's pi", func(t *testing.T) {
		// The 20/5/10/15 table as subjects: pooled marginals 0.55/0.45, so
		// P_e = 0.505 and π = (0.7 − 0.505)/(1 − 0.505) = 13/33.
		var counts [][]int
		for range 20 {
			counts = append(counts, []int{2, 0})
		}
		for range 15 {
			counts = append(counts, []int{1, 1})
		}
		for range 15 {
			counts = append(counts, []int{0, 2})
		}
		k, err := quality.FleissKappa(counts)
		require.NoError(t, err)
		require.InDelta(t, 13.0/33, k.Kappa, 1e-12)
	})
	t.Run("one category throughout is degenerate", func(t *testing.T) {
		k, err := quality.FleissKappa([][]int{{0, 3}, {0, 3}})
		require.NoError(t, err)
		require.Equal(t, quality.Kappa{Kappa: 1, Observed: 1, Expected: 1, Items: 2, Degenerate: true}, k)
	})
	t.Run("errors", func(t *testing.T) {
		for name, counts := range map[string][][]int{
			"no subjects":       nil,
			"one rater":         {{1, 0}, {0, 1}},
			"unequal raters":    {{1, 2}, {1, 1}},
			"ragged":            {{1, 2}, {3}},
			"negative":          {{3, -1}, {1, 1}},
			"too many per cell": {{1 << 21, 0}},
		} {
			_, err := quality.FleissKappa(counts)
			require.Error(t, err, name)
		}
	})
}

// krippendorffC is the reliability data of example C of Krippendorff's
// "Computing Krippendorff's Alpha-Reliability" (2011): 4 observers, 12
// units, missing values. He reports α = 0.743 (nominal) and 0.849 (interval).
func krippendorffC() [][]float64 {
	m := math.NaN()
	return [][]float64{
		{1, 2, 3, 3, 2, 1, 4, 1, 2, m, m, m},
		{1, 2, 3, 3, 2, 2, 4, 1, 2, 5, m, 3},
		{m, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, m},
		{1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, m},
	}
}

// bruteAlpha computes α by the book: the full coincidence matrix over the
// distinct values, every ordered pair of values within a unit, and the
// difference function applied cell by cell.
func bruteAlpha(data [][]float64, level quality.Level) float64 {
	var values []float64
	index := map[float64]int{}
	units := 0
	for _, row := range data {
		units = max(units, len(row))
		for _, v := range row {
			if _, ok := index[v]; !ok && !math.IsNaN(v) {
				index[v] = len(values)
				values = append(values, v)
			}
		}
	}
	k := len(values)
	o := make([][]float64, k)
	for i := range o {
		o[i] = make([]float64, k)
	}
	for u := range units {
		var vs []float64
		for _, row := range data {
			if u < len(row) && !math.IsNaN(row[u]) {
				vs = append(vs, row[u])
			}
		}
		if len(vs) < 2 {
			continue
		}
		for i := range vs {
			for j := range vs {
				if i != j {
					o[index[vs[i]]][index[vs[j]]] += 1 / float64(len(vs)-1)
				}
			}
		}
	}
	delta := func(c, k float64) float64 {
		if level == quality.Nominal {
			if c == k {
				return 0
			}
			return 1
		}
		return (c - k) * (c - k)
	}
	nc := make([]float64, k)
	var n float64
	for c := range o {
		for kk := range o[c] {
			nc[c] += o[c][kk]
		}
		n += nc[c]
	}
	var do, de float64
	for c := range k {
		for kk := range k {
			do += o[c][kk] * delta(values[c], values[kk])
			de += nc[c] * nc[kk] * delta(values[c], values[kk])
		}
	}
	return 1 - (n-1)*do/de
}

func TestKrippendorffAlpha(t *testing.T) {
	t.Run("Krippendorff's example C", func(t *testing.T) {
		data := krippendorffC()
		nominal, err := quality.KrippendorffAlpha(data, quality.Nominal)
		require.NoError(t, err)
		require.InDelta(t, 0.743, nominal.Alpha, 5e-4)
		require.InDelta(t, bruteAlpha(data, quality.Nominal), nominal.Alpha, 1e-12)
		require.Equal(t, 11, nominal.Units, "unit 12 has one value")
		require.Equal(t, 40, nominal.Values)

		interval, err := quality.KrippendorffAlpha(data, quality.Interval)
		require.NoError(t, err)
		require.InDelta(t, 0.849, interval.Alpha, 5e-4)
		require.InDelta(t, bruteAlpha(data, quality.Interval), interval.Alpha, 1e-12)
		require.InDelta(t, 1-interval.Observed/interval.Expected, interval.Alpha, 1e-12)
	})
	t.Run("random data against the coincidence matrix", func(t *testing.T) {
		compared := 0
		for seed := range uint64(300) {
			rng := rand.New(rand.NewPCG(seed, 3))
			coders, units := 2+rng.IntN(5), 1+rng.IntN(20)
			cats := 2 + rng.IntN(5)
			data := make([][]float64, coders)
			for c := range data {
				data[c] = make([]float64, units-rng.IntN(units)) // ragged rows: missing at the end
				for u := range data[c] {
					if rng.IntN(4) == 0 {
						data[c][u] = math.NaN()
					} else {
						data[c][u] = float64(rng.IntN(cats)) * 1.5
					}
				}
			}
			for _, level := range []quality.Level{quality.Nominal, quality.Interval} {
				a, err := quality.KrippendorffAlpha(data, level)
				if err != nil {
					require.ErrorIs(t, err, quality.ErrNoRatings, "seed %d", seed)
					continue
				}
				if a.Degenerate {
					require.Equal(t, 1.0, a.Alpha)
					continue
				}
				require.InDelta(t, bruteAlpha(data, level), a.Alpha, 1e-9, "seed %d %v", seed, level)
				compared++
			}
		}
		require.Greater(t, compared, 400, "most random inputs have a defined alpha")
	})
	t.Run("perfect agreement across values is 1", func(t *testing.T) {
		a, err := quality.KrippendorffAlpha([][]float64{{1, 2, 3}, {1, 2, 3}}, quality.Interval)
		require.NoError(t, err)
		require.Equal(t, 1.0, a.Alpha)
		require.False(t, a.Degenerate)
	})
	t.Run("one value throughout is degenerate", func(t *testing.T) {
		a, err := quality.KrippendorffAlpha([][]float64{{0.1, 0.1, math.NaN()}, {0.1, 0.1, 0.1}}, quality.Interval)
		require.NoError(t, err)
		require.Equal(t, quality.Alpha{Alpha: 1, Units: 2, Values: 4, Degenerate: true}, a)
	})
	t.Run("errors", func(t *testing.T) {
		_, err := quality.KrippendorffAlpha([][]float64{{1, math.NaN()}, {math.NaN(), 2}}, quality.Nominal)
		require.ErrorIs(t, err, quality.ErrNoRatings)
		_, err = quality.KrippendorffAlpha(nil, quality.Nominal)
		require.ErrorIs(t, err, quality.ErrNoRatings)
		_, err = quality.KrippendorffAlpha([][]float64{{1, math.Inf(1)}, {1, 2}}, quality.Interval)
		require.Error(t, err)
		_, err = quality.KrippendorffAlpha([][]float64{{1}, {1}}, quality.Level(9))
		require.Error(t, err)
	})
}

// krippendorffAnswers is example C as answers: annotators 10, 20, 30, 40,
// items 1…12, values "1"…"5".
func krippendorffAnswers() []quality.Answer {
	var out []quality.Answer
	for c, row := range krippendorffC() {
		for u, v := range row {
			if !math.IsNaN(v) {
				out = append(out, quality.Answer{Item: int64(u + 1), Annotator: int64(10 * (c + 1)), Value: strconv.Itoa(int(v))})
			}
		}
	}
	return out
}

func TestRatings(t *testing.T) {
	answers := krippendorffAnswers()
	rand.New(rand.NewPCG(4, 5)).Shuffle(len(answers), func(i, j int) { answers[i], answers[j] = answers[j], answers[i] })
	r, err := quality.NewRatings(answers)
	require.NoError(t, err)
	require.Equal(t, []int64{10, 20, 30, 40}, r.Annotators)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, r.Items)
	require.Equal(t, []string{"1", "2", "3", "4", "5"}, r.Categories)
	require.Equal(t, []int{quality.NoAnswer, 2, quality.NoAnswer, quality.NoAnswer}, r.Codes[11], "item 12: only annotator 20, value 3")

	t.Run("krippendorff from answers", func(t *testing.T) {
		a, err := quality.KrippendorffAlpha(r.ReliabilityData(), quality.Nominal)
		require.NoError(t, err)
		require.InDelta(t, 0.743, a.Alpha, 5e-4)
	})
	t.Run("category counts", func(t *testing.T) {
		counts := r.CategoryCounts()
		require.Equal(t, []int{0, 0, 4, 0, 0}, counts[2], "item 3: all four said 3")
		require.Equal(t, []int{1, 1, 1, 1, 0}, counts[5], "item 6: 1, 2, 3, 4")
		// Fleiss needs equal numbers of answers per item: items 2–9 have four.
		k, err := quality.FleissKappa(counts[1:9])
		require.NoError(t, err)
		_, err = quality.FleissKappa(counts)
		require.Error(t, err, "items 1, 10, 11, 12 have fewer answers")
		require.Greater(t, k.Kappa, 0.0)
	})
	t.Run("fleiss from answers", func(t *testing.T) {
		var answers []quality.Answer
		for item, row := range fleissWikipedia {
			rater := 0
			for cat, n := range row {
				for range n {
					answers = append(answers, quality.Answer{Item: int64(item), Annotator: int64(rater), Value: string(rune('A' + cat))})
					rater++
				}
			}
		}
		r, err := quality.NewRatings(answers)
		require.NoError(t, err)
		k, err := quality.FleissKappa(r.CategoryCounts())
		require.NoError(t, err)
		require.InDelta(t, 0.210, k.Kappa, 5e-4)
	})
	t.Run("votes", func(t *testing.T) {
		votes := r.Votes()
		require.Len(t, votes, len(answers))
		m, err := quality.NewVoteMatrix(len(r.Items), len(r.Annotators), len(r.Categories), votes)
		require.NoError(t, err)
		require.Equal(t, 1, m.ItemVotes(11))
	})
	t.Run("twice", func(t *testing.T) {
		_, err := quality.NewRatings([]quality.Answer{{1, 2, "a"}, {1, 2, "b"}})
		require.Error(t, err)
	})
}

func TestPairwiseAgreement(t *testing.T) {
	r, err := quality.NewRatings(krippendorffAnswers())
	require.NoError(t, err)
	m := r.PairwiseAgreement()
	require.Equal(t, []int64{10, 20, 30, 40}, m.Annotators)

	// By hand: annotators 10 and 20 both answered items 1–9, and differ on
	// item 6 only: P_o = 8/9. Marginals over those items: 10 gave 1×3, 2×3,
	// 3×2, 4×1; 20 gave 1×2, 2×4, 3×2, 4×1: P_e = (6 + 12 + 4 + 1)/81, so
	// κ = (72 − 23)/(81 − 23) = 49/58.
	ab := m.Pairs[0][1]
	require.Equal(t, 9, ab.Items)
	require.InDelta(t, 8.0/9, ab.Observed, 1e-12)
	require.InDelta(t, 49.0/58, ab.Kappa, 1e-12)
	require.Equal(t, ab, m.Pairs[1][0], "symmetric")

	// Every pair against CohenKappa on the items both answered.
	for a := range m.Annotators {
		for b := range m.Annotators {
			var x, y []int
			for _, row := range r.Codes {
				if row[a] != quality.NoAnswer && row[b] != quality.NoAnswer {
					x, y = append(x, row[a]), append(y, row[b])
				}
			}
			k, err := quality.CohenKappa(x, y)
			require.NoError(t, err)
			p := m.Pairs[a][b]
			require.Equal(t, len(x), p.Items)
			require.InDelta(t, k.Kappa, p.Kappa, 1e-12, "%d × %d", a, b)
			require.InDelta(t, k.Observed, p.Observed, 1e-12)
		}
		require.Equal(t, 1.0, m.Pairs[a][a].Kappa)
	}

	t.Run("no shared items", func(t *testing.T) {
		r, err := quality.NewRatings([]quality.Answer{{1, 1, "a"}, {2, 2, "b"}, {3, 1, "a"}, {3, 3, "a"}})
		require.NoError(t, err)
		m := r.PairwiseAgreement()
		require.Equal(t, quality.PairAgreement{}, m.Pairs[0][1])
		require.Equal(t, quality.PairAgreement{Items: 1, Observed: 1, Kappa: 1, Degenerate: true}, m.Pairs[0][2])
	})
}
