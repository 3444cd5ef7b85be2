// Package ratelimit keeps every labelq worker process, on every machine, under one
// external provider's limits at once: requests per minute, tokens per minute and
// calls in flight. The state lives in Redis, so ten workers together behave like one
// polite client.
//
//   - Requests and tokens per minute use GCRA (github.com/go-redis/redis_rate), a
//     maintained limiter whose whole decision is one Lua script on Redis time, so the
//     workers' clocks never matter. Tokens are reserved before a call (the prompt
//     estimate plus every reply token it may use) and settled once the reply says
//     what it used (tokens.go): the unused part comes back, so the limit is spent
//     on tokens the provider counts rather than on reservations.
//   - Calls in flight use a leased semaphore: a sorted set whose members are the
//     holders and whose scores are their lease expiry times. A holder renews its lease
//     while its call runs; a worker that dies stops renewing and its slot frees itself
//     when the lease expires, so a crash can never leak a slot for good.
//   - Calls made for a tenant (AcquireFor: the organization whose file is
//     pre-annotated) take turns by tenant before they wait at those limits: the
//     tenant with the fewest calls in about the last minute goes first, in every
//     process (fair.go), so one organization's backlog cannot hold another's few
//     calls behind it.
//   - TryLock is the same leased semaphore with one slot, for "only one process may
//     do this at a time" (the worker uses it so that identical content is paid for
//     once).
//
// Acquire takes the three limits in the order that keeps us honest towards a
// provider that counts requests in a sliding window: the slot first (it may take
// long), then tokens, then the request itself last, immediately before the call, so
// that the moment we count a request and the moment the provider sees it are as
// close as possible. Waits that are short are slept; a long one comes back as a
// *WaitError saying how long, for the caller to reschedule the work instead of
// holding a worker.
//
// Within one process, the goroutines waiting for the rate limits queue in order
// and only the first polls Redis: a herd of pollers racing for each slot would cost
// Redis calls and the CPU that delays the winner.
package ratelimit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultPeriod       = time.Minute
	DefaultHeadroom     = 0.02
	DefaultMaxSleep     = 3 * time.Second
	DefaultMaxWait      = 30 * time.Second
	DefaultLeaseTTL     = 30 * time.Second
	DefaultPollInterval = 20 * time.Millisecond
)

// Config says what to limit. A zero limit is no limit.
type Config struct {
	// Prefix starts every Redis key of this limiter. Processes that share a provider
	// (and an API key) must share a prefix; see PrefixFor.
	Prefix string
	// RequestsPerMinute and TokensPerMinute are counted per Period: no window of
	// that length, wherever it starts, holds more (less the Headroom). Requests are
	// spaced evenly, with a burst of two paid for by one request less per period.
	RequestsPerMinute int
	TokensPerMinute   int
	// MaxConcurrent is the most calls in flight across every process.
	MaxConcurrent int
	// Period is the window the per-minute limits are counted over; DefaultPeriod
	// (a minute) unless a test shrinks it to see limits bite in seconds.
	Period time.Duration
	// Headroom is the fraction of every rate kept unused, 0..0.5; DefaultHeadroom
	// when zero (use a negative value for none). We count a request when Redis admits
	// it, the provider when it arrives: scheduling and network jitter between the two
	// must not push one request over a provider that counts in a sliding window.
	Headroom float64
	// TokenBurst is the most tokens one instant may take; TokensPerMinute/20 when
	// zero. The sustained token rate is TokensPerMinute−TokenBurst per Period, so
	// that burst plus rate never exceed the limit within any window: the burst is
	// the share of the limit given up for the right to spend at once, and what the
	// calls in flight may hold in reservations (a reservation is only settled at
	// the reply's usage when the reply arrives). A call estimated above the burst
	// is charged the burst: set the burst at least as large as the largest call
	// (prompt budget plus max tokens) when tokens are the tight limit.
	TokenBurst int
	// MaxSleep is the longest single wait Acquire sleeps through; a limit that
	// needs longer makes Acquire return a *WaitError at once. DefaultMaxSleep when
	// zero.
	MaxSleep time.Duration
	// MaxWait bounds the time one Acquire spends waiting in total, its turns lost to
	// other workers included; DefaultMaxWait when zero.
	MaxWait time.Duration
	// LeaseTTL is how long a slot survives its holder's death; holders renew at a
	// third of it. DefaultLeaseTTL when zero.
	LeaseTTL time.Duration
	// PollInterval is how often a waiter for a slot looks again (with jitter);
	// DefaultPollInterval when zero.
	PollInterval time.Duration
	// NoRefund makes Permit.Settle give nothing back: the whole reservation stays
	// spent, as a provider that counts max tokens when it admits a request (and
	// never returns them) needs. By default the part of a reservation the reply did
	// not use is returned.
	NoRefund bool
}

// PrefixFor derives a key prefix from the provider's base URL, credentials removed:
// workers calling the same endpoint share limits, workers calling different ones do
// not.
func PrefixFor(baseURL string) string {
	s := strings.TrimRight(strings.TrimSpace(baseURL), "/")
	if u, err := url.Parse(s); err == nil {
		u.User = nil
		s = u.String()
	}
	sum := sha256.Sum256([]byte(strings.ToLower(s)))
	return "labelq:llm:" + hex.EncodeToString(sum[:6]) + ":"
}

func (c Config) withDefaults() (Config, error) {
	if c.RequestsPerMinute < 0 || c.TokensPerMinute < 0 || c.MaxConcurrent < 0 || c.TokenBurst < 0 {
		return c, errors.New("ratelimit: limits must not be negative")
	}
	if c.Period == 0 {
		c.Period = DefaultPeriod
	}
	if c.Period < 0 {
		return c, errors.New("ratelimit: negative period")
	}
	switch {
	case c.Headroom == 0:
		c.Headroom = DefaultHeadroom
	case c.Headroom < 0:
		c.Headroom = 0
	case c.Headroom > 0.5:
		return c, fmt.Errorf("ratelimit: headroom %.2f is over 0.5", c.Headroom)
	}
	if c.TokensPerMinute > 0 {
		if c.TokenBurst == 0 {
			// A twentieth: 5,000 of LABELQ_LLM_TPM's default 100,000, room for
			// four calls of 1,024 max tokens in flight (LABELQ_LLM_MAX_CONCURRENT's
			// default), at 95 % of the limit sustained.
			c.TokenBurst = max(1, c.TokensPerMinute/20)
		}
		if c.TokenBurst >= c.TokensPerMinute {
			return c, fmt.Errorf("ratelimit: token burst %d must be below the token limit %d", c.TokenBurst, c.TokensPerMinute)
		}
	}
	if c.MaxSleep <= 0 {
		c.MaxSleep = DefaultMaxSleep
	}
	if c.MaxWait <= 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	return c, nil
}

// WaitError says a limit needs a longer wait than Acquire sleeps through.
type WaitError struct {
	// Limit names the limit ("requests per minute", "tokens per minute",
	// "concurrent calls", "provider pause").
	Limit string
	// Wait is how long until the limit is expected to allow the call.
	Wait time.Duration
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("ratelimit: the shared %s limit needs a wait of %s", e.Limit, e.Wait.Round(time.Millisecond))
}

// Limiter is safe for concurrent use; build one per process and provider.
type Limiter struct {
	cfg  Config
	rdb  redis.UniversalClient
	gcra *redis_rate.Limiter
	rpm  redis_rate.Limit
	tpm  redis_rate.Limit
	sem  *semaphore
	// gate lets one goroutine of this process at a time wait on the rate limits.
	// The others queue here, in order, instead of all waking at every tick to race
	// for the one slot Redis will grant (fairness, too: no task loses that race
	// until it gives up).
	gate chan struct{}
}

// New builds a Limiter over rdb. It does not contact Redis.
func New(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Limiter{cfg: cfg, rdb: rdb, gcra: redis_rate.NewLimiter(rdb), gate: make(chan struct{}, 1)}
	// Headroom stretches the period: the same count over a longer window.
	period := time.Duration(float64(cfg.Period) / (1 - cfg.Headroom))
	if n := cfg.RequestsPerMinute; n > 0 {
		// Burst 2 at one request less per period: still never more than n in any
		// window of Period (GCRA admits at most rate+burst−1 per period), but a
		// waiter that wakes late, as one does on a busy machine, still gets its
		// slot. With burst 1 the slot not taken the instant it opens is gone, and
		// those milliseconds add up to percent of the rate.
		l.rpm = redis_rate.Limit{Rate: n - 1, Burst: 2, Period: period}
		if n == 1 {
			l.rpm = redis_rate.Limit{Rate: 1, Burst: 1, Period: period}
		}
	}
	if cfg.TokensPerMinute > 0 {
		l.tpm = redis_rate.Limit{Rate: cfg.TokensPerMinute - cfg.TokenBurst, Burst: cfg.TokenBurst, Period: period}
	}
	if cfg.MaxConcurrent > 0 {
		l.sem = &semaphore{rdb: rdb, key: cfg.Prefix + "inflight", limit: cfg.MaxConcurrent, ttl: cfg.LeaseTTL}
	}
	return l, nil
}

// Config is the limiter's configuration with defaults applied.
func (l *Limiter) Config() Config { return l.cfg }

// Permit is one admitted call. Release it when the call returns, and Settle it
// once the reply says how many tokens the call used.
type Permit struct {
	lease  *Lease
	tokens *reservation
}

// Release frees the concurrency slot (requests stay spent; tokens until Settle).
func (p *Permit) Release() {
	if p != nil && p.lease != nil {
		p.lease.Release()
	}
}

// Acquire waits until one call estimated at tokens (prompt plus max reply tokens)
// may start under every limit, and returns its Permit. Waits up to MaxSleep are
// slept (with ctx); a longer one returns a *WaitError. Tokens reserved before the
// request limit said wait are given back, since nothing was sent. Waiting calls
// are served first come first served; AcquireFor shares the limits among tenants.
func (l *Limiter) Acquire(ctx context.Context, tokens int) (*Permit, error) {
	return l.AcquireFor(ctx, "", tokens)
}

// AcquireFor is Acquire for a call made on behalf of tenant (an organization):
// while calls of several tenants wait, the tenant with the fewest calls in about
// the last Period goes first, in every process (fair.go), so a tenant with a few
// calls is not held behind another's hundreds. The empty tenant is Acquire's
// first come first served.
func (l *Limiter) AcquireFor(ctx context.Context, tenant string, tokens int) (p *Permit, err error) {
	deadline := time.Now().Add(l.cfg.MaxWait)
	if err := l.waitPause(ctx, deadline); err != nil {
		return nil, err
	}
	if tenant != "" && (l.sem != nil || !l.rpm.IsZero() || !l.tpm.IsZero()) {
		t, err := l.waitTurn(ctx, deadline, tenant)
		if err != nil {
			return nil, err
		}
		defer func() { t.leave(err == nil) }()
	}
	var lease *Lease
	if l.sem != nil {
		var err error
		if lease, err = l.waitSlot(ctx, deadline); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Permit, error) {
		if lease != nil {
			lease.Release()
		}
		return nil, err
	}
	if l.tpm.IsZero() && l.rpm.IsZero() {
		return &Permit{lease: lease}, nil
	}
	if err := l.enterGate(ctx, deadline); err != nil {
		return fail(err)
	}
	defer func() { <-l.gate }()
	var res *reservation
	if !l.tpm.IsZero() {
		var err error
		if res, err = l.waitTokens(ctx, deadline, min(max(tokens, 1), l.tpm.Burst)); err != nil {
			return fail(err)
		}
	}
	if !l.rpm.IsZero() {
		if err := l.waitRate(ctx, deadline, "rpm", l.rpm, 1, "requests per minute"); err != nil {
			if res != nil {
				_, _ = res.settle(context.WithoutCancel(ctx), 0, true)
			}
			return fail(err)
		}
	}
	return &Permit{lease: lease, tokens: res}, nil
}

// enterGate queues for this process's turn at the rate limits (channel senders
// are served in order), giving up with the context or at the deadline.
func (l *Limiter) enterGate(ctx context.Context, deadline time.Time) error {
	select {
	case l.gate <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case l.gate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		label := "requests per minute"
		if l.rpm.IsZero() {
			label = "tokens per minute"
		}
		return &WaitError{Limit: label, Wait: l.cfg.MaxSleep}
	}
}

// Pause stops every process from starting calls for d, for when the provider says
// to back off (a 429 with Retry-After): the other workers would otherwise keep
// spending requests the provider refuses. A shorter pause never cuts a longer one.
func (l *Limiter) Pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	err := pauseScript.Run(ctx, l.rdb, []string{l.cfg.Prefix + "pause"}, d.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("ratelimit: pause: %w", err)
	}
	return nil
}

// pauseScript extends the pause key's expiry, never shortens it.
var pauseScript = redis.NewScript(`
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('SET', KEYS[1], '1', 'PX', ttl)
end
return 1
`)

func (l *Limiter) waitPause(ctx context.Context, deadline time.Time) error {
	for {
		ttl, err := l.rdb.PTTL(ctx, l.cfg.Prefix+"pause").Result()
		if err != nil {
			return fmt.Errorf("ratelimit: read pause: %w", err)
		}
		if ttl <= 0 {
			return nil // -2: no key; -1 cannot happen (always set with PX)
		}
		if err := l.sleepOrGiveUp(ctx, deadline, ttl, "provider pause"); err != nil {
			return err
		}
	}
}

func (l *Limiter) waitRate(ctx context.Context, deadline time.Time, name string, lim redis_rate.Limit, n int, label string) error {
	for {
		res, err := l.gcra.AllowN(ctx, l.cfg.Prefix+name, lim, n)
		if err != nil {
			return fmt.Errorf("ratelimit: %s: %w", label, err)
		}
		if res.Allowed > 0 {
			return nil
		}
		wait := res.RetryAfter
		if err := l.sleepOrGiveUp(ctx, deadline, wait, label); err != nil {
			return err
		}
	}
}

func (l *Limiter) waitSlot(ctx context.Context, deadline time.Time) (*Lease, error) {
	id := newID()
	for {
		ok, err := l.sem.acquire(ctx, id)
		if err != nil {
			return nil, err
		}
		if ok {
			return newLease(l.sem, id), nil
		}
		// Nobody can say when a slot frees (calls take what they take), so poll,
		// with jitter so that waiters in many processes do not move in step.
		wait := l.cfg.PollInterval/2 + jitter(l.cfg.PollInterval)
		if time.Now().Add(wait).After(deadline) {
			return nil, &WaitError{Limit: "concurrent calls", Wait: l.cfg.MaxSleep}
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// sleepOrGiveUp sleeps wait when it is short and within the overall deadline, and
// otherwise returns the *WaitError the caller reschedules on.
func (l *Limiter) sleepOrGiveUp(ctx context.Context, deadline time.Time, wait time.Duration, label string) error {
	if wait < 0 {
		// redis_rate's "never": a request larger than the burst. Acquire clamps n
		// so this does not happen; wait a period rather than spin if it does.
		wait = l.cfg.Period
	}
	if wait > l.cfg.MaxSleep || time.Now().Add(wait).After(deadline) {
		return &WaitError{Limit: label, Wait: wait}
	}
	return sleep(ctx, wait)
}

// TryLock takes the exclusive lease called name, if no other holder has it. It
// returns nil (and no error) when the lease is held elsewhere. The lease is renewed
// while held and expires LeaseTTL after its holder dies.
func (l *Limiter) TryLock(ctx context.Context, name string) (*Lease, error) {
	s := &semaphore{rdb: l.rdb, key: l.cfg.Prefix + "lock:" + name, limit: 1, ttl: l.cfg.LeaseTTL}
	id := newID()
	ok, err := s.acquire(ctx, id)
	if err != nil || !ok {
		return nil, err
	}
	return newLease(s, id), nil
}

// InFlight is how many slots are held right now (expired leases not counted).
func (l *Limiter) InFlight(ctx context.Context) (int, error) {
	if l.sem == nil {
		return 0, nil
	}
	return l.sem.count(ctx)
}

// semaphore is a counting semaphore of leases in one sorted set: member = holder
// id, score = lease expiry in Redis milliseconds. Every operation is one Lua script,
// so pruning expired leases, counting and adding are atomic.
type semaphore struct {
	rdb   redis.UniversalClient
	key   string
	limit int
	ttl   time.Duration
}

// acquireScript prunes expired leases, then renews the caller's lease when it is
// still there, or adds it when there is room. The set itself expires when nobody
// renews anything, so an idle limiter leaves no keys behind.
var acquireScript = redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`)

var countScript = redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`)

func (s *semaphore) acquire(ctx context.Context, id string) (bool, error) {
	n, err := acquireScript.Run(ctx, s.rdb, []string{s.key}, s.limit, id, s.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("ratelimit: semaphore %s: %w", s.key, err)
	}
	return n == 1, nil
}

func (s *semaphore) release(ctx context.Context, id string) error {
	return s.rdb.ZRem(ctx, s.key, id).Err()
}

func (s *semaphore) count(ctx context.Context) (int, error) {
	return countScript.Run(ctx, s.rdb, []string{s.key}).Int()
}

// Lease is one held slot of a semaphore (or an exclusive lock). It renews itself
// until Release.
type Lease struct {
	sem  *semaphore
	id   string
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newLease(s *semaphore, id string) *Lease {
	l := &Lease{sem: s, id: id, stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew()
	return l
}

// renew keeps the lease alive at a third of its TTL, so two renewals can fail
// (a Redis failover, a GC pause) before another process may take the slot.
func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.sem.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.sem.ttl/3)
			// A lease that expired anyway is taken back when there is room; when
			// there is not, the holder finishes its call regardless — stopping it
			// half-way would waste what it already spent.
			_, _ = l.sem.acquire(ctx, l.id)
			cancel()
		}
	}
}

// Release gives the slot back. It is safe to call more than once, and works after
// the caller's context has ended (the slot must come back either way).
func (l *Lease) Release() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// If this fails the lease expires on its own after LeaseTTL.
		_ = l.sem.release(ctx, l.id)
	})
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// jitter is a uniformly random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d)))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Semaphore is a counting semaphore shared by every process on one Redis: at most
// limit leases at once, each renewed while held and expiring after ttl when its
// holder vanishes (kill -9), so a crashed process never keeps a slot for long.
type Semaphore struct{ s *semaphore }

// NewSemaphore is the semaphore at key (a Redis sorted set).
func NewSemaphore(rdb redis.UniversalClient, key string, limit int, ttl time.Duration) *Semaphore {
	if limit < 1 {
		limit = 1
	}
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &Semaphore{s: &semaphore{rdb: rdb, key: key, limit: limit, ttl: ttl}}
}

// TryAcquire takes a slot without waiting: nil (and no error) when all are held.
func (s *Semaphore) TryAcquire(ctx context.Context) (*Lease, error) {
	id := newID()
	ok, err := s.s.acquire(ctx, id)
	if err != nil || !ok {
		return nil, err
	}
	return newLease(s.s, id), nil
}

// Count is the slots held now.
func (s *Semaphore) Count(ctx context.Context) (int, error) { return s.s.count(ctx) }
