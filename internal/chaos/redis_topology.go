package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/testenv"
)

// Redis topologies a run can use (Config.Redis, labelq-chaos -redis).
const (
	// RedisSingle is one redis-server; its faults are FLUSHALL and a restart that
	// keeps nothing.
	RedisSingle = "single"
	// RedisCluster is a Redis Cluster of three masters with a replica each
	// (LABELQ_REDIS_CLUSTER_ADDRS); its faults are kill -9 of the master holding
	// the validate queue, its replica promoted, and later the same again.
	RedisCluster = "cluster"
	// RedisSentinel is a master, a replica and three sentinels
	// (LABELQ_REDIS_URL=redis-sentinel://…); its faults are kill -9 of the master,
	// the replica promoted, and later the same again.
	RedisSentinel = "sentinel"
)

// ParseRedisTopology checks a -redis value ("" is RedisSingle).
func ParseRedisTopology(s string) (string, error) {
	switch s {
	case "", RedisSingle:
		return RedisSingle, nil
	case RedisCluster, RedisSentinel:
		return s, nil
	}
	return "", fmt.Errorf("redis topology %q: want %s, %s or %s", s, RedisSingle, RedisCluster, RedisSentinel)
}

// redisTopology is the cluster or the Sentinel set a run uses instead of the single
// private server, and the failovers it went through.
type redisTopology struct {
	kind     string
	cluster  *testenv.RedisCluster
	sentinel *testenv.RedisSentinel

	mu        sync.Mutex
	failovers []time.Duration // kill -9 of a master to its replica serving, each
}

// useRedis switches the run to the topology kind before any labelq process starts
// (the single server Start made is stopped: nothing may use it by mistake).
func (e *Env) useRedis(ctx context.Context, kind string) error {
	kind, err := ParseRedisTopology(kind)
	if err != nil || kind == RedisSingle {
		return err
	}
	t := &redisTopology{kind: kind}
	switch kind {
	case RedisCluster:
		t.cluster, err = testenv.StartRedisCluster(ctx)
	case RedisSentinel:
		t.sentinel, err = testenv.StartRedisSentinel(ctx)
	}
	if err != nil {
		return fmt.Errorf("start Redis %s: %w", kind, err)
	}
	e.redisTopo = t
	e.Redis.Stop()
	return nil
}

// RedisOpt is how the run's own checks reach Redis: as labelq does, through the
// topology when there is one.
func (e *Env) RedisOpt() asynq.RedisConnOpt {
	switch t := e.redisTopo; {
	case t == nil:
		return asynq.RedisClientOpt{Addr: e.Redis.Addr}
	case t.cluster != nil:
		return t.cluster.Opt()
	default:
		return t.sentinel.Opt()
	}
}

// vars point labelq's processes at the topology (they come after the single
// server's LABELQ_REDIS_URL, and the last of a name wins).
func (t *redisTopology) vars() []string {
	switch {
	case t == nil:
		return nil
	case t.cluster != nil:
		return []string{"LABELQ_REDIS_CLUSTER_ADDRS=" + strings.Join(t.cluster.Addrs(), ",")}
	default:
		return []string{"LABELQ_REDIS_URL=" + t.sentinel.URL()}
	}
}

func (t *redisTopology) close() {
	switch {
	case t == nil:
	case t.cluster != nil:
		t.cluster.Close()
	default:
		t.sentinel.Close()
	}
}

// failover is the topology's Redis fault: kill -9 of a master (on a cluster, the
// one holding the validate queue, the busiest), then waiting for its replica to be
// promoted, then restarting the killed server empty, as a replica of the new
// master. The processes are not told; they must follow on their own.
func (r *run) failover(ctx context.Context, n int) error {
	t := r.env.redisTopo
	ctx = context.WithoutCancel(ctx)
	var (
		killed *testenv.RedisNode
		err    error
		start  time.Time
	)
	switch {
	case t.cluster != nil:
		slotKey := "asynq:{" + queue.QueueValidate + "}:pending"
		if killed, err = t.cluster.MasterOf(ctx, slotKey); err != nil {
			return fmt.Errorf("redis cluster failover %d: %w", n, err)
		}
		r.fault("Redis Cluster failover %d: kill -9 of master %s (the validate queue's slot)", n, killed.Addr)
		start = time.Now()
		killed.Kill()
		err = t.cluster.WaitFailover(ctx, killed)
	default:
		if killed, err = t.sentinel.Master(ctx); err != nil {
			return fmt.Errorf("redis sentinel failover %d: %w", n, err)
		}
		r.fault("Redis Sentinel failover %d: kill -9 of master %s", n, killed.Addr)
		start = time.Now()
		killed.Kill()
		_, err = t.sentinel.WaitFailover(ctx, killed)
	}
	if err != nil {
		return err
	}
	took := time.Since(start)
	t.mu.Lock()
	t.failovers = append(t.failovers, took)
	t.mu.Unlock()
	r.log("Redis %s: replica promoted %.1f s after the kill; restarting %s empty as a replica", t.kind, took.Seconds(), killed.Addr)
	if t.cluster != nil {
		err = t.cluster.Restart(ctx, killed)
	} else {
		err = t.sentinel.Restart(ctx, killed)
	}
	if err != nil {
		return fmt.Errorf("redis %s: restart %s: %w", t.kind, killed.Addr, err)
	}
	return nil
}

// redisFigures say which topology ran and that each master kill ended in a
// promotion (a failover that never came fails the run before the figures).
func (r *run) redisFigures() []Figure {
	t := r.env.redisTopo
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	secs := make([]string, len(t.failovers))
	for i, d := range t.failovers {
		secs[i] = fmt.Sprintf("%.1f s", d.Seconds())
	}
	want := 0
	if r.cfg.Faults {
		want = 2
	}
	return []Figure{{
		Name:  fmt.Sprintf("redis_%s_master_kills_promoted (kill -9 to replica serving)", t.kind),
		Value: fmt.Sprintf("%d (%s)", len(t.failovers), strings.Join(secs, ", ")),
		Want:  fmt.Sprintf(">= %d", want),
		OK:    len(t.failovers) >= want,
	}}
}
