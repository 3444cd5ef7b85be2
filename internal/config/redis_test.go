package config_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/config"
	"github.com/labelq/labelq/internal/testenv"
)

// TestRedisClusterClientFollowsFailover kill -9s the master that holds a key on a
// real cluster: once a replica has taken over, the client labelq makes
// (LABELQ_REDIS_CLUSTER_ADDRS) reads the key from it. go-redis's own client keeps
// dialling the dead master until its next periodic reload, a minute later.
func TestRedisClusterClientFollowsFailover(t *testing.T) {
	t.Parallel()
	c := testenv.RedisClusterT(t)
	ctx := context.Background()
	cfg, err := config.Load(env(map[string]string{"LABELQ_REDIS_CLUSTER_ADDRS": fmt.Sprintf("%s,%s", c.Addrs()[0], c.Addrs()[1])}))
	require.NoError(t, err)
	opt, err := cfg.RedisConnOpt()
	require.NoError(t, err)
	rdb := opt.MakeRedisClient().(*redis.ClusterClient)
	defer func() { _ = rdb.Close() }()
	require.NoError(t, rdb.Set(ctx, "k", "v", 0).Err())
	m, err := c.MasterOf(ctx, "k")
	require.NoError(t, err)
	mc := redis.NewClient(&redis.Options{Addr: m.Addr})
	require.NoError(t, mc.Wait(ctx, 1, 5*time.Second).Err(), "the replica has the key")
	_ = mc.Close()
	killed, err := c.KillMaster(ctx, "k")
	require.NoError(t, err)
	require.NoError(t, c.WaitFailover(ctx, killed))
	// Well below ClusterStateReload: the failed commands made the client reload.
	require.Eventually(t, func() bool { return rdb.Get(ctx, "k").Val() == "v" }, config.ClusterStateReload*3/4, 50*time.Millisecond,
		"the client reads from the promoted replica")
}
