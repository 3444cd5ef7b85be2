package matching

import "math"

// Exact arithmetic.
//
// Scores are computed in integers. Inputs are quantised to 1e-6
// (proficiency P = round(p·1e6), skill S and QA rate A likewise), which is
// finer than anything the platform stores. Then
//
//	quality × 1e8 = 8·P + 30·S + 30·A        (0.4·p/5 = 8·P/1e8, 0.3·s = 30·S/1e8)
//	score   × 1e8 = weight × quality × 1e8   ≤ 3·(8·5e6 + 30e6 + 30e6) = 3e8
//
// so every score is an exact integer number of units of 1e-8 and the
// objective is an exact int64 sum: two assignments with equal scores compare
// equal, and no rounding can reorder two different totals.
//
// Tie-breaks.
//
// The solver minimises a cost vector compared lexicographically, level by
// level (a, then b, then c, then d):
//
//	a = −Σ score units                          the objective itself
//	b = Σ over assigned copies (dueRank − B)     more copies, then earlier due dates
//	c = Σ over assigned copies (Load_u + k)      the k-th copy (1-based) given to
//	                                             user u in this run: less loaded
//	d = Σ over assigned copies idRank(u)         lower user id
//
// A copy is one person on one job; without overlap every job has one, and
// copies are jobs.
// dueRank orders all input jobs by due date (dated before undated), then id;
// idRank orders candidates by id. Because c charges Load_u+k for the k-th job,
// a run spreads work over equally good people instead of filling the least
// loaded one first.
//
// Why a vector and not one scaled int64: to keep every level strictly above
// the next, a single integer needs each level's multiplier to exceed the
// whole range of all levels below it. For n jobs and U users those ranges
// multiply to roughly n⁶·U, times 3e8 per score, which overflows int64 for a
// project with a hundred open jobs. Compared lexicographically, a lower
// level cannot outweigh one unit (1e-8) of a higher one by construction:
// levels are never added to each other, and min-cost flow needs nothing of
// its costs but an ordered abelian group, which Z⁴ with the lexicographic
// order is (addition is component-wise and preserves the order).
//
// The one place two criteria share an int64 is b, which holds "more copies
// assigned" above "earlier due dates". With n jobs asking for C copies in
// all, B = C·n + 1 and 0 ≤ dueRank < n: take two assignments X and Y with
// |X| > |Y| copies (so |X| ≤ C). Then
//
//	b(X) ≤ |X|·(n−1) − |X|·B   and   b(Y) ≥ −|Y|·B,
//	b(Y) − b(X) ≥ (|X|−|Y|)·B − |X|·(n−1) ≥ B − C·(n−1) > 0,
//
// so X always has the smaller b whatever the due ranks: the due-date terms
// can never outweigh one more assigned copy. Among assignments of equal size
// the B terms cancel and Σ dueRank decides. Without overlap C = n and
// B = n² + 1.
//
// Overflow. With at most MaxJobs jobs, MaxCopies copies and MaxCandidates
// candidates the network has N < 2^19+4 nodes. A node potential is a sum of
// at most N−1 arc costs and a reduced cost is an arc cost plus two
// potentials, so every intermediate value is below 2N·max|cost|. The largest
// arc costs are |a| ≤ 3e8 < 2^29, |b| ≤ B ≤ 2^36+1, c ≤ MaxLoad + MaxJobs <
// 2^31 (a user's capacity units never exceed the jobs, one copy each) and
// d < 2^18, so every value stays below 2^20·2^37 = 2^57. Flows are int32:
// the return arc carries at most C ≤ 2^18 units.
type cost4 struct{ a, b, c, d int64 }

func (x cost4) add(y cost4) cost4 { return cost4{x.a + y.a, x.b + y.b, x.c + y.c, x.d + y.d} }
func (x cost4) sub(y cost4) cost4 { return cost4{x.a - y.a, x.b - y.b, x.c - y.c, x.d - y.d} }
func (x cost4) neg() cost4        { return cost4{-x.a, -x.b, -x.c, -x.d} }

func (x cost4) less(y cost4) bool {
	if x.a != y.a {
		return x.a < y.a
	}
	if x.b != y.b {
		return x.b < y.b
	}
	if x.c != y.c {
		return x.c < y.c
	}
	return x.d < y.d
}

// unitsPerScore is how many integer units make a score of 1.0.
const unitsPerScore = 1e8

// quantize maps a value already validated to lie in [0, 5] onto the 1e-6
// grid the scores are computed on.
func quantize(x float64) int64 { return int64(math.Round(x * 1e6)) }

// quality is 1e8 × (0.4·p/5 + 0.3·s + 0.3·a) for quantised p, s, a.
func quality(prof, skillAndQA int64) int64 { return 8*prof + skillAndQA }
