package testenv

import "testing"

// HeavyTestPass is the `go test -run` pattern of the tests that SkipUnderRace
// keeps out of the race pass; `make test` runs them in a second pass built without
// -race, so CI runs every one of them.
const HeavyTestPass = "^(TestPackHuge|TestExportZIP64ManyEntries)$"

// SkipUnderRace skips a test that moves gigabytes through one stream (ZIP64 beyond
// 4 GiB, 70,000-entry exports) when the binary is built with -race: the detector
// makes such a test five times slower (4 min 47 s for the two, against 1 min 22 s)
// and finds nothing in single-stream byte crunching that the rest of the suite does
// not exercise under it. `make test` runs these tests again without -race
// (HeavyTestPass), so they are never only skipped.
func SkipUnderRace(t testing.TB) {
	t.Helper()
	if RaceEnabled {
		t.Skip("runs in make test's second pass, built without -race (see testenv.HeavyTestPass)")
	}
}
