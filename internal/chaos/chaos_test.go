package chaos_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/chaos"
)

// TestChaosShort is the short variant of `make chaos` (Short): every fault once, a few
// kills, a few dozen uploads; every invariant must hold.
func TestChaosShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var log bytes.Buffer
	cfg := chaos.Short()
	cfg.Log = &log
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		t.Log(log.String())
	}
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, rep.Print(&out))
	t.Log(out.String())
	if !rep.OK() {
		t.Log(log.String())
	}
	require.True(t, rep.OK(), "broken invariants: %+v", rep.Failed())
}
