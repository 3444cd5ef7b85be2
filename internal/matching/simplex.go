package matching

import (
	"context"
	"errors"
	"math"
)

// network is a min-cost circulation solved with the primal network simplex
// method (block-search pricing and strongly feasible spanning trees, as in
// LEMON's NetworkSimplex, with the tree kept as parent pointers, depths and
// child lists instead of a thread index, which is simpler to get right and
// costs the same per pivot: walking the moved subtree).
//
// Why network simplex and not successive shortest paths: the compressed
// network has few nodes (job classes + users) but every unit of flow has its
// own tie-break cost (one arc per job, one per capacity unit), so SSP would
// need one Dijkstra over all arcs per assigned job. A simplex pivot only
// touches one cycle and one subtree of a tree with few nodes.
//
// Arcs come in kinds laid out in index ranges; each kind has a single
// non-zero cost level, so one int64 per arc is enough (see costOf):
//
//	[0, jobEnd)         source → class, one per job, cost b
//	[jobEnd, pairEnd)   class → user, cost a
//	[pairEnd, slotEnd)  user → sink, one per capacity unit, cost c (+ d of the user)
//	[slotEnd, ...)      sink → source return arc and artificial arcs, cost 0
type network struct {
	src, dst []int32
	capa     []int32 // capInf means unbounded
	flow     []int32
	cost     []int64
	state    []int8

	jobEnd, pairEnd, slotEnd int32
	// searchEnd: arcs from here on are the artificial ones, which start in
	// the tree with zero flow and never need to come back.
	searchEnd int32
	nodeD     []int64 // d level of a node's slot arcs (the user's id rank)

	root       int32
	parent     []int32
	pred       []int32
	dir        []int8 // dirUp: pred arc points node → parent; dirDown: parent → node
	depth      []int32
	firstChild []int32
	nextSib    []int32
	prevSib    []int32
	piA, piB   []int64
	piC, piD   []int64

	blockSize int32
	nextArc   int32
	pivots    int
}

const (
	stateUpper int8 = -1
	stateTree  int8 = 0
	stateLower int8 = 1

	dirUp   int8 = 1
	dirDown int8 = -1

	capInf = math.MaxInt32
)

var errUnbounded = errors.New("matching: internal error: unbounded cycle")

func newNetwork(nodes, arcHint int) *network {
	return &network{
		src:   make([]int32, 0, arcHint),
		dst:   make([]int32, 0, arcHint),
		capa:  make([]int32, 0, arcHint),
		cost:  make([]int64, 0, arcHint),
		nodeD: make([]int64, nodes),
	}
}

func (nw *network) addArc(s, t, capacity int32, cost int64) int32 {
	nw.src = append(nw.src, s)
	nw.dst = append(nw.dst, t)
	nw.capa = append(nw.capa, capacity)
	nw.cost = append(nw.cost, cost)
	return int32(len(nw.src) - 1)
}

func (nw *network) costOf(e int32) cost4 {
	switch {
	case e < nw.jobEnd:
		return cost4{b: nw.cost[e]}
	case e < nw.pairEnd:
		return cost4{a: nw.cost[e]}
	case e < nw.slotEnd:
		return cost4{c: nw.cost[e], d: nw.nodeD[nw.src[e]]}
	}
	return cost4{}
}

func (nw *network) pi(v int32) cost4 {
	return cost4{nw.piA[v], nw.piB[v], nw.piC[v], nw.piD[v]}
}

// reduced is cost(e) + π(src) − π(dst); tree arcs have zero.
func (nw *network) reduced(e int32) cost4 {
	return nw.costOf(e).add(nw.pi(nw.src[e])).sub(nw.pi(nw.dst[e]))
}

// start builds the initial strongly feasible tree: every node hangs from an
// extra root by an artificial arc node → root with zero flow. All supplies
// are zero, so zero flow is feasible, and since the root has no outgoing arc
// the artificial arcs carry zero flow for ever: they can leave the tree but
// never matter to the optimum.
func (nw *network) start() {
	n := int32(len(nw.nodeD))
	nw.searchEnd = int32(len(nw.src))
	nw.root = n
	total := int(n) + 1
	nw.parent = make([]int32, total)
	nw.pred = make([]int32, total)
	nw.dir = make([]int8, total)
	nw.depth = make([]int32, total)
	nw.firstChild = make([]int32, total)
	nw.nextSib = make([]int32, total)
	nw.prevSib = make([]int32, total)
	nw.piA = make([]int64, total)
	nw.piB = make([]int64, total)
	nw.piC = make([]int64, total)
	nw.piD = make([]int64, total)
	for v := int32(0); v < n; v++ {
		e := nw.addArc(v, nw.root, capInf, 0)
		nw.parent[v] = nw.root
		nw.pred[v] = e
		nw.dir[v] = dirUp
		nw.depth[v] = 1
		nw.firstChild[v] = -1
		nw.prevSib[v] = v - 1
		nw.nextSib[v] = v + 1
	}
	if n > 0 {
		nw.nextSib[n-1] = -1
		nw.firstChild[nw.root] = 0
	} else {
		nw.firstChild[nw.root] = -1
	}
	nw.parent[nw.root] = -1
	nw.pred[nw.root] = -1
	nw.nextSib[nw.root] = -1
	nw.prevSib[nw.root] = -1

	m := len(nw.src)
	nw.flow = make([]int32, m)
	nw.state = make([]int8, m)
	for e := int32(0); e < nw.searchEnd; e++ {
		nw.state[e] = stateLower
	}
	nw.blockSize = max(int32(math.Sqrt(float64(nw.searchEnd))), 10)
}

// run pivots until no arc has a negative reduced cost, which makes the
// circulation optimal for the lexicographic cost.
func (nw *network) run(ctx context.Context) error {
	nw.start()
	for {
		if nw.pivots&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		in := nw.findEntering()
		if in < 0 {
			return nil
		}
		nw.pivots++
		join := nw.findJoin(in)
		change, delta, uIn, vIn, uOut := nw.findLeaving(in, join)
		if delta >= capInf {
			return errUnbounded
		}
		nw.changeFlow(in, join, delta, change, uOut)
		if change {
			nw.updateTree(in, uIn, vIn, uOut)
		}
	}
}

// findEntering is block search: scan arcs cyclically in blocks and take the
// most violating arc of the first block that has one.
func (nw *network) findEntering() int32 {
	var best cost4
	bestArc := int32(-1)
	m := nw.searchEnd
	e := nw.nextArc
	cnt := nw.blockSize
	for range m {
		if st := nw.state[e]; st != stateTree {
			// The score level decides almost every arc, so look at it alone
			// first and build the full vector only when it cannot.
			s, t := nw.src[e], nw.dst[e]
			ra := nw.piA[s] - nw.piA[t]
			if e >= nw.jobEnd && e < nw.pairEnd {
				ra += nw.cost[e]
			}
			if st == stateUpper {
				ra = -ra
			}
			if ra <= best.a {
				rc := nw.reduced(e)
				if st == stateUpper {
					rc = rc.neg()
				}
				if rc.less(best) {
					best, bestArc = rc, e
				}
			}
		}
		e++
		if e == m {
			e = 0
		}
		cnt--
		if cnt == 0 {
			if bestArc >= 0 {
				break
			}
			cnt = nw.blockSize
		}
	}
	nw.nextArc = e
	return bestArc
}

func (nw *network) findJoin(e int32) int32 {
	u, v := nw.src[e], nw.dst[e]
	for u != v {
		du, dv := nw.depth[u], nw.depth[v]
		if du >= dv {
			u = nw.parent[u]
		}
		if dv >= du {
			v = nw.parent[v]
		}
	}
	return u
}

func (nw *network) residual(e int32) int32 {
	if nw.capa[e] == capInf {
		return capInf
	}
	return nw.capa[e] - nw.flow[e]
}

// findLeaving finds the bottleneck of the cycle the entering arc closes. Ties
// go to the last blocking arc met when walking the cycle in its direction
// from the join node, which keeps the tree strongly feasible and so rules out
// cycling on degenerate pivots. change is false when the entering arc itself
// is the bottleneck (it only flips between its bounds).
func (nw *network) findLeaving(in, join int32) (change bool, delta, uIn, vIn, uOut int32) {
	first, second := nw.src[in], nw.dst[in]
	if nw.state[in] == stateUpper {
		first, second = second, first
	}
	delta = nw.capa[in]
	result := 0
	for u := first; u != join; u = nw.parent[u] {
		e := nw.pred[u]
		d := nw.flow[e]
		if nw.dir[u] == dirDown {
			d = nw.residual(e)
		}
		if d < delta {
			delta, uOut, result = d, u, 1
		}
	}
	for u := second; u != join; u = nw.parent[u] {
		e := nw.pred[u]
		d := nw.flow[e]
		if nw.dir[u] == dirUp {
			d = nw.residual(e)
		}
		if d <= delta {
			delta, uOut, result = d, u, 2
		}
	}
	if result == 1 {
		uIn, vIn = first, second
	} else {
		uIn, vIn = second, first
	}
	return result != 0, delta, uIn, vIn, uOut
}

func (nw *network) changeFlow(in, join, delta int32, change bool, uOut int32) {
	if delta > 0 {
		val := int32(nw.state[in]) * delta
		nw.flow[in] += val
		for u := nw.src[in]; u != join; u = nw.parent[u] {
			nw.flow[nw.pred[u]] -= int32(nw.dir[u]) * val
		}
		for u := nw.dst[in]; u != join; u = nw.parent[u] {
			nw.flow[nw.pred[u]] += int32(nw.dir[u]) * val
		}
	}
	if !change {
		nw.state[in] = -nw.state[in]
		return
	}
	nw.state[in] = stateTree
	out := nw.pred[uOut]
	if nw.flow[out] == 0 {
		nw.state[out] = stateLower
	} else {
		nw.state[out] = stateUpper
	}
}

// updateTree replaces the leaving arc (uOut's pred) by the entering arc: the
// subtree of uOut is cut off, re-rooted at uIn and hung below vIn. Parent
// links on the path uIn … uOut are reversed, then one walk over the moved
// subtree fixes depths and shifts its potentials so the entering arc gets
// zero reduced cost.
func (nw *network) updateTree(in, uIn, vIn, uOut int32) {
	dirIn := dirDown
	if nw.src[in] == uIn {
		dirIn = dirUp
	}
	c := nw.costOf(in)
	var sigma cost4
	if dirIn == dirUp {
		sigma = nw.pi(vIn).sub(c).sub(nw.pi(uIn))
	} else {
		sigma = nw.pi(vIn).add(c).sub(nw.pi(uIn))
	}

	cur, newPar, newPred, newDir := uIn, vIn, in, dirIn
	for {
		oldPar, oldPred, oldDir := nw.parent[cur], nw.pred[cur], nw.dir[cur]
		nw.unlink(cur)
		nw.parent[cur], nw.pred[cur], nw.dir[cur] = newPar, newPred, newDir
		nw.link(newPar, cur)
		if cur == uOut {
			break
		}
		newPar, newPred, newDir, cur = cur, oldPred, -oldDir, oldPar
	}

	v := uIn
	for {
		nw.depth[v] = nw.depth[nw.parent[v]] + 1
		nw.piA[v] += sigma.a
		nw.piB[v] += sigma.b
		nw.piC[v] += sigma.c
		nw.piD[v] += sigma.d
		if fc := nw.firstChild[v]; fc >= 0 {
			v = fc
			continue
		}
		for v != uIn && nw.nextSib[v] < 0 {
			v = nw.parent[v]
		}
		if v == uIn {
			return
		}
		v = nw.nextSib[v]
	}
}

func (nw *network) unlink(v int32) {
	p := nw.parent[v]
	if ps := nw.prevSib[v]; ps >= 0 {
		nw.nextSib[ps] = nw.nextSib[v]
	} else {
		nw.firstChild[p] = nw.nextSib[v]
	}
	if ns := nw.nextSib[v]; ns >= 0 {
		nw.prevSib[ns] = nw.prevSib[v]
	}
}

func (nw *network) link(p, v int32) {
	fc := nw.firstChild[p]
	nw.nextSib[v] = fc
	nw.prevSib[v] = -1
	if fc >= 0 {
		nw.prevSib[fc] = v
	}
	nw.firstChild[p] = v
}
