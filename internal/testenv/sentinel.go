package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the private Sentinel set monitors its master under.
const SentinelMaster = "labelq"

// Sentinel timings: a master silent for SentinelDownAfter is down, and a failover
// that stalls is retried after SentinelFailoverTimeout. Short, for tests.
const (
	SentinelDownAfter       = time.Second
	SentinelFailoverTimeout = 5 * time.Second
)

// RedisSentinel is a private Redis Sentinel set: a master, one replica and three
// sentinels (quorum 2) on free loopback ports.
type RedisSentinel struct {
	Servers   []*RedisNode // Servers[0] starts as the master, Servers[1] as its replica
	Sentinels []*RedisNode
	Dir       string
}

// StartRedisSentinel starts the master, then its replica, waits until the replica is
// in sync, then the three sentinels, and waits until each knows the replica and the
// two other sentinels (without them it could neither elect a leader nor promote).
func StartRedisSentinel(ctx context.Context) (*RedisSentinel, error) {
	if err := RedisTools(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("labelq-redissentinel-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	s := &RedisSentinel{Dir: dir}
	master, err := newRedisNode(filepath.Join(dir, "server-0"))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Servers = append(s.Servers, master)
	if err := master.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	replica, err := newRedisNode(filepath.Join(dir, "server-1"))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Servers = append(s.Servers, replica)
	if err := replica.start(ctx, "--replicaof", "127.0.0.1", fmt.Sprint(master.Port)); err != nil {
		s.Close()
		return nil, err
	}
	if err := waitReplicaUp(ctx, replica); err != nil {
		s.Close()
		return nil, err
	}
	for i := range 3 {
		sd := filepath.Join(dir, fmt.Sprintf("sentinel-%d", i))
		n, err := newRedisNode(sd)
		if err != nil {
			s.Close()
			return nil, err
		}
		// Sentinel rewrites its configuration file as it learns the set, so each
		// gets one of its own; the options before it are the server's.
		conf := filepath.Join(sd, "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
			"sentinel down-after-milliseconds %[1]s %[3]d\n"+
			"sentinel failover-timeout %[1]s %[4]d\n"+
			"sentinel parallel-syncs %[1]s 1\n",
			SentinelMaster, master.Port, SentinelDownAfter.Milliseconds(), SentinelFailoverTimeout.Milliseconds())
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			s.Close()
			return nil, err
		}
		n.args = append([]string{conf, "--sentinel"}, n.args...)
		// Persistence options mean nothing to a sentinel; drop them so it starts.
		n.args = dropArgs(n.args, "--save", "--appendonly", "--repl-diskless-sync", "--repl-diskless-sync-delay")
		if err := n.start(ctx); err != nil {
			s.Close()
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, n)
	}
	if err := s.waitKnown(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dropArgs removes the options named (each with its value) from args.
func dropArgs(args []string, names ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		drop := false
		for _, n := range names {
			if args[i] == n {
				drop = true
			}
		}
		if drop {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// RedisSentinelT is StartRedisSentinel for a test, closed when the test ends.
func RedisSentinelT(t testing.TB) *RedisSentinel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := StartRedisSentinel(ctx)
	if err != nil {
		t.Fatalf("testenv: Redis Sentinel: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// SentinelAddrs are the sentinels' addresses.
func (s *RedisSentinel) SentinelAddrs() []string { return addrsOf(s.Sentinels) }

// URL is the LABELQ_REDIS_URL for the set: redis-sentinel://s1,s2,s3?master=labelq.
func (s *RedisSentinel) URL() string {
	return "redis-sentinel://" + strings.Join(s.SentinelAddrs(), ",") + "?master=" + SentinelMaster
}

// Opt is asynq's connection option for the set.
func (s *RedisSentinel) Opt() asynq.RedisFailoverClientOpt {
	return asynq.RedisFailoverClientOpt{MasterName: SentinelMaster, SentinelAddrs: s.SentinelAddrs()}
}

// Client is a go-redis failover client; the caller closes it.
func (s *RedisSentinel) Client() *redis.Client {
	return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: s.SentinelAddrs()})
}

// Master is the server the sentinels name as master now (the first that answers).
func (s *RedisSentinel) Master(ctx context.Context) (*RedisNode, error) {
	lastErr := errors.New("no sentinel is running")
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1, DialTimeout: time.Second})
		addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err != nil {
			lastErr = err
			continue
		}
		if len(addr) == 2 {
			if n := s.server(net.JoinHostPort(addr[0], addr[1])); n != nil {
				return n, nil
			}
		}
		return nil, fmt.Errorf("sentinel %s names master %v, not a server of this set", sn.Addr, addr)
	}
	return nil, lastErr
}

func (s *RedisSentinel) server(addr string) *RedisNode {
	for _, n := range s.Servers {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// KillMaster is kill -9 of the current master; it returns the node killed.
func (s *RedisSentinel) KillMaster(ctx context.Context) (*RedisNode, error) {
	m, err := s.Master(ctx)
	if err != nil {
		return nil, err
	}
	m.Kill()
	return m, nil
}

// WaitFailover waits until every running sentinel names another server than killed
// as master and that server says role:master.
func (s *RedisSentinel) WaitFailover(ctx context.Context, killed *RedisNode) (*RedisNode, error) {
	deadline := time.Now().Add(10*SentinelDownAfter + 3*SentinelFailoverTimeout)
	why := "not looked yet"
	for time.Now().Before(deadline) {
		var m *RedisNode
		m, why = s.failedOver(ctx, killed)
		if why == "" {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("redis sentinel: no failover of %s: %s", killed.Addr, why)
}

func (s *RedisSentinel) failedOver(ctx context.Context, killed *RedisNode) (*RedisNode, string) {
	var master *RedisNode
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1, DialTimeout: time.Second})
		addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err != nil {
			return nil, fmt.Sprintf("sentinel %s: %v", sn.Addr, err)
		}
		a := net.JoinHostPort(addr[0], addr[1])
		if a == killed.Addr {
			return nil, fmt.Sprintf("sentinel %s still names %s", sn.Addr, a)
		}
		if master != nil && master.Addr != a {
			return nil, fmt.Sprintf("sentinels disagree: %s and %s", master.Addr, a)
		}
		if master = s.server(a); master == nil {
			return nil, fmt.Sprintf("sentinel %s names %s, not a server of this set", sn.Addr, a)
		}
	}
	if master == nil {
		return nil, "no sentinel is running"
	}
	info, err := master.info(ctx, "replication")
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", master.Addr, err)
	}
	if info["role"] != "master" {
		return nil, fmt.Sprintf("%s says role:%s", master.Addr, info["role"])
	}
	return master, ""
}

// Restart starts a killed server again, empty, as a replica of the current master,
// and waits until it is in sync and every sentinel counts it as a replica again.
func (s *RedisSentinel) Restart(ctx context.Context, n *RedisNode) error {
	if n.Running() {
		return fmt.Errorf("redis sentinel: %s is running", n.Addr)
	}
	m, err := s.Master(ctx)
	if err != nil {
		return err
	}
	if err := n.start(ctx, "--replicaof", "127.0.0.1", fmt.Sprint(m.Port)); err != nil {
		return err
	}
	if err := waitReplicaUp(ctx, n); err != nil {
		return err
	}
	return s.waitKnown(ctx)
}

// waitKnown waits until every running sentinel knows the two others and sees one
// replica of the master that is up.
func (s *RedisSentinel) waitKnown(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	why := "not looked yet"
	for time.Now().Before(deadline) {
		why = s.known(ctx)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis sentinel: the set did not form in 30s: %s", why)
}

func (s *RedisSentinel) known(ctx context.Context) string {
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1, DialTimeout: time.Second})
		others, err := sc.Sentinels(ctx, SentinelMaster).Result()
		var replicas []map[string]string
		if err == nil {
			replicas, err = sc.Replicas(ctx, SentinelMaster).Result()
		}
		_ = sc.Close()
		if err != nil {
			return fmt.Sprintf("sentinel %s: %v", sn.Addr, err)
		}
		if len(others) != len(s.Sentinels)-1 {
			return fmt.Sprintf("sentinel %s knows %d other sentinels", sn.Addr, len(others))
		}
		up := 0
		for _, r := range replicas {
			if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
				up++
			}
		}
		if up < 1 {
			return fmt.Sprintf("sentinel %s sees no replica up (%v)", sn.Addr, replicas)
		}
	}
	return ""
}

// waitReplicaUp waits until the replica's link to its master is up.
func waitReplicaUp(ctx context.Context, n *RedisNode) error {
	deadline := time.Now().Add(30 * time.Second)
	var info map[string]string
	for time.Now().Before(deadline) {
		var err error
		if info, err = n.info(ctx, "replication"); err == nil && info["master_link_status"] == "up" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("replica %s not in sync in 30s (master_link_status:%s)", n.Addr, info["master_link_status"])
}

// Close kills the sentinels and the servers and removes their directories.
func (s *RedisSentinel) Close() {
	for _, n := range s.Sentinels {
		n.Kill()
	}
	for _, n := range s.Servers {
		n.Kill()
	}
	_ = os.RemoveAll(s.Dir)
}
