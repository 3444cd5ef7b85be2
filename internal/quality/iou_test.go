package quality

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBoxIoUByHand(t *testing.T) {
	base := Box{X: 0, Y: 0, Width: 10, Height: 10}
	for _, tc := range []struct {
		name string
		b    Box
		iou  float64
	}{
		{"identical", base, 1},
		{"half across", Box{X: 5, Width: 10, Height: 10}, 50.0 / 150},
		{"quarter diagonal", Box{X: 5, Y: 5, Width: 10, Height: 10}, 25.0 / 175},
		{"inside", Box{X: 2, Y: 2, Width: 4, Height: 4}, 16.0 / 100},
		{"touching", Box{X: 10, Width: 10, Height: 10}, 0},
		{"apart", Box{X: 50, Y: 50, Width: 10, Height: 10}, 0},
		{"full turn is unrotated", Box{X: 5, Width: 10, Height: 10, Rotation: 360}, 50.0 / 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := BoxIoU(base, tc.b)
			require.NoError(t, err)
			require.InDelta(t, tc.iou, v, 1e-12)
			w, err := BoxIoU(tc.b, base)
			require.NoError(t, err)
			require.InDelta(t, v, w, 1e-15, "symmetric")
			// The same boxes as polygons take the clipping path.
			p, err := PolygonIoU(base.Corners(), tc.b.Corners())
			require.NoError(t, err)
			require.InDelta(t, tc.iou, p, 1e-12)
		})
	}
}

func TestBoxRotation(t *testing.T) {
	t.Run("quarter turn on a square image", func(t *testing.T) {
		// Top-left (50, 50), 10 wide, 20 high, turned 90° clockwise about that
		// corner: the width now runs down, the height to the left, covering
		// x 30…50, y 50…60.
		r := Box{X: 50, Y: 50, Width: 10, Height: 20, Rotation: 90}
		v, err := BoxIoU(r, Box{X: 30, Y: 50, Width: 20, Height: 10})
		require.NoError(t, err)
		require.InDelta(t, 1, v, 1e-12)
	})
	t.Run("quarter turn on a 2:1 image turns in pixels", func(t *testing.T) {
		// 200 × 100 px: the box is 20 × 20 px at (100, 50) px. Turned 90° it
		// covers x 80…100 px, y 50…70 px: 40…50% by 50…70%. Turning in
		// percent instead would give x 30…50%, y 50…60%.
		r := Box{X: 50, Y: 50, Width: 10, Height: 20, Rotation: 90, ImageWidth: 200, ImageHeight: 100}
		v, err := BoxIoU(r, Box{X: 40, Y: 50, Width: 10, Height: 20})
		require.NoError(t, err)
		require.InDelta(t, 1, v, 1e-12)
	})
	t.Run("a square against itself turned 45° about its centre", func(t *testing.T) {
		// The intersection is a regular octagon of area 2(√2 − 1)s², so
		// IoU = (√2 − 1)/(2 − √2) = 1/√2.
		const s, cx, cy = 20.0, 50.0, 50.0
		sq := Box{X: cx - s/2, Y: cy - s/2, Width: s, Height: s}
		// Label Studio turns about the top-left corner: put that corner where
		// the centre minus the turned half-diagonal is.
		sin, cos := math.Sincos(math.Pi / 4)
		hx, hy := s/2, s/2
		turned := Box{X: cx - (hx*cos - hy*sin), Y: cy - (hx*sin + hy*cos), Width: s, Height: s, Rotation: 45}
		v, err := BoxIoU(sq, turned)
		require.NoError(t, err)
		require.InDelta(t, 1/math.Sqrt2, v, 1e-12)
	})
	t.Run("rotated box against itself", func(t *testing.T) {
		r := Box{X: 20, Y: 30, Width: 17, Height: 9, Rotation: 33, ImageWidth: 640, ImageHeight: 480}
		v, err := BoxIoU(r, r)
		require.NoError(t, err)
		require.InDelta(t, 1, v, 1e-12)
	})
}

func TestBoxErrors(t *testing.T) {
	for name, b := range map[string]Box{
		"zero width":      {Width: 0, Height: 5},
		"negative height": {Width: 5, Height: -1},
		"NaN":             {X: math.NaN(), Width: 5, Height: 5},
		"infinite turn":   {Width: 5, Height: 5, Rotation: math.Inf(1)},
	} {
		_, err := BoxIoU(b, Box{Width: 1, Height: 1})
		require.Error(t, err, name)
	}
	_, err := BoxIoU(Box{Width: 0, Height: 5}, Box{Width: 1, Height: 1})
	require.ErrorIs(t, err, ErrDegenerate)
	_, err = BoxIoU(Box{X: math.NaN(), Width: 5, Height: 5}, Box{Width: 1, Height: 1})
	require.ErrorIs(t, err, ErrNotFinite)
}

func pts(xy ...float64) []Point {
	out := make([]Point, len(xy)/2)
	for i := range out {
		out[i] = Point{xy[2*i], xy[2*i+1]}
	}
	return out
}

func TestPolygonIoUByHand(t *testing.T) {
	// L: the bottom row [0,2]×[0,1] and the left column [0,1]×[1,2], area 3.
	l := pts(0, 0, 2, 0, 2, 1, 1, 1, 1, 2, 0, 2)
	// J: the bottom row and the right column [1,2]×[1,2], area 3.
	j := pts(0, 0, 2, 0, 2, 2, 1, 2, 1, 1, 0, 1)
	// U: [0,3]² without the notch [1,2]×[1,3], area 7; its upside-down twin
	// lacks [1,2]×[0,2]. Together they lack the middle column [1,2]×[0,3]:
	// the intersection is the two outer columns, area 6, in two pieces.
	u := pts(0, 0, 3, 0, 3, 3, 2, 3, 2, 1, 1, 1, 1, 3, 0, 3)
	n := pts(0, 0, 1, 0, 1, 2, 2, 2, 2, 0, 3, 0, 3, 3, 0, 3)
	square := pts(1, 0, 3, 0, 3, 2, 1, 2) // [1,3]×[0,2], convex
	for _, tc := range []struct {
		name string
		a, b []Point
		iou  float64
	}{
		{"L and J share the bottom row", l, j, 2.0 / 4},
		{"U and its twin share two columns", u, n, 6.0 / 8},
		// L ∩ [1,3]×[0,2] = [1,2]×[0,1]: 1 of 3 + 4 − 1.
		{"L and a convex square", l, square, 1.0 / 6},
		{"L against itself", l, l, 1},
		{"U against itself", u, u, 1},
		{"apart", l, pts(10, 10, 11, 10, 11, 11), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := PolygonIoU(tc.a, tc.b)
			require.NoError(t, err)
			require.InDelta(t, tc.iou, v, 1e-12)
			w, err := PolygonIoU(tc.b, tc.a)
			require.NoError(t, err)
			require.InDelta(t, v, w, 1e-12)
		})
	}
	t.Run("orientation, start and repeated points do not matter", func(t *testing.T) {
		rev := slices.Clone(u)
		slices.Reverse(rev)                                // clockwise
		plain := append(slices.Clone(rev[3:]), rev[:3]...) // another first vertex
		plain = append(plain, plain[0])                    // the closing point repeated, as Label Studio may
		plain = slices.Insert(plain, 2, plain[2])          // a doubled vertex
		v, err := PolygonIoU(u, plain)
		require.NoError(t, err)
		require.InDelta(t, 1, v, 1e-12)
		// A point in the middle of an edge changes nothing either.
		mid := slices.Insert(slices.Clone(n), 1, Point{X: 0.5, Y: 0})
		v, err = PolygonIoU(u, mid)
		require.NoError(t, err)
		require.InDelta(t, 0.75, v, 1e-12)
	})
}

func TestCheckPolygon(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    []Point
		want error
	}{
		{"bowtie", pts(0, 0, 2, 2, 2, 0, 0, 2), ErrSelfIntersecting},
		{"vertex on another edge", pts(0, 0, 4, 0, 4, 4, 2, 0, 0, 4), ErrSelfIntersecting},
		{"spike folding back", pts(0, 0, 4, 0, 4, 4, 4, 2, 0, 4), ErrSelfIntersecting},
		{"pinched figure eight", pts(0, 0, 2, 1, 4, 0, 4, 2, 2, 1, 0, 2), ErrSelfIntersecting},
		{"collinear triangle", pts(0, 0, 1, 0, 2, 0), ErrSelfIntersecting},
		{"two points", pts(0, 0, 1, 1, 0, 0), ErrDegenerate},
		{"NaN", pts(0, 0, 1, math.NaN(), 1, 1), ErrNotFinite},
		{"infinite", pts(0, 0, math.Inf(-1), 0, 1, 1), ErrNotFinite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPolygon(tc.p)
			require.ErrorIs(t, err, tc.want)
			_, err = PolygonIoU(pts(0, 0, 1, 0, 1, 1), tc.p)
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, "second polygon")
		})
	}
	for name, p := range map[string][]Point{
		"triangle":           pts(0, 0, 1, 0, 0, 1),
		"comb":               pts(0, 0, 5, 0, 5, 3, 4, 3, 4, 1, 3, 1, 3, 3, 2, 3, 2, 1, 1, 1, 1, 3, 0, 3),
		"straight-on vertex": pts(0, 0, 1, 0, 2, 0, 2, 2, 0, 2),
	} {
		require.NoError(t, CheckPolygon(p), name)
	}
}

// TestOrientExact puts the third point a few units in the last place off the
// line through the first two, where the float determinant cannot be
// trusted, and checks the sign against rational arithmetic.
func TestOrientExact(t *testing.T) {
	exact := func(a, b, c Point) int {
		r := func(v float64) *big.Rat { return new(big.Rat).SetFloat64(v) }
		l := new(big.Rat).Mul(new(big.Rat).Sub(r(b.X), r(a.X)), new(big.Rat).Sub(r(c.Y), r(a.Y)))
		rr := new(big.Rat).Mul(new(big.Rat).Sub(r(b.Y), r(a.Y)), new(big.Rat).Sub(r(c.X), r(a.X)))
		return l.Cmp(rr)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	signs := map[int]int{}
	for i := range 20000 {
		a := Point{rng.Float64() * 100, rng.Float64() * 100}
		b := Point{rng.Float64() * 100, rng.Float64() * 100}
		s := rng.Float64() * 2
		c := Point{a.X + s*(b.X-a.X), a.Y + s*(b.Y-a.Y)}
		if i%4 == 0 {
			// Exactly collinear: small multiples of 1/64 are exact in floats.
			grid := func() float64 { return float64(rng.IntN(6400)) / 64 }
			a = Point{grid(), grid()}
			dx, dy := float64(rng.IntN(200)-100)/64, float64(rng.IntN(200)-100)/64
			k, m := float64(rng.IntN(20)-10), float64(rng.IntN(20)-10)
			b = Point{a.X + k*dx, a.Y + k*dy}
			c = Point{a.X + m*dx, a.Y + m*dy}
		}
		for range rng.IntN(4) {
			c.Y = math.Nextafter(c.Y, math.Inf(2*rng.IntN(2)-1))
		}
		want := exact(a, b, c)
		signs[want]++
		require.Equal(t, want, orient(a, b, c), "%v %v %v", a, b, c)
	}
	require.Positive(t, signs[-1])
	require.Positive(t, signs[0])
	require.Positive(t, signs[1])
}

// starPolygon is a random polygon about (cx, cy): vertices at increasing
// angles and random radii, usually simple and not convex.
func starPolygon(rng *rand.Rand, cx, cy, r float64, n int) []Point {
	angles := make([]float64, n)
	for i := range angles {
		angles[i] = rng.Float64() * 2 * math.Pi
	}
	slices.Sort(angles)
	angles = slices.Compact(angles)
	out := make([]Point, len(angles))
	for i, a := range angles {
		rad := r * (0.2 + 0.8*rng.Float64())
		out[i] = Point{cx + rad*math.Cos(a), cy + rad*math.Sin(a)}
	}
	return out
}

// slabArea is area(a ∩ b) by vertical slabs, the oracle for fanArea and
// clipArea. Between consecutive x coordinates of the vertices of either
// polygon and of the crossings of an edge of one with an edge of the other,
// no edge starts, ends or crosses another, so the length of the
// intersection on a vertical line is linear in x across the slab and the
// midpoint rule integrates it exactly: area = Σ width × length at the
// middle, the length being the overlap of the two polygons' inside
// intervals (even–odd rule) on that line.
func slabArea(a, b *shape) float64 {
	lo, hi := math.Max(a.minX, b.minX), math.Min(a.maxX, b.maxX)
	xs := []float64{lo, hi}
	for _, s := range [2]*shape{a, b} {
		for _, p := range s.pts {
			if p.X > lo && p.X < hi {
				xs = append(xs, p.X)
			}
		}
	}
	na, nb := len(a.pts), len(b.pts)
	for i := range na {
		p1, p2 := a.pts[i], a.pts[(i+1)%na]
		for j := range nb {
			q1, q2 := b.pts[j], b.pts[(j+1)%nb]
			if x, ok := crossingX(p1, p2, q1, q2); ok && x > lo && x < hi {
				xs = append(xs, x)
			}
		}
	}
	slices.Sort(xs)
	xs = slices.Compact(xs)
	var area float64
	for k := 1; k < len(xs); k++ {
		x0, x1 := xs[k-1], xs[k]
		xm := x0 + (x1-x0)/2
		area += (x1 - x0) * overlapLength(crossingsAt(a.pts, xm), crossingsAt(b.pts, xm))
	}
	return area
}

// crossingX is the x where segments p1p2 and q1q2 cross, when they do at a
// single point.
func crossingX(p1, p2, q1, q2 Point) (float64, bool) {
	ex, ey := q2.X-q1.X, q2.Y-q1.Y
	d1 := ex*(p1.Y-q1.Y) - ey*(p1.X-q1.X)
	d2 := ex*(p2.Y-q1.Y) - ey*(p2.X-q1.X)
	if (d1 > 0 && d2 > 0) || (d1 < 0 && d2 < 0) || d1 == d2 {
		return 0, false // same side, or parallel (overlaps end at vertices, which are events already)
	}
	fx, fy := p2.X-p1.X, p2.Y-p1.Y
	d3 := fx*(q1.Y-p1.Y) - fy*(q1.X-p1.X)
	d4 := fx*(q2.Y-p1.Y) - fy*(q2.X-p1.X)
	if (d3 > 0 && d4 > 0) || (d3 < 0 && d4 < 0) {
		return 0, false
	}
	t := d1 / (d1 - d2)
	return p1.X + t*fx, true
}

// crossingsAt is the sorted y of the polygon's edges crossing the vertical
// line at x, an edge counting when x is in [its lower x, its upper x), so
// that the crossings pair up into the inside intervals.
func crossingsAt(pts []Point, x float64) []float64 {
	var ys []float64
	n := len(pts)
	for i := range n {
		p, q := pts[i], pts[(i+1)%n]
		if (p.X <= x && x < q.X) || (q.X <= x && x < p.X) {
			ys = append(ys, p.Y+(x-p.X)*(q.Y-p.Y)/(q.X-p.X))
		}
	}
	slices.Sort(ys)
	return ys
}

// overlapLength is the length of the intersection of two unions of
// intervals, each given as sorted endpoints [a0, a1], [a2, a3], ...
func overlapLength(a, b []float64) float64 {
	var total float64
	i, j := 0, 0
	for i+1 < len(a) && j+1 < len(b) {
		if lo, hi := math.Max(a[i], b[j]), math.Min(a[i+1], b[j+1]); hi > lo {
			total += hi - lo
		}
		if a[i+1] < b[j+1] {
			i += 2
		} else {
			j += 2
		}
	}
	return total
}

// TestIntersectionAreaMethods checks the fan of triangles and clipping
// against vertical slabs on random polygons, mostly not convex.
func TestIntersectionAreaMethods(t *testing.T) {
	checked := 0
	for seed := range uint64(500) {
		rng := rand.New(rand.NewPCG(seed, 8))
		ca := Point{40 + rng.Float64()*20, 40 + rng.Float64()*20}
		cb := Point{40 + rng.Float64()*20, 40 + rng.Float64()*20}
		a, err := preparePolygon(starPolygon(rng, ca.X, ca.Y, 30, 3+rng.IntN(30)))
		if err != nil {
			continue // two angles a rounding apart can make a sliver cross
		}
		b, err := preparePolygon(starPolygon(rng, cb.X, cb.Y, 30, 3+rng.IntN(30)))
		if err != nil {
			continue
		}
		want := slabArea(&a, &b)
		tol := 1e-9 * math.Max(1, want)
		require.InDelta(t, want, fanArea(&a, &b), tol, "seed %d", seed)
		require.InDelta(t, want, fanArea(&b, &a), tol, "seed %d", seed)
		if b.convex {
			require.InDelta(t, want, clipArea(a.pts, b.pts), tol, "seed %d", seed)
		}
		if a.convex {
			require.InDelta(t, want, clipArea(b.pts, a.pts), tol, "seed %d", seed)
		}
		v := shapeIoU(&a, &b)
		require.GreaterOrEqual(t, v, 0.0)
		require.LessOrEqual(t, v, 1.0)
		checked++
	}
	require.Greater(t, checked, 450)
}

// TestIntersectionAreaGrid checks both methods against counting the cells
// of a fine grid whose centres are in both polygons (the polygons' vertices
// on a coarser grid, so the count converges fast).
func TestIntersectionAreaGrid(t *testing.T) {
	inside := func(p []Point, x, y float64) bool {
		in := false
		for i := range p {
			a, b := p[i], p[(i+1)%len(p)]
			if (a.Y > y) != (b.Y > y) && x < a.X+(y-a.Y)*(b.X-a.X)/(b.Y-a.Y) {
				in = !in
			}
		}
		return in
	}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 10))
		grid := func(p []Point) []Point {
			for i := range p {
				p[i] = Point{math.Round(p[i].X), math.Round(p[i].Y)}
			}
			return p
		}
		pa := grid(starPolygon(rng, 10, 10, 9, 8))
		pb := grid(starPolygon(rng, 11, 9, 9, 8))
		a, errA := preparePolygon(pa)
		b, errB := preparePolygon(pb)
		if errA != nil || errB != nil {
			continue
		}
		const step = 0.05
		var cells int
		for x := step / 2; x < 20; x += step {
			for y := step / 2; y < 20; y += step {
				if inside(a.pts, x, y) && inside(b.pts, x, y) {
					cells++
				}
			}
		}
		want := float64(cells) * step * step
		// The cells cut by an edge are the error: perimeter × step at most.
		require.InDelta(t, want, slabArea(&a, &b), 0.05*want+1, "seed %d", seed)
		require.InDelta(t, want, fanArea(&a, &b), 0.05*want+1, "seed %d", seed)
	}
}

// BenchmarkPolygonIoU times the intersection area of two non-convex
// 60-vertex polygons by the fan of triangles (what PolygonIoU does) against
// vertical slabs, the tests' oracle, measured in the same run.
func BenchmarkPolygonIoU(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	sa, err := preparePolygon(starPolygon(rng, 50, 50, 30, 60))
	require.NoError(b, err)
	sb, err := preparePolygon(starPolygon(rng, 55, 48, 30, 60))
	require.NoError(b, err)
	require.False(b, sa.convex || sb.convex)
	want := slabArea(&sa, &sb)

	start := time.Now()
	const baseRuns = 200
	for range baseRuns {
		_ = slabArea(&sa, &sb)
	}
	base := float64(time.Since(start).Nanoseconds()) / baseRuns

	b.ResetTimer()
	for b.Loop() {
		if got := fanArea(&sa, &sb); math.Abs(got-want) > 1e-9*want {
			b.Fatalf("fan %v, slab %v", got, want)
		}
	}
	b.StopTimer()
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(per/1e3, "µs/op-fan")
	b.ReportMetric(base/1e3, "µs/op-slab")
	b.ReportMetric(base/per, "slab/fan")
}
