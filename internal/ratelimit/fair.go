package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fair turns. The shared limits serve waiting calls first come first served, so
// an organization with hundreds of calls queued takes every slot and every
// request of the minute, and one that wants five waits behind all of them. A
// call made for a tenant (AcquireFor) therefore waits in a room shared by every
// process first, and goes on to the limits only when no waiting call of a
// tenant served less recently is ahead of it: the tenant with the fewest calls
// in about the last Period goes first, and within a tenant the earliest call.
//
// The room is three keys in one hash slot (a hash tag), so each script runs on
// Redis Cluster: a sorted set of the waiting calls with their lease expiry (a
// waiter whose process dies stops renewing and leaves after fairTTL), a hash of
// each waiting call's tenant and arrival time, and a hash of each tenant's calls,
// a count decayed by e^(−age/Period) that every admitted call adds one to.
//
// The call at the front stays in the room until its Permit is granted, so that
// only it goes for the limits; the others look again at the poll interval, less
// often the further back they are. A call that waits past MaxWait leaves with a
// *WaitError, as at any other limit.

// fairTTL is how long a waiting call stays in the room without its process
// renewing it (every fairTTL/3): a dead process holds the front this long.
const fairTTL = 3 * time.Second

// fairTurnScript registers or renews the caller (ARGV[1], tenant ARGV[2], lease
// ARGV[3] ms), drops waiters whose lease ran out, and answers how many waiting
// calls are ahead of the caller: those of a tenant with fewer decayed calls
// (decay time constant ARGV[4] ms), or as many and there earlier.
var fairTurnScript = redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl, period = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], g)
  redis.call('HDEL', KEYS[2], g)
end
redis.call('ZADD', KEYS[1], now + ttl, id)
redis.call('HSETNX', KEYS[2], id, now .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
local function split(s)
  local sep = string.find(s, '|', 1, true)
  return tonumber(string.sub(s, 1, sep - 1)), string.sub(s, sep + 1)
end
local cache = {}
local function served(tenant)
  local v = cache[tenant]
  if v == nil then
    v = 0
    local s = redis.call('HGET', KEYS[3], tenant)
    if s then
      local n, at = split(s)
      v = n * math.exp(-(now - tonumber(at)) / period)
    end
    cache[tenant] = v
  end
  return v
end
local since, tenant = split(redis.call('HGET', KEYS[2], id))
local mine = served(tenant)
local ahead = 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if all[i] ~= id then
    local s, tn = split(all[i + 1])
    local v = served(tn)
    if v < mine or (v == mine and (s < since or (s == since and all[i] < id))) then
      ahead = ahead + 1
    end
  end
end
return ahead
`)

// fairRenewScript extends the caller's lease while it is still in the room.
var fairRenewScript = redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
`)

// fairLeaveScript takes the caller out of the room and, when its call was
// admitted (ARGV[3] = 1), counts the call for its tenant (ARGV[2]), forgetting
// the tenants whose count has decayed to nothing.
var fairLeaveScript = redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[3] ~= '1' then
  return 0
end
local tenant, period = ARGV[2], tonumber(ARGV[4])
local mine = 0
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local sep = string.find(all[i + 1], '|', 1, true)
  local v = tonumber(string.sub(all[i + 1], 1, sep - 1)) * math.exp(-(now - tonumber(string.sub(all[i + 1], sep + 1))) / period)
  if all[i] == tenant then
    mine = v
  elseif v < 0.01 then
    redis.call('HDEL', KEYS[3], all[i])
  end
end
redis.call('HSET', KEYS[3], tenant, (mine + 1) .. '|' .. now)
redis.call('PEXPIRE', KEYS[3], period * 10)
return 1
`)

// fairKeys are the room's keys: waiting calls, their tenants, tenants' calls.
// The hash tag puts the three in one slot of a Redis Cluster.
func (l *Limiter) fairKeys() []string {
	tag := "{" + strings.TrimSuffix(l.cfg.Prefix, ":") + ":fair}"
	return []string{tag + ":waiting", tag + ":callers", tag + ":served"}
}

// turn is one call's place in the room, renewed until it leaves.
type turn struct {
	l      *Limiter
	id     string
	tenant string
	// renewing is set when the renewal goroutine runs (the turn reached the
	// front); only the goroutine that waits for the turn reads or sets it.
	renewing bool
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// waitTurn waits in the room until no call ahead of this one waits, giving up
// with the context or at the deadline (a *WaitError). The turn stays in the room
// until leave.
func (l *Limiter) waitTurn(ctx context.Context, deadline time.Time, tenant string) (*turn, error) {
	t := &turn{l: l, id: newID(), tenant: tenant, stop: make(chan struct{}), done: make(chan struct{})}
	keys := l.fairKeys()
	for {
		ahead, err := fairTurnScript.Run(ctx, l.rdb, keys, t.id, tenant, fairTTL.Milliseconds(), l.cfg.Period.Milliseconds()).Int()
		if err != nil {
			t.leave(false)
			return nil, fmt.Errorf("ratelimit: fair turn: %w", err)
		}
		if ahead == 0 {
			t.renewing = true
			go t.renew()
			return t, nil
		}
		// The call next in line looks at the poll interval; the ones further back
		// cannot be next before those ahead are served, and look less often.
		wait := (l.cfg.PollInterval/2 + jitter(l.cfg.PollInterval)) * time.Duration(min(ahead, 5))
		if time.Now().Add(wait).After(deadline) {
			t.leave(false)
			return nil, &WaitError{Limit: l.bindingLimit(), Wait: l.cfg.MaxSleep}
		}
		if err := sleep(ctx, wait); err != nil {
			t.leave(false)
			return nil, err
		}
	}
}

// bindingLimit names the limit calls in the room wait for.
func (l *Limiter) bindingLimit() string {
	switch {
	case !l.rpm.IsZero():
		return "requests per minute"
	case !l.tpm.IsZero():
		return "tokens per minute"
	default:
		return "concurrent calls"
	}
}

func (t *turn) renew() {
	defer close(t.done)
	tick := time.NewTicker(fairTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), fairTTL/3)
			// A failed renewal lets the turn lapse: the others then go ahead,
			// which costs fairness for a moment, never a limit.
			_ = fairRenewScript.Run(ctx, t.l.rdb, t.l.fairKeys()[:2], t.id, fairTTL.Milliseconds()).Err()
			cancel()
		}
	}
}

// leave takes the turn out of the room, counting the call for its tenant when it
// was admitted. It works after the caller's context has ended; if Redis cannot be
// reached the turn lapses after fairTTL.
func (t *turn) leave(admitted bool) {
	if t == nil {
		return
	}
	t.once.Do(func() {
		close(t.stop)
		if t.renewing {
			<-t.done
		}
		flag := 0
		if admitted {
			flag = 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fairLeaveScript.Run(ctx, t.l.rdb, t.l.fairKeys(), t.id, t.tenant, flag, t.l.cfg.Period.Milliseconds()).Err()
	})
}
