package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportRules checks the layering that .golangci.yml's depguard rules enforce in
// `make lint`, from what the Go tool says each package links: nothing under internal/
// (tests included) depends on a worker, and no worker depends on another.
func TestImportRules(t *testing.T) {
	t.Parallel()
	deps := func(pattern string) []string {
		out, err := exec.Command("go", "list", "-deps", "-test", pattern).Output()
		require.NoError(t, err, "go list %s", pattern)
		return strings.Fields(string(out))
	}
	const mod = "github.com/labelq/labelq/"
	internal := deps("../../internal/...")
	require.NotEmpty(t, internal)
	for _, d := range internal {
		require.False(t, strings.HasPrefix(d, mod+"worker/"), "internal/... links %s", d)
	}
	// Every directory of worker/ is a worker package: a new one is checked without
	// anyone remembering to list it.
	entries, err := os.ReadDir("../../worker")
	require.NoError(t, err)
	var workers []string
	for _, e := range entries {
		if e.IsDir() {
			workers = append(workers, e.Name())
		}
	}
	require.Subset(t, workers, []string{"validate", "preannotate", "match", "export", "sync"})
	for _, w := range workers {
		for _, d := range deps("../../worker/" + w) {
			if strings.HasPrefix(d, mod+"worker/") {
				own := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(d, mod+"worker/"), ".test"), "_test")
				require.Equal(t, w, own, "worker/%s links %s", w, d)
			}
		}
	}
	// cmd/labelq is where the workers are linked.
	var linked int
	for _, d := range deps(".") {
		if strings.HasPrefix(d, mod+"worker/") {
			linked++
		}
	}
	require.Positive(t, linked, "cmd/labelq wires the workers")
}
