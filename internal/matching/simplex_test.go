package matching

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNetworkSimplexCertificate runs the simplex on random circulations with
// arbitrary arcs and costs of every kind and checks the result against the
// textbook certificate of optimality instead of trusting the pivots: flows
// within bounds and conserved, and node potentials under which no residual
// arc has a negative reduced cost. It also checks that the spanning tree the
// pivots maintain is consistent, which is where simplex bugs hide.
func TestNetworkSimplexCertificate(t *testing.T) {
	runs := 3000
	if RaceEnabled {
		runs = 1000
	}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 7))
		nodes := 2 + rng.IntN(8)
		nw := newNetwork(nodes, 0)
		for v := range nodes {
			nw.nodeD[v] = int64(rng.IntN(5))
		}
		randArcs := func(kind int) {
			for range rng.IntN(3 * nodes) {
				s, d := int32(rng.IntN(nodes)), int32(rng.IntN(nodes))
				if s == d {
					continue
				}
				c := int64(rng.IntN(21) - 10)
				if kind == 1 {
					c *= 1000 // score-sized costs
				}
				nw.addArc(s, d, int32(1+rng.IntN(4)), c)
			}
		}
		randArcs(0)
		nw.jobEnd = int32(len(nw.src))
		randArcs(1)
		nw.pairEnd = int32(len(nw.src))
		randArcs(2)
		nw.slotEnd = int32(len(nw.src))
		nw.addArc(1, 0, capInf, 0)

		require.NoError(t, nw.run(context.Background()), "seed %d", seed)
		checkCertificate(t, nw, seed)
	}
}

func checkCertificate(t *testing.T, nw *network, seed uint64) {
	n := len(nw.nodeD) + 1
	balance := make([]int64, n)
	for e := range int32(len(nw.src)) {
		f := nw.flow[e]
		require.GreaterOrEqual(t, f, int32(0), "seed %d arc %d", seed, e)
		require.LessOrEqual(t, f, nw.capa[e], "seed %d arc %d", seed, e)
		balance[nw.src[e]] -= int64(f)
		balance[nw.dst[e]] += int64(f)
		if e >= nw.searchEnd {
			require.Zero(t, f, "seed %d: artificial arc %d carries flow", seed, e)
			continue
		}
		rc := nw.reduced(e)
		var zero cost4
		switch nw.state[e] {
		case stateTree:
			require.Equal(t, zero, rc, "seed %d: tree arc %d has reduced cost", seed, e)
		case stateLower:
			require.Zero(t, f, "seed %d arc %d", seed, e)
			require.False(t, rc.less(zero), "seed %d: arc %d at lower bound with negative reduced cost %v", seed, e, rc)
		case stateUpper:
			require.Equal(t, nw.capa[e], f, "seed %d arc %d", seed, e)
			require.False(t, zero.less(rc), "seed %d: arc %d at upper bound with positive reduced cost %v", seed, e, rc)
		}
	}
	for v := range balance {
		require.Zero(t, balance[v], "seed %d: flow not conserved at node %d", seed, v)
	}

	children := 0
	for v := range int32(n) {
		if v == nw.root {
			require.Equal(t, int32(-1), nw.parent[v])
			continue
		}
		p, e := nw.parent[v], nw.pred[v]
		require.Equal(t, stateTree, nw.state[e], "seed %d node %d", seed, v)
		if nw.dir[v] == dirUp {
			require.Equal(t, [2]int32{v, p}, [2]int32{nw.src[e], nw.dst[e]}, "seed %d node %d", seed, v)
		} else {
			require.Equal(t, [2]int32{p, v}, [2]int32{nw.src[e], nw.dst[e]}, "seed %d node %d", seed, v)
		}
		require.Equal(t, nw.depth[p]+1, nw.depth[v], "seed %d node %d", seed, v)
		for c := nw.firstChild[v]; c >= 0; c = nw.nextSib[c] {
			require.Equal(t, v, nw.parent[c], "seed %d: child list of %d", seed, v)
			children++
		}
	}
	for c := nw.firstChild[nw.root]; c >= 0; c = nw.nextSib[c] {
		children++
	}
	require.Equal(t, n-1, children, "seed %d: child lists do not cover the tree", seed)
}
