package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	out := `goos: linux
pkg: github.com/labelq/labelq/internal/verify
BenchmarkMeasure1GiB-2   	       1	1200000000 ns/op	       850.0 verify_MBps	      1000 sha256_MBps	         0.85 ratio
--- FAIL: BenchmarkBroken
FAIL	github.com/labelq/labelq/internal/x	1.0s
`
	rows, fails := Parse(strings.NewReader(out))
	require.Len(t, rows, 1)
	require.Equal(t, "BenchmarkMeasure1GiB", rows[0].Name)
	require.Equal(t, "github.com/labelq/labelq/internal/verify", rows[0].Pkg)
	require.Equal(t, [][2]string{{"verify_MBps", "850.0"}, {"sha256_MBps", "1000"}, {"ratio", "0.85"}}, rows[0].Metrics)
	require.Len(t, fails, 2)
}
