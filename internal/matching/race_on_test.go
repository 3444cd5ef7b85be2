//go:build race

package matching

// RaceEnabled scales the randomized tests (inside and outside the package)
// down under the race detector, which makes them several times slower
// without finding anything new in this single-goroutine code.
const RaceEnabled = true
