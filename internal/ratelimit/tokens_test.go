package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/stretchr/testify/require"
)

// tokensOnly is 1,000 tokens per second with a burst of 500: 500 per second
// sustained, so one emission interval is 2 ms and a full burst takes a second to
// come back.
func tokensOnly(extra func(*Config)) Config {
	c := Config{Prefix: "t:", TokensPerMinute: 1000, TokenBurst: 500, Period: time.Second, Headroom: -1,
		MaxSleep: 5 * time.Millisecond, MaxWait: 5 * time.Millisecond}
	if extra != nil {
		extra(&c)
	}
	return c
}

// waitFor is how long the limiter says a call of n tokens must wait now (0: it is
// admitted, and then released and settled at n so that it leaves the budget as
// a real call of n would).
func waitFor(t *testing.T, l *Limiter, n int) time.Duration {
	t.Helper()
	p, err := l.Acquire(context.Background(), n)
	var we *WaitError
	if err != nil {
		require.ErrorAs(t, err, &we)
		require.Equal(t, "tokens per minute", we.Limit)
		return we.Wait
	}
	p.Release()
	_, err = p.Settle(context.Background(), n)
	require.NoError(t, err)
	return 0
}

// tat reads the limiter's theoretical arrival time, in seconds since 2017.
func tat(t *testing.T, l *Limiter) float64 {
	t.Helper()
	s, err := l.rdb.Get(context.Background(), l.tokensKey()).Result()
	require.NoError(t, err)
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err)
	return f
}

func TestSettleGivesBackWhatTheReplyDidNotUse(t *testing.T) {
	t.Parallel()
	a, b := twoProcesses(t, tokensOnly(nil))
	ctx := context.Background()

	p, err := a.Acquire(ctx, 500)
	require.NoError(t, err)
	p.Release()
	require.InDelta(t, time.Second.Seconds(), waitFor(t, b, 500).Seconds(), 0.1, "the reservation took the whole burst")

	back, err := p.Settle(ctx, 50)
	require.NoError(t, err)
	require.InDelta(t, 450, back, 5, "the 450 tokens the reply did not use come back")
	again, err := p.Settle(ctx, 0)
	require.NoError(t, err)
	require.Zero(t, again, "only the first Settle counts")

	// Another process sees them: 450 fit at once, 500 do not yet.
	require.Zero(t, waitFor(t, b, 440), "the other process may spend what came back")
	require.Positive(t, waitFor(t, b, 100))
}

func TestNoRefundKeepsTheReservation(t *testing.T) {
	t.Parallel()
	a, _ := twoProcesses(t, tokensOnly(func(c *Config) { c.NoRefund = true }))
	ctx := context.Background()
	p, err := a.Acquire(ctx, 500)
	require.NoError(t, err)
	p.Release()
	back, err := p.Settle(ctx, 50)
	require.NoError(t, err)
	require.Zero(t, back)
	require.InDelta(t, time.Second.Seconds(), waitFor(t, a, 500).Seconds(), 0.1, "nothing came back")
}

func TestSettleNeverGivesBackTokensThatHaveDrained(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("a reservation drained whole gives nothing back", func(t *testing.T) {
		t.Parallel()
		a, b := twoProcesses(t, tokensOnly(nil))
		old, err := a.Acquire(ctx, 500)
		require.NoError(t, err)
		time.Sleep(1100 * time.Millisecond) // the bucket is full again
		// Another call takes the whole burst; the old reply arriving now must not
		// hand its 500 tokens to the callers after it: that would put 1,000
		// tokens in one instant.
		p, err := b.Acquire(ctx, 500)
		require.NoError(t, err)
		back, err := old.Settle(ctx, 0)
		require.NoError(t, err)
		require.Zero(t, back)
		require.InDelta(t, time.Second.Seconds(), waitFor(t, b, 500).Seconds(), 0.1)
		_, err = p.Settle(ctx, 500)
		require.NoError(t, err)
	})

	t.Run("half drained gives back the half still counted", func(t *testing.T) {
		t.Parallel()
		a, _ := twoProcesses(t, tokensOnly(nil))
		p, err := a.Acquire(ctx, 500)
		require.NoError(t, err)
		time.Sleep(500 * time.Millisecond) // 250 of its 500 have drained
		back, err := p.Settle(ctx, 0)
		require.NoError(t, err)
		require.InDelta(t, 250, back, 30)
		require.Zero(t, waitFor(t, a, 500), "the bucket is full: the TAT never moves before now")
	})
}

func TestSettleChargesWhatTheCallUsedBeyondItsReservation(t *testing.T) {
	t.Parallel()
	a, _ := twoProcesses(t, tokensOnly(nil))
	ctx := context.Background()
	p, err := a.Acquire(ctx, 100)
	require.NoError(t, err)
	back, err := p.Settle(ctx, 400)
	require.NoError(t, err)
	require.InDelta(t, -300, back, 1, "300 more than reserved are charged")
	// 400 spent of a 500 burst at 500/s: 500 more wait 0.8 s.
	require.InDelta(t, 0.8, waitFor(t, a, 500).Seconds(), 0.1)
}

func TestTokensOfACallTheRequestLimitHeldBackComeBack(t *testing.T) {
	t.Parallel()
	a, _ := twoProcesses(t, tokensOnly(func(c *Config) { c.RequestsPerMinute = 1; c.Period = time.Minute }))
	ctx := context.Background()
	p, err := a.Acquire(ctx, 10)
	require.NoError(t, err)
	p.Release()
	before := tat(t, a)

	_, err = a.Acquire(ctx, 100)
	var we *WaitError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "requests per minute", we.Limit)
	require.InDelta(t, before, tat(t, a), 1e-3, "the 100 tokens reserved for a call never sent are back")
}

func TestReservationsShareTheBudgetWithRedisRate(t *testing.T) {
	t.Parallel()
	// A process still on redis_rate's AllowN (a rolling deploy) and one reserving
	// with reserveScript count against one bucket.
	a, _ := twoProcesses(t, tokensOnly(nil))
	ctx := context.Background()
	p, err := a.Acquire(ctx, 500)
	require.NoError(t, err)
	p.Release()
	res, err := redis_rate.NewLimiter(a.rdb).AllowN(ctx, a.cfg.Prefix+"tpm", a.tpm, 1)
	require.NoError(t, err)
	require.Zero(t, res.Allowed, "redis_rate sees the reservation")

	_, err = p.Settle(ctx, 0)
	require.NoError(t, err)
	res, err = redis_rate.NewLimiter(a.rdb).AllowN(ctx, a.cfg.Prefix+"tpm", a.tpm, 400)
	require.NoError(t, err)
	require.Equal(t, 400, res.Allowed, "and what Settle gave back")
}

func TestWaitersWakeWhenTokensComeBack(t *testing.T) {
	t.Parallel()
	a, b := twoProcesses(t, tokensOnly(func(c *Config) { c.MaxSleep, c.MaxWait = 2*time.Second, 2*time.Second }))
	ctx := context.Background()
	p, err := a.Acquire(ctx, 500)
	require.NoError(t, err)

	start := time.Now()
	admitted := make(chan time.Duration, 1)
	go func() {
		q, err := b.Acquire(ctx, 400) // GCRA alone says: in 0.8 s
		if assertNoErr(t, err) {
			admitted <- time.Since(start)
			q.Release()
		}
		close(admitted)
	}()
	time.Sleep(100 * time.Millisecond)
	_, err = p.Settle(ctx, 20)
	require.NoError(t, err)
	took := <-admitted
	require.Greater(t, took, 90*time.Millisecond, "not before the tokens came back")
	require.Less(t, took, 300*time.Millisecond, "soon after they did, not when the whole reservation would have drained")
}
