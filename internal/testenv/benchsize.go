package testenv

import (
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchSize is a benchmark's size from the environment variable name (a positive
// count, so a quick run on a small machine can shrink it), def when it is unset.
func BenchSize(b testing.TB, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(b, err, "%s must be a number", name)
	require.Positive(b, n, "%s must be a positive number", name)
	return n
}
