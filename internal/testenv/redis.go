package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisAddr is the Redis server tests use.
func RedisAddr() string {
	if a := os.Getenv("LABELQ_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

const startRedis = `start it with ` + "`make services`" + ` or ` +
	"`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`"

// Redis is one test's private Redis database number.
type Redis struct {
	Addr   string
	DB     int
	Client *redis.Client
}

// Opt is the asynq connection option for this test's database.
func (r *Redis) Opt() asynq.RedisClientOpt { return asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB} }

// URL is the LABELQ_REDIS_URL for this test's database.
func (r *Redis) URL() string { return fmt.Sprintf("redis://%s/%d", r.Addr, r.DB) }

// Redis claims a database number 1..N-1 for the test (database 0 holds the claims,
// which expire should a test process die), flushes it, and flushes and releases it
// when the test ends. Claims are keyed across processes, so parallel test binaries
// never share a database.
func RedisDB(t testing.TB) *Redis {
	t.Helper()
	ctx := context.Background()
	addr := RedisAddr()
	ctl := redis.NewClient(&redis.Options{Addr: addr, DB: 0})
	defer ctl.Close()
	if err := ctl.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis at %s is unreachable (%v): %s", addr, err, startRedis)
	}
	n := 16
	if v, err := ctl.ConfigGet(ctx, "databases").Result(); err == nil {
		_, _ = fmt.Sscan(v["databases"], &n) // a server that does not say keeps the default 16
	}
	owner := fmt.Sprintf("%d:%s", os.Getpid(), randHex(4))
	deadline := time.Now().Add(3 * time.Minute)
	for {
		for dbn := 1; dbn < n; dbn++ {
			key := fmt.Sprintf("labelq:testdb:%d", dbn)
			ok, err := ctl.SetNX(ctx, key, owner, 30*time.Minute).Result()
			if err != nil {
				t.Fatalf("testenv: claim Redis db: %v", err)
			}
			if !ok {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: addr, DB: dbn})
			if err := c.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("testenv: flush Redis db %d: %v", dbn, err)
			}
			t.Cleanup(func() {
				bg := context.Background()
				_ = c.FlushDB(bg).Err()
				_ = c.Close()
				rel := redis.NewClient(&redis.Options{Addr: addr, DB: 0})
				defer rel.Close()
				// Release only our own claim.
				if v, _ := rel.Get(bg, key).Result(); v == owner {
					rel.Del(bg, key)
				}
			})
			return &Redis{Addr: addr, DB: dbn, Client: c}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no free Redis database on %s after 3 minutes (all %d claimed)", addr, n-1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
