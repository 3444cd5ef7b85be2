package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tokens per minute are reserved and settled. A call is admitted on its estimate
// (the prompt plus every reply token it may use) because nobody knows the reply's
// length before it comes back; once it does, the reservation is settled at what the
// reply used. Without the settling, a limit of 100,000 tokens with 1,024 max reply
// tokens and replies of 50 pays for twenty times the tokens it uses.
//
// The limiter is redis_rate's GCRA: one key holds the theoretical arrival time
// (TAT) of the bucket, and a reservation of n tokens moves it n emission intervals
// on. redis_rate has no way to move it back: AllowN with a negative n writes
// nothing when the result lies in the past (the refund is lost) and otherwise
// takes back whatever is asked, even tokens that have drained since, which would
// let a window hold more than the limit. So reserving and settling are two scripts
// of our own over the same key and value (redis_rate's "rate:" key, seconds since
// 2017 as a float), which a process still running redis_rate's AllowN during a
// rolling deploy shares.
//
// Settling gives back at most what of the reservation has not drained yet: the
// reservation left the TAT at T; of its unused tail, only the part after now is
// still counted against the bucket, so min(unused, T − now) returns, and the TAT
// never moves before now (a full bucket holds no more than its burst). The result
// is never more permissive than having reserved exactly what was used in the first
// place.

// reserveScript is redis_rate's allowN (GCRA, Redis time) answering also the TAT the
// reservation left, which settling needs.
var reserveScript = redis.NewScript(`
redis.replicate_commands()
local key = KEYS[1]
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local emission_interval = period / rate
local increment = emission_interval * cost
local burst_offset = emission_interval * burst
local jan_1_2017 = 1483228800
local now = redis.call("TIME")
now = (now[1] - jan_1_2017) + (now[2] / 1000000)
local tat = redis.call("GET", key)
if not tat then
  tat = now
else
  tat = tonumber(tat)
end
tat = math.max(tat, now)
local new_tat = tat + increment
local diff = now - (new_tat - burst_offset)
if diff < 0 then
  return {0, tostring(-diff), ""}
end
local reset_after = new_tat - now
if reset_after > 0 then
  redis.call("SET", key, new_tat, "EX", math.ceil(reset_after))
end
return {cost, "-1", tostring(new_tat)}
`)

// settleScript moves the TAT back by the tokens given back (ARGV[2] > 0), bounded
// as the comment above says, or on by the tokens a call used beyond its
// reservation (ARGV[2] < 0). It answers the tokens it moved.
var settleScript = redis.NewScript(`
redis.replicate_commands()
local key = KEYS[1]
local emission_interval = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local reserved_tat = tonumber(ARGV[3])
local jan_1_2017 = 1483228800
local now = redis.call("TIME")
now = (now[1] - jan_1_2017) + (now[2] / 1000000)
local tat = redis.call("GET", key)
if not tat then
  tat = now
else
  tat = math.max(tonumber(tat), now)
end
local moved = tokens * emission_interval
if tokens > 0 then
  moved = math.min(moved, reserved_tat - now, tat - now)
  if moved <= 0 then
    return "0"
  end
end
local new_tat = tat - moved
if new_tat > now then
  redis.call("SET", key, new_tat, "EX", math.ceil(new_tat - now))
else
  redis.call("DEL", key)
end
return tostring(moved / emission_interval)
`)

// redisRatePrefix is the prefix redis_rate gives its keys.
const redisRatePrefix = "rate:"

// reservation is the tokens one Permit holds until it is settled.
type reservation struct {
	l       *Limiter
	charged int
	tat     string // the TAT the reservation left, as the script wrote it
	once    sync.Once
}

func (l *Limiter) tokensKey() string { return redisRatePrefix + l.cfg.Prefix + "tpm" }

// emissionInterval is the seconds one token adds to the TAT.
func (l *Limiter) emissionInterval() float64 {
	return l.tpm.Period.Seconds() / float64(l.tpm.Rate)
}

// waitTokens reserves n tokens, waiting as waitRate does.
func (l *Limiter) waitTokens(ctx context.Context, deadline time.Time, n int) (*reservation, error) {
	const label = "tokens per minute"
	for {
		v, err := reserveScript.Run(ctx, l.rdb, []string{l.tokensKey()},
			l.tpm.Burst, l.tpm.Rate, l.tpm.Period.Seconds(), n).Slice()
		if err != nil {
			return nil, fmt.Errorf("ratelimit: %s: %w", label, err)
		}
		if len(v) != 3 {
			return nil, fmt.Errorf("ratelimit: %s: unexpected answer %v", label, v)
		}
		if allowed, _ := v[0].(int64); allowed > 0 {
			tat, _ := v[2].(string)
			return &reservation{l: l, charged: n, tat: tat}, nil
		}
		s, _ := v[1].(string)
		secs, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: %s: retry after %q: %w", label, s, err)
		}
		wait := time.Duration(secs * float64(time.Second))
		if !l.cfg.NoRefund && wait > 0 && wait <= l.cfg.MaxSleep {
			// GCRA's answer counts the calls in flight at their whole reservation;
			// their replies settling may free the tokens much sooner, so look
			// again at the poll interval rather than sleep it out.
			wait = min(wait, l.cfg.PollInterval/2+jitter(l.cfg.PollInterval))
		}
		if err := l.sleepOrGiveUp(ctx, deadline, wait, label); err != nil {
			return nil, err
		}
	}
}

// settle adjusts the reservation to used tokens, once; unsent gives it all back
// whatever the configuration (the provider never saw the call). It answers the
// tokens moved: positive when given back, negative when charged.
func (r *reservation) settle(ctx context.Context, used int, unsent bool) (float64, error) {
	var moved float64
	var err error
	r.once.Do(func() {
		if r.l.cfg.NoRefund && !unsent {
			return
		}
		delta := r.charged - max(used, 0)
		if unsent {
			delta = r.charged
		}
		if delta == 0 || r.tat == "" {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var s string
		s, err = settleScript.Run(ctx, r.l.rdb, []string{r.l.tokensKey()},
			strconv.FormatFloat(r.l.emissionInterval(), 'g', -1, 64), delta, r.tat).Text()
		if err != nil {
			err = fmt.Errorf("ratelimit: settle tokens: %w", err)
			return
		}
		moved, err = strconv.ParseFloat(s, 64)
	})
	return moved, err
}

// Settle tells the limiter how many tokens the call used (the reply's prompt plus
// completion tokens). The part of the reservation the call did not use comes back
// to every process at once, as much of it as has not drained anyway; a call that
// used more than it reserved is charged the rest. Only the first Settle of a Permit
// counts. A call whose usage is unknown (no reply) is not settled: its reservation
// stays spent, which errs on the side of sending less. With Config.NoRefund, Settle
// does nothing. The answer is the tokens given back (negative: charged), for logs.
// Settle works after the caller's context has ended (the tokens were spent either
// way); an error (Redis unreachable) leaves the reservation as it was.
func (p *Permit) Settle(ctx context.Context, used int) (float64, error) {
	if p == nil || p.tokens == nil {
		return 0, nil
	}
	moved, err := p.tokens.settle(context.WithoutCancel(ctx), used, false)
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	return moved, err
}
