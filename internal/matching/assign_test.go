package matching

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// assignObjective is Assign's lexicographic objective of a set of edges:
// total weight (higher is better), edges (more is better), Σ (row − col)²
// (lower is better).
type assignObjective struct {
	weight int64
	count  int
	spread int64
}

func (o assignObjective) better(p assignObjective) bool {
	if o.weight != p.weight {
		return o.weight > p.weight
	}
	if o.count != p.count {
		return o.count > p.count
	}
	return o.spread < p.spread
}

func objectiveOf(es []AssignEdge) assignObjective {
	var o assignObjective
	for _, e := range es {
		d := int64(e.Row - e.Col)
		o.weight += e.Weight
		o.count++
		o.spread += d * d
	}
	return o
}

// bruteAssign enumerates every matching of the edges (each edge in or out,
// rows and columns used at most once) and returns the best objective.
func bruteAssign(rows, cols int, edges []AssignEdge) assignObjective {
	rowUsed := make([]bool, rows)
	colUsed := make([]bool, cols)
	var best assignObjective
	var cur []AssignEdge
	var rec func(i int)
	rec = func(i int) {
		if i == len(edges) {
			if o := objectiveOf(cur); o.better(best) {
				best = o
			}
			return
		}
		rec(i + 1)
		e := edges[i]
		if !rowUsed[e.Row] && !colUsed[e.Col] {
			rowUsed[e.Row], colUsed[e.Col] = true, true
			cur = append(cur, e)
			rec(i + 1)
			cur = cur[:len(cur)-1]
			rowUsed[e.Row], colUsed[e.Col] = false, false
		}
	}
	rec(0)
	return best
}

func requireMatching(t *testing.T, rows, cols int, edges, got []AssignEdge, seed uint64) {
	t.Helper()
	have := map[[2]int]int64{}
	for _, e := range edges {
		have[[2]int{e.Row, e.Col}] = e.Weight
	}
	rowSeen := map[int]bool{}
	colSeen := map[int]bool{}
	for i, e := range got {
		w, ok := have[[2]int{e.Row, e.Col}]
		require.True(t, ok, "seed %d: (%d, %d) is not an edge", seed, e.Row, e.Col)
		require.Equal(t, w, e.Weight, "seed %d", seed)
		require.False(t, rowSeen[e.Row], "seed %d: row %d twice", seed, e.Row)
		require.False(t, colSeen[e.Col], "seed %d: column %d twice", seed, e.Col)
		rowSeen[e.Row], colSeen[e.Col] = true, true
		if i > 0 {
			require.Less(t, got[i-1].Row, e.Row, "seed %d: not sorted by row", seed)
		}
	}
}

// TestAssignBruteForce checks the whole lexicographic objective against
// enumeration on small random instances, with weights drawn from a few
// values so that ties at the first and second level are common.
func TestAssignBruteForce(t *testing.T) {
	runs := 3000
	if RaceEnabled {
		runs = 500
	}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 11))
		rows, cols := 1+rng.IntN(5), 1+rng.IntN(5)
		var edges []AssignEdge
		density := rng.Float64()
		for r := range rows {
			for c := range cols {
				if rng.Float64() < density {
					w := int64(1 + rng.IntN(4))
					if seed%3 == 0 {
						w = 1 + rng.Int64N(1_000_000_000)
					}
					edges = append(edges, AssignEdge{Row: r, Col: c, Weight: w})
				}
			}
		}
		rng.Shuffle(len(edges), func(i, j int) { edges[i], edges[j] = edges[j], edges[i] })
		got, err := Assign(context.Background(), rows, cols, edges)
		require.NoError(t, err, "seed %d", seed)
		requireMatching(t, rows, cols, edges, got, seed)
		require.Equal(t, bruteAssign(rows, cols, edges), objectiveOf(got), "seed %d: %v → %v", seed, edges, got)
	}
}

// TestAssignOrderIndependent: the same edges in another order give the same
// edges back, also where the objective leaves ties.
func TestAssignOrderIndependent(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 12))
		rows, cols := 2+rng.IntN(8), 2+rng.IntN(8)
		var edges []AssignEdge
		for r := range rows {
			for c := range cols {
				if rng.IntN(2) == 0 {
					edges = append(edges, AssignEdge{Row: r, Col: c, Weight: 1 + rng.Int64N(2)})
				}
			}
		}
		first, err := Assign(context.Background(), rows, cols, edges)
		require.NoError(t, err)
		for range 3 {
			rng.Shuffle(len(edges), func(i, j int) { edges[i], edges[j] = edges[j], edges[i] })
			again, err := Assign(context.Background(), rows, cols, edges)
			require.NoError(t, err)
			require.Equal(t, first, again, "seed %d", seed)
		}
	}
}

func TestAssignByHand(t *testing.T) {
	ctx := context.Background()
	t.Run("equal weights pair in order", func(t *testing.T) {
		var edges []AssignEdge
		for r := range 6 {
			for c := range 6 {
				edges = append(edges, AssignEdge{Row: r, Col: c, Weight: 7})
			}
		}
		got, err := Assign(ctx, 6, 6, edges)
		require.NoError(t, err)
		require.Len(t, got, 6)
		for k, e := range got {
			require.Equal(t, AssignEdge{Row: k, Col: k, Weight: 7}, e)
		}
	})
	t.Run("total weight beats the greedy best pair", func(t *testing.T) {
		// Greedy takes (0,0)=10 and then only (1,1)=1: 11. The optimum is
		// (0,1)+(1,0) = 9+9 = 18.
		edges := []AssignEdge{{0, 0, 10}, {0, 1, 9}, {1, 0, 9}, {1, 1, 1}}
		got, err := Assign(ctx, 2, 2, edges)
		require.NoError(t, err)
		require.Equal(t, []AssignEdge{{0, 1, 9}, {1, 0, 9}}, got)
	})
	t.Run("more pairs break a weight tie", func(t *testing.T) {
		// {(0,0)} and {(0,1),(1,0)} both weigh 4.
		edges := []AssignEdge{{0, 0, 4}, {0, 1, 2}, {1, 0, 2}}
		got, err := Assign(ctx, 2, 2, edges)
		require.NoError(t, err)
		require.Equal(t, []AssignEdge{{0, 1, 2}, {1, 0, 2}}, got)
	})
	t.Run("rectangular, empty rows and columns", func(t *testing.T) {
		edges := []AssignEdge{{Row: 3, Col: 0, Weight: 5}, {Row: 3, Col: 9, Weight: 6}}
		got, err := Assign(ctx, 5, 10, edges)
		require.NoError(t, err)
		require.Equal(t, []AssignEdge{{Row: 3, Col: 9, Weight: 6}}, got)
	})
	t.Run("no edges", func(t *testing.T) {
		got, err := Assign(ctx, 3, 3, nil)
		require.NoError(t, err)
		require.Empty(t, got)
	})
}

func TestAssignErrors(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		rows, cols int
		edges      []AssignEdge
	}{
		"negative rows":   {rows: -1, cols: 1},
		"too many cols":   {rows: 1, cols: MaxAssignSide + 1},
		"edge outside":    {rows: 2, cols: 2, edges: []AssignEdge{{Row: 2, Col: 0, Weight: 1}}},
		"negative column": {rows: 2, cols: 2, edges: []AssignEdge{{Row: 0, Col: -1, Weight: 1}}},
		"zero weight":     {rows: 2, cols: 2, edges: []AssignEdge{{Row: 0, Col: 0, Weight: 0}}},
		"weight too big":  {rows: 2, cols: 2, edges: []AssignEdge{{Row: 0, Col: 0, Weight: MaxAssignWeight + 1}}},
		"duplicate pair":  {rows: 2, cols: 2, edges: []AssignEdge{{0, 1, 1}, {1, 1, 1}, {0, 1, 2}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Assign(ctx, tc.rows, tc.cols, tc.edges)
			require.ErrorIs(t, err, ErrAssignInput)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Assign(c, 1, 1, []AssignEdge{{0, 0, 1}})
		require.True(t, errors.Is(err, context.Canceled), "%v", err)
	})
}

// TestAssignLargestWeights runs the largest weight on a dense square, where
// the potentials grow most: with all weights equal the optimum pairs every
// row, row k with column k.
func TestAssignLargestWeights(t *testing.T) {
	const n = 40
	var edges []AssignEdge
	for r := range n {
		for c := range n {
			edges = append(edges, AssignEdge{Row: r, Col: c, Weight: MaxAssignWeight})
		}
	}
	got, err := Assign(context.Background(), n, n, edges)
	require.NoError(t, err)
	require.Len(t, got, n)
	for k, e := range got {
		require.Equal(t, k, e.Col)
	}
}
