package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// grants records the order in which calls were admitted, by tenant.
type grants struct {
	mu    sync.Mutex
	order []string
}

func (g *grants) add(tenant string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.order = append(g.order, tenant)
}

func (g *grants) snapshot() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.order...)
}

// fairRun has tenant "big" queue 24 calls across two processes, waits until
// three are admitted, then tenant "small" queues 4 in the second process; every
// call goes through acquire (AcquireFor or Acquire). It answers the grants after
// the small calls were queued.
func fairRun(t *testing.T, fair bool) []string {
	t.Helper()
	// 10 requests a second: the 28 calls take about three seconds.
	cfg := Config{Prefix: "t:", RequestsPerMinute: 20, Period: 2 * time.Second, Headroom: -1, PollInterval: 5 * time.Millisecond}
	a, b := twoProcesses(t, cfg)
	acquire := func(l *Limiter, tenant string) (*Permit, error) {
		if fair {
			return l.AcquireFor(context.Background(), tenant, 1)
		}
		return l.Acquire(context.Background(), 1)
	}
	var g grants
	var wg sync.WaitGroup
	call := func(l *Limiter, tenant string) {
		wg.Go(func() {
			p, err := acquire(l, tenant)
			if !assertNoErr(t, err) {
				return
			}
			g.add(tenant)
			p.Release()
		})
	}
	for i := range 24 {
		call([]*Limiter{a, b}[i%2], "big")
	}
	require.Eventually(t, func() bool { return len(g.snapshot()) >= 3 }, 5*time.Second, time.Millisecond)
	before := len(g.snapshot())
	for range 4 {
		call(b, "small")
	}
	wg.Wait()
	order := g.snapshot()[before:]
	t.Logf("admitted after the small tenant queued: %v", order)
	return order
}

// positions are the indexes of tenant's grants in order.
func positions(order []string, tenant string) []int {
	var out []int
	for i, tn := range order {
		if tn == tenant {
			out = append(out, i)
		}
	}
	return out
}

// TestFairTurnsServeTheQuieterTenantFirst: one tenant has 24 calls waiting in two
// processes when another queues 4. Through AcquireFor the small tenant's calls
// are admitted next (a call of the big tenant that was already at the limits when
// they came may go first); through Acquire, first come first served, they wait
// behind the big tenant's calls queued before them in their process.
func TestFairTurnsServeTheQuieterTenantFirst(t *testing.T) {
	t.Parallel()
	t.Run("AcquireFor takes turns by tenant", func(t *testing.T) {
		t.Parallel()
		order := fairRun(t, true)
		small := positions(order, "small")
		require.Len(t, small, 4)
		require.LessOrEqual(t, small[3], 5, "the small tenant's 4 calls are among the next 6 admitted: %v", order)
	})
	t.Run("Acquire is first come first served", func(t *testing.T) {
		t.Parallel()
		order := fairRun(t, false)
		small := positions(order, "small")
		require.Len(t, small, 4)
		require.GreaterOrEqual(t, small[3], 10, "the small tenant's calls wait behind the big tenant's queued before them: %v", order)
	})
}

// TestFairTurnOfADeadWaiterLapses: a waiting call whose process died (it stops
// renewing its place) holds the front for fairTTL at most.
func TestFairTurnOfADeadWaiterLapses(t *testing.T) {
	t.Parallel()
	a, _ := twoProcesses(t, Config{Prefix: "t:", MaxConcurrent: 2, PollInterval: 5 * time.Millisecond})
	ctx := context.Background()
	// The dead call came first and its tenant has no calls: it is ahead of
	// anyone. Its lease is 300 ms, as if its last renewal was that long before
	// the end of fairTTL.
	ahead, err := fairTurnScript.Run(ctx, a.rdb, a.fairKeys(), "dead", "ghost", 300, a.cfg.Period.Milliseconds()).Int()
	require.NoError(t, err)
	require.Zero(t, ahead)
	time.Sleep(5 * time.Millisecond) // arrivals are told apart by the millisecond
	start := time.Now()
	p, err := a.AcquireFor(ctx, "live", 1)
	require.NoError(t, err)
	p.Release()
	waited := time.Since(start)
	require.GreaterOrEqual(t, waited, 240*time.Millisecond, "the dead call was ahead until its lease ran out")
	require.Less(t, waited, 2*time.Second)

	n, err := a.rdb.Exists(ctx, a.fairKeys()[:2]...).Result()
	require.NoError(t, err)
	require.Zero(t, n, "an empty room leaves no keys")
	ttl, err := a.rdb.PTTL(ctx, a.fairKeys()[2]).Result()
	require.NoError(t, err)
	require.Positive(t, ttl, "the tenants' counts expire when nothing is admitted")
	served, err := a.rdb.HGet(ctx, a.fairKeys()[2], "live").Result()
	require.NoError(t, err)
	require.Contains(t, served, "|", "the admitted call is counted for its tenant")
}

// TestFairTurnGivesUpAtMaxWait: a call that waits behind others past MaxWait
// leaves the room with a *WaitError, and the calls behind it are not held.
func TestFairTurnGivesUpAtMaxWait(t *testing.T) {
	t.Parallel()
	a, b := twoProcesses(t, Config{Prefix: "t:", MaxConcurrent: 1, PollInterval: 5 * time.Millisecond,
		MaxSleep: 50 * time.Millisecond, MaxWait: 200 * time.Millisecond})
	ctx := context.Background()
	held, err := a.AcquireFor(ctx, "org-1", 1)
	require.NoError(t, err)
	// org-2 is at the front, waiting for the slot; org-1 (one call already)
	// waits behind it in the room, until MaxWait.
	errs := make(chan error, 2)
	go func() {
		_, err := b.AcquireFor(ctx, "org-2", 1)
		errs <- err
	}()
	require.Eventually(t, func() bool {
		n, _ := a.rdb.ZCard(ctx, a.fairKeys()[0]).Result()
		return n == 1
	}, time.Second, time.Millisecond)
	_, err = a.AcquireFor(ctx, "org-1", 1)
	var we *WaitError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "concurrent calls", we.Limit)
	require.ErrorAs(t, <-errs, &we, "org-2 gave up at the slot, which stayed held")
	held.Release()
	n, err := a.rdb.Exists(ctx, a.fairKeys()[:2]...).Result()
	require.NoError(t, err)
	require.Zero(t, n, "calls that gave up left the room")
	p, err := b.AcquireFor(ctx, "org-2", 1)
	require.NoError(t, err)
	p.Release()
}
