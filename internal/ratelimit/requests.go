package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Rate is a number of events per period ("600/min"); N 0 is no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// Off reports whether the rate is no limit at all.
func (r Rate) Off() bool { return r.N == 0 }

func (r Rate) String() string {
	if r.Off() {
		return "0"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "min", time.Hour: "h"}[r.Per]
	if unit == "" {
		unit = r.Per.String()
	}
	return fmt.Sprintf("%d/%s", r.N, unit)
}

// Requests counts requests per key (an API token) across every process that
// shares the Redis: GCRA through redis_rate, one Lua script on Redis time, so
// two API processes share one budget and their clocks never matter. A key may
// spend N requests at once and gets them back evenly over Per.
type Requests struct {
	gcra   *redis_rate.Limiter
	limit  redis_rate.Limit
	prefix string
	rate   Rate
}

// NewRequests builds a request limiter whose keys start with prefix. It does not
// contact Redis.
func NewRequests(rdb redis.UniversalClient, prefix string, r Rate) (*Requests, error) {
	if r.Off() || r.Per <= 0 {
		return nil, errors.New("ratelimit: a request limiter needs a positive rate")
	}
	return &Requests{
		gcra:   redis_rate.NewLimiter(rdb),
		limit:  redis_rate.Limit{Rate: r.N, Burst: r.N, Period: r.Per},
		prefix: prefix,
		rate:   r,
	}, nil
}

// Rate is the limit this limiter enforces.
func (l *Requests) Rate() Rate { return l.rate }

// Decision is Allow's answer.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests the key may make at once.
	Remaining int
	// RetryAfter is, when not allowed, how long until one request is.
	RetryAfter time.Duration
}

// Allow counts one request of key when the key's budget has room for it; a
// refused request is not counted.
func (l *Requests) Allow(ctx context.Context, key string) (Decision, error) {
	res, err := l.gcra.Allow(ctx, l.prefix+key, l.limit)
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return Decision{Allowed: res.Allowed > 0, Remaining: res.Remaining, RetryAfter: max(res.RetryAfter, 0)}, nil
}
