package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

func TestRateString(t *testing.T) {
	require.Equal(t, "600/min", Rate{600, time.Minute}.String())
	require.Equal(t, "20/s", Rate{20, time.Second}.String())
	require.Equal(t, "0", Rate{}.String())
}

// Two processes (two clients) on one Redis share one budget per key, and keys
// do not share.
func TestRequestsShareOneBudgetAcrossProcesses(t *testing.T) {
	r := testenv.RedisDB(t)
	mk := func() *Requests {
		c := redis.NewClient(&redis.Options{Addr: r.Addr, DB: r.DB})
		t.Cleanup(func() { _ = c.Close() })
		l, err := NewRequests(c, "test:api:", Rate{N: 4, Per: time.Minute})
		require.NoError(t, err)
		return l
	}
	a, b := mk(), mk()
	ctx := context.Background()
	for i, l := range []*Requests{a, b, a, b} {
		d, err := l.Allow(ctx, "tok:1")
		require.NoError(t, err)
		require.True(t, d.Allowed, "request %d", i)
	}
	d, err := b.Allow(ctx, "tok:1")
	require.NoError(t, err)
	require.False(t, d.Allowed, "the fifth request of the minute is refused, whichever process takes it")
	require.InDelta(t, 15*time.Second, d.RetryAfter, float64(2*time.Second), "one request comes back every 15 s")

	d, err = a.Allow(ctx, "tok:2")
	require.NoError(t, err)
	require.True(t, d.Allowed, "another token has its own budget")
}
