package app

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// TestStartsDuringAClusterFailover starts a process the moment the master holding
// asynq's queue set is killed: it waits for the replica to take over instead of
// exiting (a worker restarted mid-failover used to stay down), while a single
// server that does not answer is still reported at once.
func TestStartsDuringAClusterFailover(t *testing.T) {
	t.Parallel()
	c := testenv.RedisClusterT(t)
	env := testenv.New(t)
	cfg := env.Config(t, map[string]string{"LABELQ_REDIS_CLUSTER_ADDRS": strings.Join(c.Addrs(), ",")})
	ctx := context.Background()
	killed, err := c.KillMaster(ctx, "asynq:queues")
	require.NoError(t, err)
	a, err := New(ctx, cfg, testenv.Quiet())
	require.NoError(t, err, "the process comes up once the replica serves")
	a.Close()
	require.NoError(t, c.WaitFailover(ctx, killed))

	single := env.Config(t, map[string]string{"LABELQ_REDIS_URL": "redis://" + testenv.FreeAddr(t) + "/0"})
	_, err = New(ctx, single, testenv.Quiet())
	require.ErrorContains(t, err, "connect to Redis")
}
