package quality

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
)

// Intersection over union of image regions.
//
// Coordinates are Label Studio's, percent of the image. IoU is a ratio of
// areas, and an affine map (percent → pixels scales x and y by different
// factors) multiplies every area by the same factor, so IoU in percent equals
// IoU in pixels and no image size is needed, except to rotate a box: Label
// Studio rotates in pixels, so a rotated box's corners are computed in
// pixels and mapped back to percent (Box.Corners).
//
// Intersection areas:
//   - two unrotated boxes: the overlap of the intervals on each axis;
//   - when one of the two shapes is convex (any box, any convex polygon):
//     Sutherland–Hodgman clipping of the other by it. The clipped outline of a
//     non-convex polygon may run along the clip edges several times, but its
//     winding number is the polygon's inside the convex region and 0 outside
//     (each cut-off excursion and the chord replacing it wind 0 around any
//     point of the region), so its signed (shoelace) area is exactly the area
//     of the intersection;
//   - two non-convex polygons: the fan of triangles (b₀, b_i, b_i+1) from
//     the first vertex of one of them, b. A closed polygon's winding number
//     is the sum of its fan triangles' signed ones, from any apex, so
//     area(a ∩ b) = Σ ± area(a ∩ triangle_i), the sign the triangle's
//     orientation, each term a clip of a by a convex triangle as above.
//     That is O(n·m) for polygons of n and m vertices, as for one convex
//     clip; triangles outside a's bounding box are skipped. The terms of
//     opposite signs cancel where b is not convex, so the rounding error is
//     about ε times the triangles' total area rather than the result's.
//
// All three are exact but for floating-point rounding: identical shapes give
// IoU 1 to within ~1e-15. The tests check them against another method,
// vertical slabs (exact by construction, slower), and against counting grid
// cells.
//
// Polygons must be simple: no edge may cross or touch another except at the
// vertex two consecutive edges share, which CheckPolygon decides with exact
// orientation tests (Shewchuk's filtered predicate, exact rational arithmetic
// when the float is too close to call). Consecutive repeated points are
// dropped first (Label Studio may repeat the closing point). A polygon that
// crosses itself is refused with ErrSelfIntersecting rather than scored
// under some fill rule: its "area" would be a guess at what the annotator
// meant.

// Errors for shapes IoU cannot be computed for; every error of BoxIoU,
// PolygonIoU and CheckPolygon wraps one of them.
var (
	// ErrSelfIntersecting is a polygon with two edges that cross or touch.
	ErrSelfIntersecting = errors.New("polygon is self-intersecting")
	// ErrDegenerate is a polygon with fewer than three distinct points or
	// no area, or a box without width or height.
	ErrDegenerate = errors.New("shape has no area")
	// ErrNotFinite is a coordinate that is NaN or infinite.
	ErrNotFinite = errors.New("coordinate is not a finite number")
)

// Point is a vertex, in percent of the image.
type Point struct {
	X, Y float64
}

// Box is a Label Studio rectangle: the top-left corner (X, Y), Width and
// Height in percent of the image, and Rotation in degrees clockwise (on
// screen, y pointing down) about that corner, applied in pixels.
// ImageWidth and ImageHeight are the image's size in pixels (the region's
// original_width and original_height); when either is 0 the image is taken
// as square, which only matters to a rotated box.
type Box struct {
	X, Y, Width, Height, Rotation float64
	ImageWidth, ImageHeight       float64
}

// rotated reports whether the box's rotation is not a multiple of 360°.
func (b Box) rotated() bool { return math.Mod(b.Rotation, 360) != 0 }

// Corners are the box's four corners in percent of the image, in Label
// Studio's order: the top-left corner it stores, then along the width, the
// opposite corner, along the height.
func (b Box) Corners() []Point {
	if !b.rotated() {
		return []Point{{b.X, b.Y}, {b.X + b.Width, b.Y}, {b.X + b.Width, b.Y + b.Height}, {b.X, b.Y + b.Height}}
	}
	iw, ih := b.ImageWidth, b.ImageHeight
	if iw <= 0 || ih <= 0 {
		iw, ih = 100, 100
	}
	sx, sy := iw/100, ih/100 // percent → pixels
	x, y, w, h := b.X*sx, b.Y*sy, b.Width*sx, b.Height*sy
	sin, cos := math.Sincos(b.Rotation * math.Pi / 180)
	px := [4]float64{x, x + w*cos, x + w*cos - h*sin, x - h*sin}
	py := [4]float64{y, y + w*sin, y + w*sin + h*cos, y + h*cos}
	out := make([]Point, 4)
	for i := range out {
		out[i] = Point{px[i] / sx, py[i] / sy}
	}
	return out
}

// BoxIoU is the intersection over union of two boxes, in [0, 1]. Unrotated
// boxes are intersected directly; a rotated one becomes the polygon of its
// corners.
func BoxIoU(a, b Box) (float64, error) {
	sa, err := prepareBox(a)
	if err != nil {
		return 0, err
	}
	sb, err := prepareBox(b)
	if err != nil {
		return 0, err
	}
	return shapeIoU(&sa, &sb), nil
}

// PolygonIoU is the intersection over union of two simple polygons, in
// [0, 1]. Their vertices may run either way round. The error wraps
// ErrSelfIntersecting, ErrDegenerate or ErrNotFinite and says which polygon.
func PolygonIoU(a, b []Point) (float64, error) {
	sa, err := preparePolygon(a)
	if err != nil {
		return 0, fmt.Errorf("first polygon: %w", err)
	}
	sb, err := preparePolygon(b)
	if err != nil {
		return 0, fmt.Errorf("second polygon: %w", err)
	}
	return shapeIoU(&sa, &sb), nil
}

// CheckPolygon reports whether p is a polygon PolygonIoU takes: finite
// coordinates, at least three distinct points once consecutive repeats are
// dropped, and simple (the error names two edges that cross or touch, edge i
// running from point i to point i+1 of the polygon with repeats dropped).
// It compares only the pairs of edges whose x ranges overlap, all n² pairs
// of an n-point polygon at worst.
func CheckPolygon(p []Point) error {
	_, err := preparePolygon(p)
	return err
}

// shape is a box or polygon ready to intersect: counter-clockwise (positive
// shoelace area), without repeated consecutive points.
type shape struct {
	pts                    []Point
	area                   float64
	minX, minY, maxX, maxY float64
	convex                 bool
	// axisRect: pts are an unrotated box, intersected by intervals.
	axisRect bool
}

func prepareBox(b Box) (shape, error) {
	for _, v := range [...]float64{b.X, b.Y, b.Width, b.Height, b.Rotation, b.ImageWidth, b.ImageHeight} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return shape{}, fmt.Errorf("box: %w", ErrNotFinite)
		}
	}
	if !(b.Width > 0 && b.Height > 0) {
		return shape{}, fmt.Errorf("box of %v × %v: %w", b.Width, b.Height, ErrDegenerate)
	}
	if !b.rotated() {
		s := shape{
			pts:  []Point{{b.X, b.Y}, {b.X + b.Width, b.Y}, {b.X + b.Width, b.Y + b.Height}, {b.X, b.Y + b.Height}},
			area: b.Width * b.Height,
			minX: b.X, minY: b.Y, maxX: b.X + b.Width, maxY: b.Y + b.Height,
			convex: true, axisRect: true,
		}
		return s, nil
	}
	s, err := preparePolygon(b.Corners())
	if err != nil { // a box too thin for its corners to stay apart in floats
		return shape{}, fmt.Errorf("rotated box: %w", err)
	}
	return s, nil
}

func preparePolygon(p []Point) (shape, error) {
	pts := make([]Point, 0, len(p))
	for i, q := range p {
		if math.IsNaN(q.X) || math.IsInf(q.X, 0) || math.IsNaN(q.Y) || math.IsInf(q.Y, 0) {
			return shape{}, fmt.Errorf("point %d: %w", i, ErrNotFinite)
		}
		if len(pts) == 0 || pts[len(pts)-1] != q {
			pts = append(pts, q)
		}
	}
	for len(pts) > 1 && pts[len(pts)-1] == pts[0] {
		pts = pts[:len(pts)-1]
	}
	if len(pts) < 3 {
		return shape{}, fmt.Errorf("%d distinct points: %w", len(pts), ErrDegenerate)
	}
	if err := checkSimple(pts); err != nil {
		return shape{}, err
	}
	area := signedArea(pts)
	if area == 0 {
		return shape{}, ErrDegenerate
	}
	if area < 0 {
		slices.Reverse(pts)
		area = -area
	}
	s := shape{pts: pts, area: area, convex: true}
	s.minX, s.minY, s.maxX, s.maxY = bounds(pts)
	n := len(pts)
	for i := range n {
		if orient(pts[(i+n-1)%n], pts[i], pts[(i+1)%n]) < 0 {
			s.convex = false
			break
		}
	}
	return s, nil
}

func bounds(pts []Point) (minX, minY, maxX, maxY float64) {
	minX, minY, maxX, maxY = pts[0].X, pts[0].Y, pts[0].X, pts[0].Y
	for _, q := range pts[1:] {
		minX, maxX = math.Min(minX, q.X), math.Max(maxX, q.X)
		minY, maxY = math.Min(minY, q.Y), math.Max(maxY, q.Y)
	}
	return minX, minY, maxX, maxY
}

// signedArea is the shoelace area: positive counter-clockwise (y up).
func signedArea(pts []Point) float64 {
	var s float64
	n := len(pts)
	for i := range n {
		a, b := pts[i], pts[(i+1)%n]
		s += a.X*b.Y - b.X*a.Y
	}
	return s / 2
}

// checkSimple looks for two edges that meet other than at the vertex
// consecutive edges share, sweeping edges by their left end so that only
// edges whose x ranges overlap are compared. Consecutive edges fail when
// they fold back along each other.
func checkSimple(pts []Point) error {
	n := len(pts)
	type edge struct {
		i                      int
		minX, maxX, minY, maxY float64
	}
	edges := make([]edge, n)
	for i := range n {
		a, b := pts[i], pts[(i+1)%n]
		edges[i] = edge{i, math.Min(a.X, b.X), math.Max(a.X, b.X), math.Min(a.Y, b.Y), math.Max(a.Y, b.Y)}
	}
	slices.SortFunc(edges, func(x, y edge) int { return cmp.Or(cmp.Compare(x.minX, y.minX), cmp.Compare(x.i, y.i)) })
	for k, e := range edges {
		for _, f := range edges[k+1:] {
			if f.minX > e.maxX {
				break
			}
			if f.minY > e.maxY || f.maxY < e.minY {
				continue
			}
			i, j := min(e.i, f.i), max(e.i, f.i)
			p1, p2 := pts[i], pts[(i+1)%n]
			q1, q2 := pts[j], pts[(j+1)%n]
			switch {
			case j == i+1: // share p2 == q1
				if foldsBack(p1, p2, q2) {
					return fmt.Errorf("%w: edges %d and %d fold back along each other", ErrSelfIntersecting, i, j)
				}
			case i == 0 && j == n-1: // share p1 == q2
				if foldsBack(q1, p1, p2) {
					return fmt.Errorf("%w: edges %d and %d fold back along each other", ErrSelfIntersecting, j, i)
				}
			default:
				if segmentsMeet(p1, p2, q1, q2) {
					return fmt.Errorf("%w: edges %d and %d cross or touch", ErrSelfIntersecting, i, j)
				}
			}
		}
	}
	return nil
}

// foldsBack reports whether the path a → v → b turns back on itself: a and b
// on the same ray from v.
func foldsBack(a, v, b Point) bool {
	if orient(a, v, b) != 0 {
		return false
	}
	sign := func(x float64) int { return cmp.Compare(x, 0) }
	return sign(a.X-v.X) == sign(b.X-v.X) && sign(a.Y-v.Y) == sign(b.Y-v.Y)
}

// segmentsMeet reports whether closed segments p1p2 and q1q2 share a point,
// exactly.
func segmentsMeet(p1, p2, q1, q2 Point) bool {
	o1, o2 := orient(p1, p2, q1), orient(p1, p2, q2)
	o3, o4 := orient(q1, q2, p1), orient(q1, q2, p2)
	if o1*o2 < 0 && o3*o4 < 0 {
		return true
	}
	return (o1 == 0 && within(p1, p2, q1)) || (o2 == 0 && within(p1, p2, q2)) ||
		(o3 == 0 && within(q1, q2, p1)) || (o4 == 0 && within(q1, q2, p2))
}

// within reports whether c, collinear with a and b, lies on segment ab.
func within(a, b, c Point) bool {
	return math.Min(a.X, b.X) <= c.X && c.X <= math.Max(a.X, b.X) &&
		math.Min(a.Y, b.Y) <= c.Y && c.Y <= math.Max(a.Y, b.Y)
}

// ccwErrBound is Shewchuk's bound on the rounding of the float orientation
// determinant, (3 + 16ε)ε with ε = 2^−53.
const ccwErrBound = (3 + 16*0x1p-53) * 0x1p-53

// orient is the sign of the cross product (b − a) × (c − a), exactly: +1
// when a, b, c turn counter-clockwise (y up), −1 clockwise, 0 collinear.
func orient(a, b, c Point) int {
	dx1, dy1 := b.X-a.X, b.Y-a.Y
	dx2, dy2 := c.X-a.X, c.Y-a.Y
	l, r := dx1*dy2, dy1*dx2
	det := l - r
	if bound := ccwErrBound * (math.Abs(l) + math.Abs(r)); det > bound {
		return 1
	} else if det < -bound {
		return -1
	}
	// A float difference is 0 only when the coordinates are equal, so a
	// product with a zero factor is exactly 0: points on an axis-parallel
	// line need no rationals.
	if (dx1 == 0 || dy2 == 0) && (dy1 == 0 || dx2 == 0) {
		return 0
	}
	rat := func(v float64) *big.Rat { return new(big.Rat).SetFloat64(v) }
	diff := func(p, q float64) *big.Rat { return new(big.Rat).Sub(rat(p), rat(q)) }
	left := new(big.Rat).Mul(diff(b.X, a.X), diff(c.Y, a.Y))
	right := new(big.Rat).Mul(diff(b.Y, a.Y), diff(c.X, a.X))
	return left.Cmp(right)
}

// shapeIoU is the IoU of two prepared shapes.
func shapeIoU(a, b *shape) float64 {
	if a.maxX <= b.minX || b.maxX <= a.minX || a.maxY <= b.minY || b.maxY <= a.minY {
		return 0
	}
	var inter float64
	switch {
	case a.axisRect && b.axisRect:
		inter = (math.Min(a.maxX, b.maxX) - math.Max(a.minX, b.minX)) * (math.Min(a.maxY, b.maxY) - math.Max(a.minY, b.minY))
	case b.convex:
		inter = clipArea(a.pts, b.pts)
	case a.convex:
		inter = clipArea(b.pts, a.pts)
	default:
		inter = fanArea(a, b)
	}
	inter = math.Max(0, math.Min(inter, math.Min(a.area, b.area)))
	union := a.area + b.area - inter
	if union <= 0 {
		return 0
	}
	return math.Min(1, inter/union)
}

// clipArea is the area of subject ∩ clip by Sutherland–Hodgman, clip convex
// and both counter-clockwise (see the comment at the top of the file for why
// a non-convex subject is fine).
func clipArea(subject, clip []Point) float64 {
	out := slices.Clone(subject)
	var in []Point
	m := len(clip)
	for i := range m {
		c1, c2 := clip[i], clip[(i+1)%m]
		ex, ey := c2.X-c1.X, c2.Y-c1.Y
		side := func(p Point) float64 { return ex*(p.Y-c1.Y) - ey*(p.X-c1.X) }
		in, out = out, in[:0]
		if len(in) == 0 {
			return 0
		}
		prev := in[len(in)-1]
		dPrev := side(prev)
		for _, cur := range in {
			dCur := side(cur)
			if (dCur >= 0) != (dPrev >= 0) {
				t := dPrev / (dPrev - dCur)
				out = append(out, Point{prev.X + t*(cur.X-prev.X), prev.Y + t*(cur.Y-prev.Y)})
			}
			if dCur >= 0 {
				out = append(out, cur)
			}
			prev, dPrev = cur, dCur
		}
	}
	if len(out) < 3 {
		return 0
	}
	return signedArea(out)
}

// fanArea is the area of a ∩ b for any two simple polygons: b's fan of
// triangles from its first vertex, each clipping a, summed with the
// triangles' signs (see the top of the file).
func fanArea(a, b *shape) float64 {
	var total float64
	tri := make([]Point, 3)
	b0 := b.pts[0]
	for i := 1; i+1 < len(b.pts); i++ {
		p, q := b.pts[i], b.pts[i+1]
		if math.Max(b0.X, math.Max(p.X, q.X)) <= a.minX || math.Min(b0.X, math.Min(p.X, q.X)) >= a.maxX ||
			math.Max(b0.Y, math.Max(p.Y, q.Y)) <= a.minY || math.Min(b0.Y, math.Min(p.Y, q.Y)) >= a.maxY {
			continue
		}
		tri[0], tri[1], tri[2] = b0, p, q
		sign := 1.0
		switch area := signedArea(tri); {
		case area == 0:
			continue
		case area < 0:
			tri[1], tri[2] = q, p
			sign = -1
		}
		total += sign * clipArea(a.pts, tri)
	}
	return total
}
