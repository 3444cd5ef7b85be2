package matching

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
)

// Exact maximum-weight one-to-one assignment, for callers outside
// project:match (internal/quality pairs boxes, polygons and spans with it).
// It runs the same network simplex as Solve on a network of its own:
//
//	source → row        cap 1, level b −1         (one more pair)
//	row → pair node     cap 1, level a −weight    (the objective)
//	pair node → column  cap 1, level c (row−col)² (pair rows and columns in order)
//	column → source     through the sink and the return arc
//
// An edge gets a node of its own because the simplex gives each arc a single
// cost level (costOf): the weight and the pairing tie-break are both costs of
// the pair, so they sit on two arcs in series.

// AssignEdge is a row–column pair Assign may choose and what it is worth.
type AssignEdge struct {
	Row, Col int
	// Weight is at least 1 and at most MaxAssignWeight. Callers with real
	// weights quantise them (internal/quality uses units of 1e-9 IoU).
	Weight int64
}

// Limits of Assign. They keep every intermediate cost of the simplex below
// 2^57 (cost.go explains the bound: 2 × nodes × the largest arc cost, here
// 2 × 2^23 × 2^32).
const (
	// MaxAssignSide bounds rows and columns.
	MaxAssignSide = 1 << 16
	// MaxAssignEdges bounds the edges.
	MaxAssignEdges = 1 << 22
	// MaxAssignWeight bounds an edge's weight.
	MaxAssignWeight = 1 << 32
)

// ErrAssignInput is wrapped by every error Assign returns for input it
// refuses.
var ErrAssignInput = errors.New("assign: invalid input")

// Assign chooses edges, at most one per row and one per column, that
//
//  1. maximise the total weight, exactly (integer weights, no rounding);
//  2. among those, have the most edges;
//  3. among those, minimise Σ (row − col)² over the chosen edges, so that
//     equally good rows and columns pair in order (on a square matrix of
//     equal weights the result is row k with column k).
//
// Any tie left after the three levels is settled by the simplex's fixed
// pivot order on the edges sorted by (row, col): the result depends only on
// the set of edges, never on their order in the slice. The chosen edges are
// returned sorted by row. Rows and columns without edges are allowed; only
// edges can be chosen (a pair without an edge is never assigned).
//
// The error wraps ErrAssignInput for a dimension above MaxAssignSide, an
// edge outside rows × cols, a weight outside [1, MaxAssignWeight], the same
// pair twice or more than MaxAssignEdges edges; otherwise it is ctx's error.
func Assign(ctx context.Context, rows, cols int, edges []AssignEdge) ([]AssignEdge, error) {
	switch {
	case rows < 0 || rows > MaxAssignSide || cols < 0 || cols > MaxAssignSide:
		return nil, fmt.Errorf("%w: %d × %d is outside 0…%d on a side", ErrAssignInput, rows, cols, MaxAssignSide)
	case len(edges) > MaxAssignEdges:
		return nil, fmt.Errorf("%w: %d edges, at most %d", ErrAssignInput, len(edges), MaxAssignEdges)
	}
	for i, e := range edges {
		switch {
		case e.Row < 0 || e.Row >= rows || e.Col < 0 || e.Col >= cols:
			return nil, fmt.Errorf("%w: edge %d (%d, %d) is outside %d × %d", ErrAssignInput, i, e.Row, e.Col, rows, cols)
		case e.Weight < 1 || e.Weight > MaxAssignWeight:
			return nil, fmt.Errorf("%w: edge %d (%d, %d) has weight %d, outside 1…%d", ErrAssignInput, i, e.Row, e.Col, e.Weight, int64(MaxAssignWeight))
		}
	}
	if len(edges) == 0 {
		return nil, nil
	}
	sorted := slices.Clone(edges)
	slices.SortFunc(sorted, func(x, y AssignEdge) int {
		return cmp.Or(cmp.Compare(x.Row, y.Row), cmp.Compare(x.Col, y.Col))
	})
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Row == sorted[i-1].Row && sorted[i].Col == sorted[i-1].Col {
			return nil, fmt.Errorf("%w: pair (%d, %d) given twice", ErrAssignInput, sorted[i].Row, sorted[i].Col)
		}
	}

	// Only rows and columns with an edge get a node.
	rowNode := make([]int32, rows)
	colNode := make([]int32, cols)
	for i := range rowNode {
		rowNode[i] = -1
	}
	for i := range colNode {
		colNode[i] = -1
	}
	const source, sink = 0, 1
	next := int32(2)
	var usedRows, usedCols []int
	for _, e := range sorted {
		if rowNode[e.Row] < 0 {
			rowNode[e.Row] = next
			next++
			usedRows = append(usedRows, e.Row)
		}
	}
	for _, e := range sorted {
		if colNode[e.Col] < 0 {
			colNode[e.Col] = next
			next++
			usedCols = append(usedCols, e.Col)
		}
	}
	slices.Sort(usedCols)
	pairBase := next
	nodes := int(pairBase) + len(sorted)

	nw := newNetwork(nodes, len(usedRows)+len(usedCols)+2*len(sorted)+1+nodes)
	for _, r := range usedRows {
		nw.addArc(source, rowNode[r], 1, -1)
	}
	for _, c := range usedCols {
		nw.addArc(colNode[c], sink, 1, 0)
	}
	nw.jobEnd = int32(len(nw.src))
	pairArc0 := int32(len(nw.src))
	for k, e := range sorted {
		nw.addArc(rowNode[e.Row], pairBase+int32(k), 1, -e.Weight)
	}
	nw.pairEnd = int32(len(nw.src))
	for k, e := range sorted {
		d := int64(e.Row - e.Col)
		nw.addArc(pairBase+int32(k), colNode[e.Col], 1, d*d)
	}
	nw.slotEnd = int32(len(nw.src))
	nw.addArc(sink, source, capInf, 0)
	if err := nw.run(ctx); err != nil {
		return nil, fmt.Errorf("assign %d × %d with %d edges: %w", rows, cols, len(sorted), err)
	}

	var out []AssignEdge
	for k, e := range sorted {
		if nw.flow[pairArc0+int32(k)] > 0 {
			out = append(out, e)
		}
	}
	return out, nil
}
