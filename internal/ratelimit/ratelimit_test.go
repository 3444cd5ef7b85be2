package ratelimit

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// twoProcesses returns two limiters with their own Redis clients on the test's
// Redis database: what two worker processes have.
func twoProcesses(t *testing.T, cfg Config) (*Limiter, *Limiter) {
	t.Helper()
	r := testenv.RedisDB(t)
	mk := func() *Limiter {
		c := redis.NewClient(&redis.Options{Addr: r.Addr, DB: r.DB})
		t.Cleanup(func() { _ = c.Close() })
		l, err := New(c, cfg)
		require.NoError(t, err)
		return l
	}
	return mk(), mk()
}

func TestConcurrencyNeverExceedsTheLimitAcrossProcesses(t *testing.T) {
	t.Parallel()
	a, b := twoProcesses(t, Config{Prefix: "t:", MaxConcurrent: 3, PollInterval: 5 * time.Millisecond})
	var inFlight, peak atomic.Int32
	var wg sync.WaitGroup
	for i := range 24 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := l.Acquire(context.Background(), 1)
			if !assertNoErr(t, err) {
				return
			}
			n := inFlight.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(30 * time.Millisecond)
			inFlight.Add(-1)
			p.Release()
		}()
	}
	wg.Wait()
	require.Equal(t, int32(3), peak.Load(), "the semaphore admits exactly its limit, never more")
	n, err := a.InFlight(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "every slot came back")
}

func assertNoErr(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

func TestLeaseOfADeadHolderExpires(t *testing.T) {
	t.Parallel()
	cfg := Config{Prefix: "t:", MaxConcurrent: 1, LeaseTTL: 300 * time.Millisecond, PollInterval: 5 * time.Millisecond}
	a, b := twoProcesses(t, cfg)
	ctx := context.Background()

	p, err := a.Acquire(ctx, 1)
	require.NoError(t, err)
	// The process dies: its renewals stop and nobody releases the slot.
	close(p.lease.stop)
	<-p.lease.done

	start := time.Now()
	p2, err := b.Acquire(ctx, 1)
	require.NoError(t, err)
	defer p2.Release()
	waited := time.Since(start)
	require.Greater(t, waited, 150*time.Millisecond, "the slot stays taken while the lease lives")
	require.Less(t, waited, 2*time.Second, "and frees itself when the lease expires")
}

func TestLeaseIsRenewedWhileHeld(t *testing.T) {
	t.Parallel()
	cfg := Config{Prefix: "t:", MaxConcurrent: 1, LeaseTTL: 300 * time.Millisecond, MaxWait: 200 * time.Millisecond}
	a, b := twoProcesses(t, cfg)
	ctx := context.Background()
	p, err := a.Acquire(ctx, 1)
	require.NoError(t, err)
	time.Sleep(time.Second) // three TTLs: only renewal keeps it

	_, err = b.Acquire(ctx, 1)
	var we *WaitError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "concurrent calls", we.Limit)

	p.Release()
	p.Release() // idempotent
	p2, err := b.Acquire(ctx, 1)
	require.NoError(t, err)
	p2.Release()
}

func TestRequestsAreSpacedSoNoWindowExceedsTheLimit(t *testing.T) {
	t.Parallel()
	const rate, period, calls = 10, time.Second, 25
	a, b := twoProcesses(t, Config{Prefix: "t:", RequestsPerMinute: rate, Period: period, Headroom: -1})
	var mu sync.Mutex
	var times []time.Time
	var wg sync.WaitGroup
	start := time.Now()
	for i := range calls {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := l.Acquire(context.Background(), 1)
			if !assertNoErr(t, err) {
				return
			}
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
			p.Release()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	require.Len(t, times, calls)
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	// Any `rate` consecutive admissions plus one span at least a period (minus
	// scheduling noise on this side of Redis).
	for i := rate; i < len(times); i++ {
		require.Greater(t, times[i].Sub(times[i-rate]), period-20*time.Millisecond)
	}
	// And the limiter does not waste the rate: 25 calls at 10/s take about 2.4 s.
	require.Less(t, elapsed, 3500*time.Millisecond)
}

func TestHeadroomSlowsTheRate(t *testing.T) {
	t.Parallel()
	a, _ := twoProcesses(t, Config{Prefix: "t:", RequestsPerMinute: 10, Period: time.Second, Headroom: 0.2})
	ctx := context.Background()
	start := time.Now()
	for range 6 {
		p, err := a.Acquire(ctx, 1)
		require.NoError(t, err)
		p.Release()
	}
	// Two at once (the burst), then 4 gaps of 1 s / 9 / 0.8 ≈ 139 ms: 556 ms,
	// where no headroom would take 444 ms.
	require.Greater(t, time.Since(start), 500*time.Millisecond)
}

func TestLongWaitsComeBackAsWaitError(t *testing.T) {
	t.Parallel()
	a, b := twoProcesses(t, Config{Prefix: "t:", RequestsPerMinute: 1})
	ctx := context.Background()
	p, err := a.Acquire(ctx, 1)
	require.NoError(t, err)
	p.Release()

	start := time.Now()
	_, err = b.Acquire(ctx, 1)
	var we *WaitError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "requests per minute", we.Limit)
	require.InDelta(t, time.Minute.Seconds(), we.Wait.Seconds(), 3)
	require.Less(t, time.Since(start), time.Second, "a long wait is not slept")
}

func TestTokens(t *testing.T) {
	t.Parallel()
	// 100 tokens per second, at most 20 at once: 80 per second sustained.
	a, _ := twoProcesses(t, Config{Prefix: "t:", TokensPerMinute: 100, TokenBurst: 20, Period: time.Second, Headroom: -1})
	ctx := context.Background()
	p, err := a.Acquire(ctx, 20)
	require.NoError(t, err)
	p.Release()

	start := time.Now()
	p, err = a.Acquire(ctx, 20)
	require.NoError(t, err)
	p.Release()
	require.InDelta(t, 0.25, time.Since(start).Seconds(), 0.1, "20 more tokens at 80/s")

	// A call larger than the burst is charged the burst instead of never fitting.
	p, err = a.Acquire(ctx, 10_000)
	require.NoError(t, err)
	p.Release()

	_, err = New(nil, Config{TokensPerMinute: 10, TokenBurst: 10})
	require.Error(t, err, "a burst as large as the limit leaves no sustained rate")
}

func TestPauseStopsEveryProcess(t *testing.T) {
	t.Parallel()
	a, b := twoProcesses(t, Config{Prefix: "t:"})
	ctx := context.Background()

	require.NoError(t, a.Pause(ctx, 300*time.Millisecond))
	require.NoError(t, a.Pause(ctx, 10*time.Millisecond), "a shorter pause does not cut the longer one")
	start := time.Now()
	p, err := b.Acquire(ctx, 1)
	require.NoError(t, err)
	p.Release()
	require.Greater(t, time.Since(start), 250*time.Millisecond)

	require.NoError(t, a.Pause(ctx, time.Minute))
	_, err = b.Acquire(ctx, 1)
	var we *WaitError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "provider pause", we.Limit)
}

func TestTryLock(t *testing.T) {
	t.Parallel()
	a, b := twoProcesses(t, Config{Prefix: "t:", LeaseTTL: time.Second})
	ctx := context.Background()
	l, err := a.TryLock(ctx, "k")
	require.NoError(t, err)
	require.NotNil(t, l)

	other, err := b.TryLock(ctx, "k")
	require.NoError(t, err)
	require.Nil(t, other, "held by another process")
	unrelated, err := b.TryLock(ctx, "other-key")
	require.NoError(t, err)
	require.NotNil(t, unrelated)
	unrelated.Release()

	l.Release()
	again, err := b.TryLock(ctx, "k")
	require.NoError(t, err)
	require.NotNil(t, again)
	again.Release()
}

func TestAcquireEndsWithTheContext(t *testing.T) {
	t.Parallel()
	a, _ := twoProcesses(t, Config{Prefix: "t:", MaxConcurrent: 1})
	p, err := a.Acquire(context.Background(), 1)
	require.NoError(t, err)
	defer p.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = a.Acquire(ctx, 1)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)
}

func TestPrefixFor(t *testing.T) {
	t.Parallel()
	a := PrefixFor("https://user:secret@proxy.example/v1/")
	require.Equal(t, a, PrefixFor("https://proxy.example/v1"), "credentials and a trailing slash do not split limits")
	require.NotContains(t, a, "secret")
	require.NotEqual(t, a, PrefixFor("https://api.openai.com/v1"))
}

func TestConfigChecks(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{RequestsPerMinute: -1},
		{Headroom: 0.9},
		{Period: -time.Second},
	} {
		_, err := New(nil, c)
		require.Error(t, err, "%+v", c)
	}
}
