package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// requireNetns skips a test that needs root, ip and nft where they are missing,
// except under CI=true, where it fails: CI runs `make tools` as root.
func requireNetns(t *testing.T) {
	t.Helper()
	if err := NetnsAvailable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: the -netns tests must run)", err)
		}
		t.Skip(err)
	}
}

// reach says whether a TCP connection from name's namespace to addr is made
// within a second.
func reach(t *testing.T, n *hostNet, name, addr string) bool {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	cmd := n.command(name, "timeout", "1", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port))
	return cmd.Run() == nil
}

func listen(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return l.Addr().String()
}

// TestHostNetCutsOneServiceAndHeals: a worker's namespace reaches the service
// addresses on the host; a Redis cut stops its packets to Redis's address and
// no other, healing restores them, and Close leaves no namespace, veth or
// loopback address behind.
func TestHostNetCutsOneServiceAndHeals(t *testing.T) {
	requireNetns(t)
	n, err := newHostNet([]string{"worker-0"})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			n.Close()
		}
	})
	redis, pg := listen(t, n.RedisIP), listen(t, n.PGIP)
	require.True(t, reach(t, n, "worker-0", redis))
	require.True(t, reach(t, n, "worker-0", pg))
	require.False(t, reach(t, n, "worker-0", listen(t, "127.0.0.1")), "the namespace's 127.0.0.1 is its own")

	require.NoError(t, n.Cut("worker-0", cutRedis))
	require.True(t, n.isCut("worker-0"))
	require.False(t, reach(t, n, "worker-0", redis), "cut off from Redis")
	require.True(t, reach(t, n, "worker-0", pg), "still reaches PostgreSQL")
	require.NoError(t, n.Heal("worker-0", cutRedis))
	require.False(t, n.isCut("worker-0"))
	require.True(t, reach(t, n, "worker-0", redis))

	h := n.host("worker-0")
	n.Close()
	closed = true
	out, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	require.NotContains(t, string(out), h.NS)
	require.Error(t, ipCmd("link", "show", h.Veth), "the veth went with the namespace")
	out, err = exec.Command("ip", "-o", "addr", "show", "dev", "lo").Output()
	require.NoError(t, err)
	require.NotContains(t, string(out), n.prefix)
}

// TestStaleNetworkIsRemoved: what a run whose process is gone left behind (a
// namespace and a loopback address under its prefix) goes at the next run;
// what a live process made stays.
func TestStaleNetworkIsRemoved(t *testing.T) {
	requireNetns(t)
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	gone := fmt.Sprintf("%s%d", netPrefix, dead.Process.Pid)
	live := fmt.Sprintf("%s%d", netPrefix, os.Getppid())
	for _, p := range []string{gone, live} {
		require.NoError(t, ipCmd("netns", "add", p+"-worker-0"))
		t.Cleanup(func() { _ = ipCmd("netns", "del", p+"-worker-0") })
	}
	base, err := freeBase()
	require.NoError(t, err)
	require.NoError(t, ipCmd("addr", "add", base+".0.9/32", "dev", "lo", "label", "lo:"+gone))
	t.Cleanup(func() { _ = ipCmd("addr", "del", base+".0.9/32", "dev", "lo") })

	removeStaleNet()
	out, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	require.NotContains(t, string(out), gone+"-worker-0")
	require.Contains(t, string(out), live+"-worker-0")
	out, err = exec.Command("ip", "-o", "addr", "show", "dev", "lo").Output()
	require.NoError(t, err)
	require.False(t, strings.Contains(string(out), base+".0.9/"), "the stale address is gone: %s", out)
}
