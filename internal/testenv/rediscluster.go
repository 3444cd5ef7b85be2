package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/config"
)

// RedisNode is one redis-server of a private cluster or Sentinel set: its own port,
// its own directory, no persistence (a restart comes back empty, as after a crash of
// a server that keeps nothing on disk).
type RedisNode struct {
	Addr string
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// RedisTools checks that redis-server and redis-cli are installed: `make tools`
// installs them (Debian's redis-server package, which brings redis-tools).
func RedisTools() error {
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install redis-server (apt-get install redis-server; `make tools` does)", tool)
		}
	}
	return nil
}

func newRedisNode(dir string, extra ...string) (*RedisNode, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--logfile", filepath.Join(dir, "redis.log"),
		// A restarted replica takes the whole data set in one go, at once.
		"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
	return &RedisNode{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Dir: dir, args: append(args, extra...)}, nil
}

// start runs the server with its arguments (plus extra, for this start only) and
// waits until it answers PING.
func (n *RedisNode) start(ctx context.Context, extra ...string) error {
	cmd := exec.Command("redis-server", append(append([]string{}, n.args...), extra...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server on %s: %w", n.Addr, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(n.done)
	c := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Ping(ctx).Err(); err == nil {
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("redis-server on %s exited at start: %s", n.Addr, n.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis-server on %s did not answer in 15s: %s", n.Addr, n.logTail())
}

// Kill is kill -9 of the server.
func (n *RedisNode) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// Running reports whether the server process is alive.
func (n *RedisNode) Running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *RedisNode) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
}

// info is one section of INFO as a map.
func (n *RedisNode) info(ctx context.Context, section string) (map[string]string, error) {
	c := n.client()
	defer func() { _ = c.Close() }()
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	return parseRedisInfo(s), nil
}

func parseRedisInfo(s string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			out[k] = v
		}
	}
	return out
}

func (n *RedisNode) logTail() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "redis.log"))
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}

// RedisCluster is a private Redis Cluster of three masters with one replica each,
// on free loopback ports. Failover is quick (ClusterNodeTimeout), so a test can kill
// a master and see its replica take over within seconds.
type RedisCluster struct {
	Nodes []*RedisNode
	Dir   string
}

// ClusterNodeTimeout is how long a master may be silent before the cluster fails it
// over: short, for tests, but not so short that a busy machine fails masters over
// by itself.
const ClusterNodeTimeout = 2 * time.Second

// StartRedisCluster starts six redis-server processes with --cluster-enabled yes,
// joins them with `redis-cli --cluster create --cluster-replicas 1`, and waits until
// every node says cluster_state:ok and every replica is in sync with its master.
func StartRedisCluster(ctx context.Context) (*RedisCluster, error) {
	if err := RedisTools(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("labelq-rediscluster-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{Dir: dir}
	for i := range 6 {
		// The cluster bus port is the client port + 10000 unless set, which for a
		// free port above 55535 does not exist: every node gets a free one of its own.
		bus, err := FreePort()
		if err != nil {
			c.Close()
			return nil, err
		}
		nd := filepath.Join(dir, fmt.Sprintf("node-%d", i))
		n, err := newRedisNode(nd, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nd, "nodes.conf"),
			"--cluster-port", fmt.Sprint(bus), "--cluster-node-timeout", fmt.Sprint(ClusterNodeTimeout.Milliseconds()),
			// A replica always stands for election, however long it has been cut
			// off: a test kills masters on purpose.
			"--cluster-replica-validity-factor", "0")
		if err != nil {
			c.Close()
			return nil, err
		}
		if err := n.start(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// RedisClusterT is StartRedisCluster for a test, closed when the test ends.
func RedisClusterT(t testing.TB) *RedisCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := StartRedisCluster(ctx)
	if err != nil {
		t.Fatalf("testenv: Redis Cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Addrs are every node's address (what LABELQ_REDIS_CLUSTER_ADDRS lists).
func (c *RedisCluster) Addrs() []string { return addrsOf(c.Nodes) }

// addrsOf is the nodes' addresses, in order.
func addrsOf(nodes []*RedisNode) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Addr
	}
	return out
}

// Opt is the connection option labelq makes for the cluster
// (LABELQ_REDIS_CLUSTER_ADDRS): its clients follow a failover at once.
func (c *RedisCluster) Opt() config.RedisClusterOpt {
	return config.RedisClusterOpt{RedisClusterClientOpt: asynq.RedisClusterClientOpt{Addrs: c.Addrs()}}
}

// Client is a go-redis cluster client made as labelq makes its own; the caller
// closes it.
func (c *RedisCluster) Client() *redis.ClusterClient {
	return c.Opt().MakeRedisClient().(*redis.ClusterClient)
}

// ClusterNodeInfo is one line of CLUSTER NODES.
type ClusterNodeInfo struct {
	ID, Addr, MasterID string
	Master, Failed     bool
	Slots              int
}

// Topology is the cluster as a live node sees it.
func (c *RedisCluster) Topology(ctx context.Context) ([]ClusterNodeInfo, error) {
	lastErr := errors.New("no node is running")
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := n.client()
		s, err := cl.ClusterNodes(ctx).Result()
		_ = cl.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return parseClusterNodes(s), nil
	}
	return nil, lastErr
}

func parseClusterNodes(s string) []ClusterNodeInfo {
	var out []ClusterNodeInfo
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := "," + f[2] + ","
		ni := ClusterNodeInfo{ID: f[0], Addr: addr, Master: strings.Contains(flags, ",master,"),
			Failed: strings.Contains(flags, ",fail,") || strings.Contains(flags, ",fail?,")}
		if f[3] != "-" {
			ni.MasterID = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot in migration
			}
			lo, hi, found := strings.Cut(r, "-")
			var a, b int
			_, _ = fmt.Sscan(lo, &a)
			b = a
			if found {
				_, _ = fmt.Sscan(hi, &b)
			}
			ni.Slots += b - a + 1
		}
		out = append(out, ni)
	}
	return out
}

func (c *RedisCluster) node(addr string) *RedisNode {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// Masters are the running nodes that serve slots now, in port order.
func (c *RedisCluster) Masters(ctx context.Context) ([]*RedisNode, error) {
	top, err := c.Topology(ctx)
	if err != nil {
		return nil, err
	}
	var out []*RedisNode
	for _, ni := range top {
		if n := c.node(ni.Addr); ni.Master && !ni.Failed && ni.Slots > 0 && n != nil && n.Running() {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out, nil
}

// MasterOf is the running master serving key's slot.
func (c *RedisCluster) MasterOf(ctx context.Context, key string) (*RedisNode, error) {
	lastErr := errors.New("no node is running")
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := n.client()
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = cl.ClusterShards(ctx).Result()
		}
		_ = cl.Close()
		if err != nil {
			lastErr = err
			continue
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if slot < r.Start || slot > r.End {
					continue
				}
				for _, n := range sh.Nodes {
					if n.Role != "master" || n.Health != "online" {
						continue
					}
					addr := net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
					if m := c.node(addr); m != nil {
						return m, nil
					}
					return nil, fmt.Errorf("the slot of %q is served by %s, not a node of this cluster", key, addr)
				}
			}
		}
		return nil, fmt.Errorf("no node serves the slot of %q", key)
	}
	return nil, lastErr
}

// KillMaster is kill -9 of a master: the one serving key's slot when key is not
// empty, else the first. It returns the node killed.
func (c *RedisCluster) KillMaster(ctx context.Context, key string) (*RedisNode, error) {
	var victim *RedisNode
	if key != "" {
		n, err := c.MasterOf(ctx, key)
		if err != nil {
			return nil, err
		}
		victim = n
	} else {
		ms, err := c.Masters(ctx)
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 {
			return nil, errors.New("no master is running")
		}
		victim = ms[0]
	}
	victim.Kill()
	return victim, nil
}

// WaitFailover waits until a replica has taken over the slots of killed and the
// cluster is whole again: three masters serving every slot, none of them killed,
// and cluster_state:ok on every running node.
func (c *RedisCluster) WaitFailover(ctx context.Context, killed *RedisNode) error {
	deadline := time.Now().Add(10*ClusterNodeTimeout + 10*time.Second)
	why := "not looked yet"
	for time.Now().Before(deadline) {
		why = c.failedOver(ctx, killed)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis cluster: no failover of %s: %s", killed.Addr, why)
}

func (c *RedisCluster) failedOver(ctx context.Context, killed *RedisNode) string {
	top, err := c.Topology(ctx)
	if err != nil {
		return err.Error()
	}
	slots, masters := 0, 0
	for _, ni := range top {
		if ni.Master && ni.Slots > 0 {
			if ni.Addr == killed.Addr {
				return killed.Addr + " still serves slots"
			}
			slots += ni.Slots
			masters++
		}
	}
	if slots != 16384 || masters != 3 {
		return fmt.Sprintf("%d masters serve %d slots", masters, slots)
	}
	return c.statesOK(ctx)
}

// statesOK is "" when every running node says cluster_state:ok.
func (c *RedisCluster) statesOK(ctx context.Context) string {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := n.client()
		s, err := cl.ClusterInfo(ctx).Result()
		_ = cl.Close()
		if err != nil {
			return fmt.Sprintf("%s: %v", n.Addr, err)
		}
		if st := parseRedisInfo(s)["cluster_state"]; st != "ok" {
			return fmt.Sprintf("%s says cluster_state:%s", n.Addr, st)
		}
	}
	return ""
}

// WaitHealthy waits until every running node says cluster_state:ok, three masters
// serve every slot and every running replica's link to its master is up (a replica
// not in sync could not take over).
func (c *RedisCluster) WaitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	why := "not looked yet"
	for time.Now().Before(deadline) {
		why = c.healthy(ctx)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis cluster not healthy in 60s: %s", why)
}

func (c *RedisCluster) healthy(ctx context.Context) string {
	if why := c.statesOK(ctx); why != "" {
		return why
	}
	top, err := c.Topology(ctx)
	if err != nil {
		return err.Error()
	}
	slots, masters := 0, 0
	for _, ni := range top {
		if ni.Master && ni.Slots > 0 && !ni.Failed {
			slots += ni.Slots
			masters++
		}
	}
	if slots != 16384 || masters != 3 {
		return fmt.Sprintf("%d masters serve %d slots", masters, slots)
	}
	for _, ni := range top {
		n := c.node(ni.Addr)
		if ni.Master || n == nil || !n.Running() {
			continue
		}
		info, err := n.info(ctx, "replication")
		if err != nil {
			return fmt.Sprintf("%s: %v", n.Addr, err)
		}
		if info["master_link_status"] != "up" {
			return fmt.Sprintf("replica %s: master_link_status:%s", n.Addr, info["master_link_status"])
		}
	}
	return ""
}

// Restart starts a killed node again on its port with its cluster configuration:
// it comes back empty and, its slots having moved to its former replica, rejoins as
// that node's replica. Restart waits until the cluster is healthy again.
func (c *RedisCluster) Restart(ctx context.Context, n *RedisNode) error {
	if n.Running() {
		return fmt.Errorf("redis cluster: %s is running", n.Addr)
	}
	if err := n.start(ctx); err != nil {
		return err
	}
	return c.WaitHealthy(ctx)
}

// Close kills every node and removes their directories.
func (c *RedisCluster) Close() {
	for _, n := range c.Nodes {
		n.Kill()
	}
	_ = os.RemoveAll(c.Dir)
}
