package formats

import (
	"math"
	"strconv"

	"github.com/labelq/labelq/internal/labelconfig"
)

// boxPixels is a rectangle region in pixels of a w × h image: x, y, width,
// height of the axis-aligned box. A rotated rectangle (Label Studio rotates
// clockwise, in degrees, about the top-left corner it stores) becomes the
// envelope of its corners, clipped to the image.
func boxPixels(v labelconfig.Value, w, h float64) (x, y, bw, bh float64) {
	x, y = v.X/100*w, v.Y/100*h
	bw, bh = v.Width/100*w, v.Height/100*h
	if v.Rotation == 0 {
		return x, y, bw, bh
	}
	sin, cos := math.Sincos(v.Rotation * math.Pi / 180)
	xs := [4]float64{x, x + bw*cos, x + bw*cos - bh*sin, x - bh*sin}
	ys := [4]float64{y, y + bw*sin, y + bw*sin + bh*cos, y + bh*cos}
	x0, x1 := minMax(xs[:])
	y0, y1 := minMax(ys[:])
	x0, x1 = clamp(x0, 0, w), clamp(x1, 0, w)
	y0, y1 = clamp(y0, 0, h), clamp(y1, 0, h)
	return x0, y0, x1 - x0, y1 - y0
}

func minMax(vs []float64) (lo, hi float64) {
	lo, hi = vs[0], vs[0]
	for _, v := range vs[1:] {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// polygonArea is the area of a polygon (shoelace), as Label Studio's
// get_polygon_area.
func polygonArea(xs, ys []float64) float64 {
	var s float64
	n := len(xs)
	for i := range n {
		j := (i + 1) % n
		s += xs[i]*ys[j] - xs[j]*ys[i]
	}
	return math.Abs(s) / 2
}

// appendNum appends a JSON number: the shortest decimal that reads back as
// v, in plain notation for the magnitudes pixel coordinates have.
func appendNum(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...) // JSON has no such numbers
	}
	if v == 0 {
		return append(b, '0')
	}
	if a := math.Abs(v); a < 1e-6 || a >= 1e15 {
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}
