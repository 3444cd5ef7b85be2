package app

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// TestLimitersShareOneRedisClientThatCloseCloses: the LLM limiter and the API's
// request limiter use the App's one go-redis client, and Close closes it, so an
// App that is built and closed leaves no connection behind.
func TestLimitersShareOneRedisClientThatCloseCloses(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	a, err := New(context.Background(), env.Config(t, map[string]string{"LABELQ_API_RATE_LIMIT": "600/min"}), testenv.Quiet())
	require.NoError(t, err)
	q := a.apiQuotas()
	require.NotNil(t, q.RateLimit, "the request limiter is on")
	_, _, err = a.LLMClient()
	require.NoError(t, err)
	rdb, err := a.redisClient()
	require.NoError(t, err)
	require.NoError(t, rdb.Ping(context.Background()).Err())
	first := rdb
	again, err := a.redisClient()
	require.NoError(t, err)
	require.Same(t, first.(*redis.Client), again.(*redis.Client), "one client for both limiters")

	a.Close()
	require.ErrorIs(t, rdb.Ping(context.Background()).Err(), redis.ErrClosed)
}
