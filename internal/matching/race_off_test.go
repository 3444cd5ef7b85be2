//go:build !race

package matching

// RaceEnabled: see race_on_test.go.
const RaceEnabled = false
