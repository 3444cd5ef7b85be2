package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// TestRedisClusterFailsOver starts the private cluster, writes a key to every
// master, kill -9s the master of one and sees its replica serve it.
func TestRedisClusterFailsOver(t *testing.T) {
	t.Parallel()
	c := testenv.RedisClusterT(t)
	ctx := context.Background()
	ms, err := c.Masters(ctx)
	require.NoError(t, err)
	require.Len(t, ms, 3)
	cl := c.Client()
	defer func() { _ = cl.Close() }()
	for i := range 30 {
		require.NoError(t, cl.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err())
	}
	// WAIT: the replica has the keys before its master dies.
	require.NoError(t, cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.Wait(ctx, 1, 5*time.Second).Err()
	}))
	killed, err := c.KillMaster(ctx, "k0")
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, c.WaitFailover(ctx, killed))
	t.Logf("failover of %s took %s", killed.Addr, time.Since(start))
	// The first command for a moved slot may still go to the dead master; its
	// failure makes the client read the slot map again.
	require.Eventually(t, func() bool { return cl.Get(ctx, "k0").Err() == nil }, 5*time.Second, 20*time.Millisecond)
	for i := range 30 {
		v, err := cl.Get(ctx, fmt.Sprintf("k%d", i)).Int()
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	require.NoError(t, c.Restart(ctx, killed))
	ms, err = c.Masters(ctx)
	require.NoError(t, err)
	require.Len(t, ms, 3)
	require.NotContains(t, ms, killed, "the restarted node rejoins as a replica")
}

// TestRedisSentinelFailsOver kill -9s the master of the private Sentinel set and
// sees the sentinels promote the replica, and the old master rejoin as its replica.
func TestRedisSentinelFailsOver(t *testing.T) {
	t.Parallel()
	s := testenv.RedisSentinelT(t)
	ctx := context.Background()
	cl := s.Client()
	defer func() { _ = cl.Close() }()
	require.NoError(t, cl.Set(ctx, "k", "v", 0).Err())
	require.NoError(t, cl.Wait(ctx, 1, 5*time.Second).Err())
	killed, err := s.KillMaster(ctx)
	require.NoError(t, err)
	require.Same(t, s.Servers[0], killed)
	start := time.Now()
	m, err := s.WaitFailover(ctx, killed)
	require.NoError(t, err)
	t.Logf("failover of %s took %s", killed.Addr, time.Since(start))
	require.Same(t, s.Servers[1], m)
	require.Eventually(t, func() bool { return cl.Get(ctx, "k").Val() == "v" }, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, s.Restart(ctx, killed))
	now, err := s.Master(ctx)
	require.NoError(t, err)
	require.Same(t, m, now)
}
