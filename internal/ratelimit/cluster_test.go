package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// TestEveryScriptRunsOnRedisCluster runs every Lua script of the package (the
// semaphore's acquire and count, the pause, the token reservation and its
// settlement, redis_rate's GCRA for requests, the fair turns' room) through two processes' cluster
// clients on a real Redis Cluster. A cluster refuses a script whose keys lie in
// two hash slots (CROSSSLOT), so this fails the day a script takes a second key
// that does not share the first one's slot.
func TestEveryScriptRunsOnRedisCluster(t *testing.T) {
	t.Parallel()
	c := testenv.RedisClusterT(t)
	ctx := context.Background()
	mk := func(cfg Config) *Limiter {
		rdb := c.Client()
		t.Cleanup(func() { _ = rdb.Close() })
		l, err := New(rdb, cfg)
		require.NoError(t, err)
		return l
	}
	cfg := Config{Prefix: PrefixFor("http://llm.test/v1"), RequestsPerMinute: 3, TokensPerMinute: 1000, TokenBurst: 500,
		MaxConcurrent: 1, Period: time.Minute, Headroom: -1, PollInterval: 5 * time.Millisecond, MaxSleep: 50 * time.Millisecond, MaxWait: 100 * time.Millisecond}
	a, b := mk(cfg), mk(cfg)

	p, err := a.Acquire(ctx, 400)
	require.NoError(t, err)
	n, err := b.InFlight(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the other process sees the slot taken")
	_, err = b.Acquire(ctx, 1)
	var we *WaitError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "concurrent calls", we.Limit)
	p.Release()
	back, err := p.Settle(ctx, 100)
	require.NoError(t, err)
	require.InDelta(t, 300, back, 5, "the unused reservation comes back")

	// Tokens: 400 reserved and 300 of them returned leave 400 of the burst of 500.
	p, err = b.Acquire(ctx, 400)
	require.NoError(t, err)
	p.Release()
	_, err = a.Acquire(ctx, 400)
	require.ErrorAs(t, err, &we)
	require.Equal(t, "tokens per minute", we.Limit)

	// Requests: 3 per minute with a burst of 2 (two taken above), shared.
	small := mk(Config{Prefix: cfg.Prefix, RequestsPerMinute: 3, Period: time.Minute, Headroom: -1, MaxSleep: 50 * time.Millisecond})
	_, err = small.Acquire(ctx, 1)
	require.ErrorAs(t, err, &we)
	require.Equal(t, "requests per minute", we.Limit)

	require.NoError(t, a.Pause(ctx, time.Minute))
	_, err = b.Acquire(ctx, 1)
	require.ErrorAs(t, err, &we)
	require.Equal(t, "provider pause", we.Limit)

	l, err := a.TryLock(ctx, "content-hash")
	require.NoError(t, err)
	require.NotNil(t, l)
	other, err := b.TryLock(ctx, "content-hash")
	require.NoError(t, err)
	require.Nil(t, other, "held by the other process")
	l.Release()

	rdb := c.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	sem := NewSemaphore(rdb, "labelq:webhook:slots:7", 1, time.Second)
	lease, err := sem.TryAcquire(ctx)
	require.NoError(t, err)
	require.NotNil(t, lease)
	held, err := NewSemaphore(a.rdb, "labelq:webhook:slots:7", 1, time.Second).TryAcquire(ctx)
	require.NoError(t, err)
	require.Nil(t, held)
	lease.Release()

	req, err := NewRequests(rdb, "labelq:api:rate:", Rate{N: 2, Per: time.Minute})
	require.NoError(t, err)
	for range 2 {
		d, err := req.Allow(ctx, "token:1")
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	d, err := req.Allow(ctx, "token:1")
	require.NoError(t, err)
	require.False(t, d.Allowed, "the API's request budget holds on a cluster too")

	// Fair turns (fair.go): the room's keys share one slot, and its scripts run.
	fcfg := Config{Prefix: PrefixFor("http://other-llm.test/v1"), MaxConcurrent: 1, PollInterval: 5 * time.Millisecond}
	fa, fb := mk(fcfg), mk(fcfg)
	slots := map[int64]bool{}
	for _, k := range fa.fairKeys() {
		s, err := rdb.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		slots[s] = true
	}
	require.Len(t, slots, 1, "the room's keys are in one hash slot: %v", fa.fairKeys())
	p, err = fa.AcquireFor(ctx, "org-1", 1)
	require.NoError(t, err)
	// org-3 comes first and waits at the front for the slot; org-1 (one call
	// already) and then org-2 queue behind it. Once the slot is free org-2, with
	// no calls yet, goes before org-1, which came earlier.
	got := make(chan string, 3)
	for i, tenant := range []string{"org-3", "org-1", "org-2"} {
		go func() {
			p, err := fb.AcquireFor(ctx, tenant, 1)
			if assertNoErr(t, err) {
				got <- tenant
				p.Release()
			}
		}()
		require.Eventually(t, func() bool {
			n, _ := rdb.ZCard(ctx, fa.fairKeys()[0]).Result()
			return n == int64(i+1)
		}, time.Second, time.Millisecond)
		time.Sleep(5 * time.Millisecond) // arrivals are told apart by the millisecond
	}
	p.Release()
	require.Equal(t, []string{"org-3", "org-2", "org-1"}, []string{<-got, <-got, <-got})
}
