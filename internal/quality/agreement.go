package quality

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Agreement statistics between annotators over nominal (and, for
// Krippendorff's α, interval) labels. Every coefficient here is
//
//	(observed agreement − expected agreement) / (1 − expected agreement)
//
// in one form or another, and is 0/0 when the expected agreement is 1: every
// rating fell in one category (or, for α, every value is the same), so chance
// alone would have produced the same perfect agreement. The functions then
// return 1 with Degenerate set rather than NaN: the raters did agree on every
// item, and a dashboard or a threshold check needs a number. Callers that
// must tell "agreed, but there was nothing to disagree about" apart read
// Degenerate. No function returns NaN or ±Inf.

// ErrNoRatings reports input with nothing to compare: no items, or no unit
// with two values.
var ErrNoRatings = errors.New("no ratings to compare")

// Kappa is a κ coefficient with its parts. Observed and Expected are the
// observed and chance agreement, proportions in [0, 1].
type Kappa struct {
	Kappa    float64 `json:"kappa"`
	Observed float64 `json:"observed"`
	Expected float64 `json:"expected"`
	// Items is how many items (or subjects) the coefficient is over.
	Items int `json:"items"`
	// Degenerate is set when Expected is 1 (all ratings in one category):
	// κ is 0/0 there and is reported as 1.
	Degenerate bool `json:"degenerate,omitempty"`
}

// CohenKappa is Cohen's κ for two raters who each labelled the same items:
// a[i] and b[i] are their labels of item i. The categories are the values
// that occur in either slice.
func CohenKappa[T comparable](a, b []T) (Kappa, error) {
	if len(a) != len(b) {
		return Kappa{}, fmt.Errorf("cohen's kappa: %d labels against %d; each item needs one label from each rater", len(a), len(b))
	}
	codes := make(map[T]int)
	code := func(v T) int {
		c, ok := codes[v]
		if !ok {
			c = len(codes)
			codes[v] = c
		}
		return c
	}
	ca, cb := make([]int, len(a)), make([]int, len(b))
	for i := range a {
		ca[i], cb[i] = code(a[i]), code(b[i])
	}
	k := len(codes)
	table := make([][]int, k)
	for i := range table {
		table[i] = make([]int, k)
	}
	for i := range ca {
		table[ca[i]][cb[i]]++
	}
	return CohenKappaTable(table)
}

// CohenKappaTable is Cohen's κ from a k × k contingency table: table[i][j]
// counts the items rater A put in category i and rater B in category j.
// With N items, row sums r_i and column sums c_i,
//
//	P_o = Σ table[i][i] / N,   P_e = Σ r_i·c_i / N²,   κ = (P_o − P_e) / (1 − P_e)
//
// computed from exact integer sums, κ = (N·Σ table[i][i] − Σ r_i·c_i) /
// (N² − Σ r_i·c_i), so there is a single rounding. P_e = 1 only when both
// raters put every item in the same one category, so P_o = 1 as well: κ is
// reported as 1, Degenerate.
func CohenKappaTable(table [][]int) (Kappa, error) {
	k := len(table)
	rows := make([]int64, k)
	cols := make([]int64, k)
	var n, diag int64
	for i, row := range table {
		if len(row) != k {
			return Kappa{}, fmt.Errorf("cohen's kappa: row %d has %d cells; the table must be %d × %d", i, len(row), k, k)
		}
		for j, c := range row {
			if c < 0 {
				return Kappa{}, fmt.Errorf("cohen's kappa: cell [%d][%d] = %d is negative", i, j, c)
			}
			rows[i] += int64(c)
			cols[j] += int64(c)
			n += int64(c)
			if i == j {
				diag += int64(c)
			}
		}
	}
	if n == 0 {
		return Kappa{}, fmt.Errorf("cohen's kappa: %w", ErrNoRatings)
	}
	if n > 1<<31 {
		return Kappa{}, fmt.Errorf("cohen's kappa: %d items; at most %d", n, int64(1)<<31)
	}
	var chance int64 // Σ r_i·c_i ≤ N² ≤ 2^62
	for i := range rows {
		chance += rows[i] * cols[i]
	}
	nn := n * n
	out := Kappa{
		Observed: float64(diag) / float64(n),
		Expected: float64(chance) / float64(nn),
		Items:    int(n),
	}
	if chance == nn {
		out.Kappa, out.Degenerate = 1, true
		return out, nil
	}
	out.Kappa = float64(n*diag-chance) / float64(nn-chance)
	return out, nil
}

// FleissKappa is Fleiss' κ for N subjects each rated by the same number n ≥
// 2 of raters into k categories: counts[i][j] is how many raters put subject
// i in category j, and every row sums to n. (Krippendorff's α takes
// subjects rated by different numbers of raters.) With p_j the share of all
// ratings in category j,
//
//	P_i = (Σ_j counts[i][j]² − n) / (n(n − 1)),   P̄ = mean P_i,
//	P̄_e = Σ_j p_j²,   κ = (P̄ − P̄_e) / (1 − P̄_e)
//
// P̄_e = 1 only when every rating is in one category, which makes P̄ = 1: κ
// is reported as 1, Degenerate.
func FleissKappa(counts [][]int) (Kappa, error) {
	if len(counts) == 0 {
		return Kappa{}, fmt.Errorf("fleiss' kappa: %w", ErrNoRatings)
	}
	if len(counts) > maxFleiss {
		return Kappa{}, fmt.Errorf("fleiss' kappa: %d subjects; at most %d", len(counts), maxFleiss)
	}
	k := len(counts[0])
	totals := make([]int64, k)
	var raters, squares int64
	for i, row := range counts {
		if len(row) != k {
			return Kappa{}, fmt.Errorf("fleiss' kappa: subject %d has %d categories, subject 0 has %d", i, len(row), k)
		}
		var sum int64
		for j, c := range row {
			if c < 0 || c > maxFleiss {
				return Kappa{}, fmt.Errorf("fleiss' kappa: subject %d category %d count %d is outside 0…%d", i, j, c, maxFleiss)
			}
			sum += int64(c)
		}
		if i == 0 {
			raters = sum
		} else if sum != raters {
			return Kappa{}, fmt.Errorf("fleiss' kappa: subject %d has %d ratings, subject 0 has %d; every subject needs the same number (use Krippendorff's alpha otherwise)", i, sum, raters)
		}
		if raters > maxFleiss {
			return Kappa{}, fmt.Errorf("fleiss' kappa: %d ratings per subject; at most %d", raters, maxFleiss)
		}
		for j, c := range row {
			squares += int64(c) * int64(c) // ≤ raters² per subject
			totals[j] += int64(c)
		}
	}
	if raters < 2 {
		return Kappa{}, fmt.Errorf("fleiss' kappa: %d rater per subject; it takes at least 2", raters)
	}
	subjects := int64(len(counts))
	all := subjects * raters
	var chance float64
	for _, t := range totals {
		p := float64(t) / float64(all)
		chance += p * p
	}
	out := Kappa{
		Observed: float64(squares-all) / float64(all*(raters-1)),
		Expected: chance,
		Items:    len(counts),
	}
	if slices.Contains(totals, all) { // every rating in one category
		out.Kappa, out.Degenerate, out.Expected = 1, true, 1
		return out, nil
	}
	out.Kappa = (out.Observed - out.Expected) / (1 - out.Expected)
	return out, nil
}

// maxFleiss bounds FleissKappa's subjects and ratings per subject, so its
// integer sums stay below 2^60.
const maxFleiss = 1 << 20

// Level is the measurement level of Krippendorff's α: it chooses the
// difference function δ² between two values.
type Level int

// Measurement levels.
const (
	// Nominal: values are category codes; δ²(c, k) is 0 when c = k and 1
	// otherwise.
	Nominal Level = iota + 1
	// Interval: values are numbers on an interval scale; δ²(c, k) = (c − k)².
	Interval
)

func (l Level) String() string {
	switch l {
	case Nominal:
		return "nominal"
	case Interval:
		return "interval"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// Alpha is Krippendorff's α with its parts.
type Alpha struct {
	Alpha float64 `json:"alpha"`
	// Observed and Expected are the disagreements D_o and D_e, α = 1 − D_o/D_e.
	Observed float64 `json:"observed"`
	Expected float64 `json:"expected"`
	// Units is how many units had two or more values (the pairable ones),
	// Values how many values those units hold (Krippendorff's n).
	Units  int `json:"units"`
	Values int `json:"values"`
	// Degenerate is set when every pairable value is the same, so D_e = 0:
	// α is 0/0 there and is reported as 1.
	Degenerate bool `json:"degenerate,omitempty"`
}

// KrippendorffAlpha is Krippendorff's α for reliability data: data[c][u] is
// coder c's value for unit u, NaN (math.NaN()) where the coder gave none. Rows
// may differ in length; a short row is missing the units past its end.
// Units with fewer than two values are not pairable and take no part. In the
// terms of Krippendorff's "Computing Krippendorff's Alpha-Reliability"
// (2011): with m_u values in unit u and n = Σ m_u over the pairable units,
// the coincidence matrix o_ck = Σ_u (pairs of values c, k in u)/(m_u − 1),
// n_c = Σ_k o_ck, and
//
//	D_o = (1/n) Σ_c Σ_k o_ck δ²(c, k),   D_e = 1/(n(n − 1)) Σ_c Σ_k n_c n_k δ²(c, k)
//
// Neither matrix is built: for nominal data Σ_k o_ck δ² per unit is
// (m_u² − Σ_c m_uc²)/(m_u − 1), m_uc the unit's values equal to c, and for
// interval data Σ_{i≠j} (v_i − v_j)² = 2m Σ (v_i − v̄)², so the cost is
// O(values) (a map of categories for nominal data). When every pairable
// value is the same, D_e = 0: α is reported as 1, Degenerate. With no
// pairable unit the error wraps ErrNoRatings.
func KrippendorffAlpha(data [][]float64, level Level) (Alpha, error) {
	if level != Nominal && level != Interval {
		return Alpha{}, fmt.Errorf("krippendorff's alpha: unknown level %v", level)
	}
	unitCount := 0
	for c, row := range data {
		unitCount = max(unitCount, len(row))
		for u, v := range row {
			if math.IsInf(v, 0) {
				return Alpha{}, fmt.Errorf("krippendorff's alpha: coder %d unit %d is %v; values must be finite (NaN for missing)", c, u, v)
			}
		}
	}
	vals := make([]float64, 0, len(data))
	var pooled []float64
	var observed float64 // Σ_c Σ_k o_ck δ²(c, k)
	units := 0
	for u := range unitCount {
		vals = vals[:0]
		for _, row := range data {
			if u < len(row) && !math.IsNaN(row[u]) {
				vals = append(vals, row[u])
			}
		}
		m := len(vals)
		if m < 2 {
			continue
		}
		units++
		pooled = append(pooled, vals...)
		observed += pairDisagreement(vals, level) / float64(m-1)
	}
	n := len(pooled)
	if n == 0 {
		return Alpha{}, fmt.Errorf("krippendorff's alpha: %w (no unit has two values)", ErrNoRatings)
	}
	out := Alpha{Units: units, Values: n, Observed: observed / float64(n)}
	if allEqual(pooled) {
		out.Alpha, out.Degenerate = 1, true
		return out, nil
	}
	expected := pairDisagreement(pooled, level) // Σ_c Σ_k n_c n_k δ²(c, k)
	out.Expected = expected / (float64(n) * float64(n-1))
	out.Alpha = 1 - float64(n-1)*observed/expected
	return out, nil
}

// pairDisagreement is Σ over ordered pairs i ≠ j of δ²(v_i, v_j).
func pairDisagreement(vs []float64, level Level) float64 {
	m := float64(len(vs))
	if allEqual(vs) {
		return 0
	}
	if level == Nominal {
		counts := make(map[float64]int, 8)
		for _, v := range vs {
			counts[v]++
		}
		same := 0.0
		for _, c := range counts {
			same += float64(c) * float64(c)
		}
		return m*m - same
	}
	var mean float64
	for _, v := range vs {
		mean += v
	}
	mean /= m
	var ss float64
	for _, v := range vs {
		d := v - mean
		ss += d * d
	}
	return 2 * m * ss
}

func allEqual(vs []float64) bool {
	for _, v := range vs[1:] {
		if v != vs[0] {
			return false
		}
	}
	return true
}

// Ratings are nominal answers arranged for the agreement statistics: items ×
// annotators, each cell a category or NoAnswer. NewRatings builds them from
// a flat list of answers; Items, Annotators and Categories are sorted, so
// the same answers give the same Ratings whatever their order.
type Ratings struct {
	Items      []int64
	Annotators []int64
	Categories []string
	// Codes[i][a] is annotator a's answer on item i, an index into
	// Categories, or NoAnswer.
	Codes [][]int
}

// NoAnswer is the code of a cell of Ratings where the annotator gave no
// answer.
const NoAnswer = -1

// Answer is one annotator's nominal answer on one item: for example, an
// annotator's choice (the value of a single-choice control) on a job. A
// multi-select answer can be given as one Value, its choices sorted and
// joined, which makes it nominal: two answers agree only when they are the
// same set.
type Answer struct {
	Item      int64
	Annotator int64
	Value     string
}

// NewRatings arranges answers as Ratings. An annotator answers an item at
// most once: a second answer for the same item and annotator is an error.
func NewRatings(answers []Answer) (*Ratings, error) {
	r := &Ratings{}
	for _, a := range answers {
		r.Items = append(r.Items, a.Item)
		r.Annotators = append(r.Annotators, a.Annotator)
		r.Categories = append(r.Categories, a.Value)
	}
	r.Items = sortedUnique(r.Items)
	r.Annotators = sortedUnique(r.Annotators)
	r.Categories = sortedUnique(r.Categories)
	r.Codes = make([][]int, len(r.Items))
	for i := range r.Codes {
		r.Codes[i] = slices.Repeat([]int{NoAnswer}, len(r.Annotators))
	}
	for _, a := range answers {
		i, _ := slices.BinarySearch(r.Items, a.Item)
		j, _ := slices.BinarySearch(r.Annotators, a.Annotator)
		c, _ := slices.BinarySearch(r.Categories, a.Value)
		if prev := r.Codes[i][j]; prev != NoAnswer {
			return nil, fmt.Errorf("ratings: annotator %d answered item %d twice (%q and %q)", a.Annotator, a.Item, r.Categories[prev], a.Value)
		}
		r.Codes[i][j] = c
	}
	return r, nil
}

func sortedUnique[T cmp.Ordered](s []T) []T {
	slices.Sort(s)
	return slices.Compact(s)
}

// CategoryCounts is the items × categories table FleissKappa takes:
// counts[i][c] is how many annotators gave item i category c. FleissKappa
// needs every item answered by the same number of annotators; pass
// ReliabilityData to KrippendorffAlpha otherwise.
func (r *Ratings) CategoryCounts() [][]int {
	counts := make([][]int, len(r.Items))
	for i, row := range r.Codes {
		counts[i] = make([]int, len(r.Categories))
		for _, c := range row {
			if c != NoAnswer {
				counts[i][c]++
			}
		}
	}
	return counts
}

// ReliabilityData is the annotators × items matrix KrippendorffAlpha takes
// (Nominal): the category index as a number, NaN where the annotator did not
// answer.
func (r *Ratings) ReliabilityData() [][]float64 {
	data := make([][]float64, len(r.Annotators))
	for a := range data {
		data[a] = make([]float64, len(r.Items))
		for i, row := range r.Codes {
			if c := row[a]; c == NoAnswer {
				data[a][i] = math.NaN()
			} else {
				data[a][i] = float64(c)
			}
		}
	}
	return data
}

// Votes lists the answers as MajorityVote's and DawidSkene's votes
// (NewVoteMatrix(len(r.Items), len(r.Annotators), len(r.Categories),
// r.Votes())), item by item.
func (r *Ratings) Votes() []Vote {
	var votes []Vote
	for i, row := range r.Codes {
		for a, c := range row {
			if c != NoAnswer {
				votes = append(votes, Vote{Item: i, Annotator: a, Class: c})
			}
		}
	}
	return votes
}

// PairAgreement is how two annotators agree on the items both answered.
type PairAgreement struct {
	// Items is how many items both answered. When it is 0 the other fields
	// are 0 and say nothing.
	Items int `json:"items"`
	// Observed is the share of those items with the same answer.
	Observed float64 `json:"observed"`
	// Kappa is Cohen's κ over those items (1, Degenerate, when both gave one
	// and the same category throughout).
	Kappa      float64 `json:"kappa"`
	Degenerate bool    `json:"degenerate,omitempty"`
}

// AgreementMatrix is the annotator × annotator agreement of Ratings:
// Pairs[a][b] compares Annotators[a] with Annotators[b]. It is symmetric;
// the diagonal compares an annotator with themselves (Observed and Kappa 1
// over the items they answered, or all 0 when they answered none).
type AgreementMatrix struct {
	Annotators []int64           `json:"annotators"`
	Pairs      [][]PairAgreement `json:"pairs"`
}

// PairwiseAgreement compares every two annotators of r over the items both
// answered: the share of equal answers and Cohen's κ.
func (r *Ratings) PairwiseAgreement() AgreementMatrix {
	n := len(r.Annotators)
	out := AgreementMatrix{Annotators: slices.Clone(r.Annotators), Pairs: make([][]PairAgreement, n)}
	for a := range out.Pairs {
		out.Pairs[a] = make([]PairAgreement, n)
	}
	k := len(r.Categories)
	table := make([][]int, k)
	for i := range table {
		table[i] = make([]int, k)
	}
	for a := range n {
		for b := a; b < n; b++ {
			for _, row := range table {
				clear(row)
			}
			shared, same := 0, 0
			for _, row := range r.Codes {
				ca, cb := row[a], row[b]
				if ca == NoAnswer || cb == NoAnswer {
					continue
				}
				table[ca][cb]++
				shared++
				if ca == cb {
					same++
				}
			}
			var p PairAgreement
			if shared > 0 {
				kappa, err := CohenKappaTable(table)
				if err == nil { // cannot fail: a square table with shared > 0 items
					p = PairAgreement{Items: shared, Observed: float64(same) / float64(shared), Kappa: kappa.Kappa, Degenerate: kappa.Degenerate}
				}
			}
			out.Pairs[a][b], out.Pairs[b][a] = p, p
		}
	}
	return out
}
