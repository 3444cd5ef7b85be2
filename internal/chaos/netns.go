package chaos

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The -netns variant makes each worker a host of its own: a network namespace
// with a veth pair to the host namespace, a /30 per worker. PostgreSQL, Redis and
// the runner's own servers (MinIO, the LLM test server, the webhook receiver)
// listen on addresses of their own on the host's loopback beside 127.0.0.1, so a
// partition can cut one worker off from one of them (an nftables drop inside the
// worker's namespace, both directions) and leave the rest of the system alone.
//
// Everything the run makes is named after netPrefix and its pid: the namespaces
// (lqc<pid>-worker-0), the veths (lqc<pid>h0) and the loopback addresses' label
// (lo:lqc<pid>). Deleting a namespace deletes its veth pair; Close deletes the
// namespaces and the addresses, and a run deletes what an earlier run whose
// process is gone left behind (a kill -9 of the runner skips Close).

const netPrefix = "lqc"

// Partition targets: what a cut drops.
const (
	cutRedis    = "redis"
	cutPostgres = "postgres"
)

// netHost is one worker's namespace.
type netHost struct {
	NS   string
	Addr string // the worker's address in its namespace
	Veth string // the host end of its veth pair
	// Env is what this worker gets beside the run's environment (its clock skew).
	Env []string
}

// hostNet is the run's network.
type hostNet struct {
	prefix string // lqc<pid>
	base   string // 10.B: the run's /16
	// Svc (MinIO, LLM, webhooks), RedisIP and PGIP are the service addresses.
	Svc, RedisIP, PGIP string

	mu    sync.Mutex
	hosts map[string]*netHost // by process name
	cuts  map[string]bool     // "worker-1/redis" while cut
}

// NetnsAvailable says why the variant cannot run here, or nil.
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("-netns needs root (ip netns, veth pairs, nftables)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("-netns needs %s (`make tools` installs nftables; ip is iproute2): %w", tool, err)
		}
	}
	return nil
}

// newHostNet builds a namespace per name (the worker processes' names).
func newHostNet(names []string) (n *hostNet, err error) {
	if err := NetnsAvailable(); err != nil {
		return nil, err
	}
	removeStaleNet()
	n = &hostNet{prefix: fmt.Sprintf("%s%d", netPrefix, os.Getpid()), hosts: map[string]*netHost{}, cuts: map[string]bool{}}
	if n.base, err = freeBase(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.Svc, n.RedisIP, n.PGIP = n.base+".0.1", n.base+".0.2", n.base+".0.3"
	for _, a := range []string{n.Svc, n.RedisIP, n.PGIP} {
		if err := ipCmd("addr", "add", a+"/32", "dev", "lo", "label", "lo:"+n.prefix); err != nil {
			return nil, err
		}
	}
	for i, name := range names {
		if err := n.addHost(i, name); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// addHost makes worker i's namespace: veth pair, addresses, a route to the
// service addresses, and an nftables table whose chains the cuts fill.
func (n *hostNet) addHost(i int, name string) error {
	if i > 250 {
		return fmt.Errorf("-netns: at most 250 workers, not %d", i+1)
	}
	h := &netHost{NS: n.prefix + "-" + name, Veth: fmt.Sprintf("%sh%d", n.prefix, i),
		Addr: fmt.Sprintf("%s.%d.2", n.base, i+1)}
	peer := fmt.Sprintf("%sn%d", n.prefix, i)
	gw := fmt.Sprintf("%s.%d.1", n.base, i+1)
	n.mu.Lock()
	n.hosts[name] = h
	n.mu.Unlock()
	steps := [][]string{
		{"netns", "add", h.NS},
		{"link", "add", h.Veth, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", h.NS},
		{"addr", "add", gw + "/30", "dev", h.Veth},
		{"link", "set", h.Veth, "up"},
		{"-n", h.NS, "addr", "add", h.Addr + "/30", "dev", peer},
		{"-n", h.NS, "link", "set", "lo", "up"},
		{"-n", h.NS, "link", "set", peer, "up"},
		{"-n", h.NS, "route", "add", n.base + ".0.0/24", "via", gw},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	// One pair of chains per target, so healing one cut leaves the other.
	var rules strings.Builder
	rules.WriteString("table inet labelq_chaos {\n")
	for _, t := range []string{cutRedis, cutPostgres} {
		fmt.Fprintf(&rules, "  chain %s_out { type filter hook output priority 0; policy accept; }\n", t)
		fmt.Fprintf(&rules, "  chain %s_in { type filter hook input priority 0; policy accept; }\n", t)
	}
	rules.WriteString("}\n")
	return n.nft(h.NS, rules.String(), "-f", "-")
}

func (n *hostNet) host(name string) *netHost {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hosts[name]
}

func (n *hostNet) target(t string) string {
	if t == cutRedis {
		return n.RedisIP
	}
	return n.PGIP
}

// Cut drops every packet between worker name and target (cutRedis, cutPostgres)
// in both directions: established connections hang, as across a real partition,
// and new ones time out.
func (n *hostNet) Cut(name, t string) error {
	h := n.host(name)
	if h == nil {
		return fmt.Errorf("no namespace for %s", name)
	}
	ip := n.target(t)
	if err := n.nft(h.NS, "", "add", "rule", "inet", "labelq_chaos", t+"_out", "ip", "daddr", ip, "drop"); err != nil {
		return err
	}
	if err := n.nft(h.NS, "", "add", "rule", "inet", "labelq_chaos", t+"_in", "ip", "saddr", ip, "drop"); err != nil {
		return err
	}
	n.mu.Lock()
	n.cuts[name+"/"+t] = true
	n.mu.Unlock()
	return nil
}

// Heal ends a Cut.
func (n *hostNet) Heal(name, t string) error {
	h := n.host(name)
	if h == nil {
		return fmt.Errorf("no namespace for %s", name)
	}
	for _, c := range []string{t + "_out", t + "_in"} {
		if err := n.nft(h.NS, "", "flush", "chain", "inet", "labelq_chaos", c); err != nil {
			return err
		}
	}
	n.mu.Lock()
	delete(n.cuts, name+"/"+t)
	n.mu.Unlock()
	return nil
}

// isCut says whether worker name is cut off from anything right now.
func (n *hostNet) isCut(name string) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cuts[name+"/"+cutRedis] || n.cuts[name+"/"+cutPostgres]
}

func (n *hostNet) nft(ns, stdin string, args ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft %s in %s: %w: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// command runs bin in name's namespace (ip netns exec execs it: the process is
// the worker, its pid the one asynq's server list names); a process without a
// namespace runs in the host's.
func (n *hostNet) command(name, bin string, args ...string) *exec.Cmd {
	h := n.host(name)
	if h == nil {
		return exec.Command(bin, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, bin}, args...)...)
}

// workerVars point a worker at the service addresses (the run's URLs name
// 127.0.0.1, which is the namespace's own loopback there), plus its own Env.
func (n *hostNet) workerVars(name string, e *Env) []string {
	h := n.host(name)
	if h == nil {
		return nil
	}
	pg := fmt.Sprintf("postgres://postgres@%s:%d/labelq?sslmode=disable", n.PGIP, e.PG.Port)
	return append([]string{"LABELQ_DATABASE_URL=" + pg, "LABELQ_REDIS_URL=redis://" + e.Redis.ListenAddr() + "/0"}, h.Env...)
}

// vars are every process's: the runner's webhook receiver is on the service address.
func (n *hostNet) vars() []string {
	if n == nil {
		return nil
	}
	return []string{"LABELQ_WEBHOOK_ALLOW_HTTP=" + n.Svc, "LABELQ_WEBHOOK_ALLOWED_NETWORKS=" + n.Svc + "/32"}
}

// serviceHost is where the runner's servers listen: the service address, or
// 127.0.0.1 without namespaces.
func (n *hostNet) serviceHost() string {
	if n == nil {
		return "127.0.0.1"
	}
	return n.Svc
}

// pgListen and clients are the private Postgres's extra address and the network
// it trusts there; redisListen Redis's address ("" without namespaces).
func (n *hostNet) pgListen() string {
	if n == nil {
		return ""
	}
	return n.PGIP
}

func (n *hostNet) clients() string {
	if n == nil {
		return ""
	}
	return n.base + ".0.0/16"
}

func (n *hostNet) redisListen() string {
	if n == nil {
		return ""
	}
	return n.RedisIP
}

// Close deletes the namespaces (and so their veths) and the loopback addresses.
func (n *hostNet) Close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	hosts := make([]*netHost, 0, len(n.hosts))
	for _, h := range n.hosts {
		hosts = append(hosts, h)
	}
	n.mu.Unlock()
	for _, h := range hosts {
		_ = ipCmd("netns", "del", h.NS)
		_ = ipCmd("link", "del", h.Veth) // left in the host's namespace by a failed setup
	}
	removeLoAddrs(func(label string) bool { return label == "lo:"+n.prefix })
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

var staleName = regexp.MustCompile(`^` + netPrefix + `(\d+)(?:-|h\d|n\d|$)`)

// stale says whether name was made by a run whose process is gone.
func stale(name string) bool {
	m := staleName.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// removeStaleNet deletes the namespaces, veths and loopback addresses of earlier
// runs whose process is gone.
func removeStaleNet() {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && stale(f[0]) {
				_ = ipCmd("netns", "del", f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			// "7: lqc123h0@if6: <BROADCAST,…"
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if stale(name) {
				_ = ipCmd("link", "del", name)
			}
		}
	}
	removeLoAddrs(func(label string) bool { return stale(strings.TrimPrefix(label, "lo:")) })
}

// removeLoAddrs deletes the loopback's IPv4 addresses whose label matches.
func removeLoAddrs(match func(label string) bool) {
	out, err := exec.Command("ip", "-o", "-4", "addr", "show", "dev", "lo").Output()
	if err != nil {
		return
	}
	// "1: lo    inet 10.231.0.1/32 scope global lo:lqc123\       valid_lft …"
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" {
				continue
			}
			for _, label := range f[i+2:] {
				if strings.HasPrefix(label, "lo:") && match(strings.TrimSuffix(label, `\`)) {
					_ = ipCmd("addr", "del", f[i+1], "dev", "lo")
					break
				}
			}
		}
	}
}

// freeBase is a 10.B /16 that no address or route of the host uses yet.
func freeBase() (string, error) {
	var seen strings.Builder
	for _, args := range [][]string{{"-o", "addr"}, {"route"}, {"route", "show", "table", "all"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			return "", fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
		}
		seen.Write(out)
	}
	used := seen.String()
	for b := 231; b < 255; b++ {
		base := fmt.Sprintf("10.%d", b)
		if !strings.Contains(used, " "+base+".") && !strings.Contains(used, "\n"+base+".") && !strings.HasPrefix(used, base+".") {
			return base, nil
		}
	}
	return "", errors.New("-netns: no free 10.231-254.0.0/16 on this host")
}

// minioEndpoint is where MinIO listens: a free port on the service address, or ""
// (testenv picks one on 127.0.0.1) without namespaces.
func (n *hostNet) minioEndpoint() (string, error) {
	if n == nil {
		return "", nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(n.Svc, "0"))
	if err != nil {
		return "", fmt.Errorf("-netns: a port for MinIO on %s: %w", n.Svc, err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}
