package database_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGeneratedCodeIsFresh fails when a query or migration changed without
// `make generate`: sqlc diff compares what it would generate with internal/db.
func TestGeneratedCodeIsFresh(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("sqlc")
	if err != nil {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			home, _ := os.UserHomeDir()
			gopath = filepath.Join(home, "go")
		}
		bin = filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin", "sqlc")
		_, err = os.Stat(bin)
	}
	require.NoError(t, err, "sqlc is not installed: run `make tools`")
	cmd := exec.Command(bin, "diff")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "generated code in internal/db is stale: run `make generate`\n%s", out)
}
