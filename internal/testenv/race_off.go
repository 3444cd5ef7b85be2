//go:build !race

package testenv

// RaceEnabled is true when the binary is built with -race.
const RaceEnabled = false
