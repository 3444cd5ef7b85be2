package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer is a pgbouncer process of the caller's own, in transaction pooling mode
// in front of one PostgreSQL server: what large deployments put between labelq and
// the database. In transaction mode a client keeps a server connection only for the
// length of a transaction (or of one statement outside one), so anything a client
// leaves on its session (a SET, a prepared statement, a LISTEN) is handed to
// whichever client gets that server connection next.
type PgBouncer struct {
	// Addr is 127.0.0.1:port, where clients connect.
	Addr string
	Dir  string
	// PoolSize is the number of server connections per database and user.
	PoolSize int
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *LogBuffer
}

// PgBouncerConfig says what the bouncer sits in front of.
type PgBouncerConfig struct {
	// Server is PostgreSQL's host:port; default AdminURL's.
	Server string
	// PoolSize is default_pool_size: server connections per database and user;
	// default 4, far fewer than labelq's pools hold, so clients share them.
	PoolSize int
	// Users may log in besides postgres and labelq's roles (labelq_api_login,
	// labelq_worker). Authentication is trust, as the server's own, but pgbouncer
	// admits only the users its auth_file lists.
	Users []string
}

// DefaultPgBouncerPoolSize is PgBouncerConfig.PoolSize's default.
const DefaultPgBouncerPoolSize = 4

// PgBouncerBinary finds pgbouncer: $LABELQ_PGBOUNCER_BIN, $PATH, then /usr/sbin
// (Debian's package, which `make tools` installs, puts it there, outside a
// non-root $PATH).
func PgBouncerBinary() (string, error) {
	if b := os.Getenv("LABELQ_PGBOUNCER_BIN"); b != "" {
		return b, nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", errors.New("pgbouncer was not found in $PATH or /usr/sbin: run `make tools` (apt-get install pgbouncer) or set LABELQ_PGBOUNCER_BIN")
}

// NewPgBouncer starts a pgbouncer in front of the tests' PostgreSQL (AdminURL's
// server) for the test and stops it when the test ends. Without the binary the test
// is skipped, except under CI=true, where it fails: CI must run it.
func NewPgBouncer(t testing.TB, cfg PgBouncerConfig) *PgBouncer {
	t.Helper()
	if _, err := PgBouncerBinary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testenv: %v (CI=true: the PgBouncer tests must run)", err)
		}
		t.Skipf("testenv: %v", err)
	}
	b, err := StartPgBouncer(context.Background(), cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(b.Stop)
	return b
}

// StartPgBouncer starts pgbouncer on a free loopback port and waits until it admits
// a client. It runs in the foreground and dies with this process (Pdeathsig). As
// root it runs as the postgres user: pgbouncer refuses to run as root.
func StartPgBouncer(ctx context.Context, cfg PgBouncerConfig) (*PgBouncer, error) {
	bin, err := PgBouncerBinary()
	if err != nil {
		return nil, err
	}
	if cfg.Server == "" {
		c, err := pgx.ParseConfig(AdminURL())
		if err != nil {
			return nil, err
		}
		cfg.Server = net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
	}
	host, port, err := net.SplitHostPort(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: server %q: %w", cfg.Server, err)
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = DefaultPgBouncerPoolSize
	}
	removeStalePgBouncerDirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("labelq-pgbouncer-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	users := append([]string{"postgres", APIRole, "labelq_worker"}, cfg.Users...)
	var list strings.Builder
	for _, u := range users {
		fmt.Fprintf(&list, "%q \"\"\n", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(list.String()), 0o644); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = credentialOf("postgres"); err != nil {
			return nil, fmt.Errorf("pgbouncer refuses to run as root and %w", err)
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 3 { // a free port can be taken before pgbouncer binds it
		lport, err := FreePort()
		if err != nil {
			return nil, err
		}
		b := &PgBouncer{Addr: fmt.Sprintf("127.0.0.1:%d", lport), Dir: dir, PoolSize: cfg.PoolSize, log: &LogBuffer{}}
		ini := filepath.Join(dir, "pgbouncer.ini")
		if err := os.WriteFile(ini, []byte(pgbouncerINI(host, port, lport, cfg.PoolSize, dir)), 0o644); err != nil {
			return nil, err
		}
		b.cmd = exec.Command(bin, ini)
		b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
		// Go changes the user before it sets the parent-death signal, which a
		// change of user would otherwise clear.
		b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
		if err := b.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start pgbouncer: %w", err)
		}
		b.exited = make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(b.exited) }()
		if lastErr = b.waitReady(ctx); lastErr == nil {
			return b, nil
		}
		b.kill()
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

// pgbouncerINI is the configuration: every database of the server (the "*"
// fallback), transaction pooling, no Unix socket, logs on stderr, and a short
// login retry so a restarted server is reached again within a second.
func pgbouncerINI(host, port string, listen, poolSize int, dir string) string {
	return fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 1000
server_login_retry = 1
server_lifetime = 3600
log_connections = 0
log_disconnections = 0
log_stats = 0
`, host, port, listen, filepath.Join(dir, "userlist.txt"), poolSize)
}

func credentialOf(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("there is no %s user to run it as: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (b *PgBouncer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-b.exited:
			return fmt.Errorf("pgbouncer exited at start: %s", b.log.String())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		// Admitting a client proves the auth file was read; a query proves the
		// server behind it is reachable.
		c, err := pgx.Connect(ctx, b.URL(AdminURL()))
		if err == nil {
			var one int
			err = c.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&one)
			_ = c.Close(ctx)
			if err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("pgbouncer did not admit a client in 15s: %s", b.log.String())
}

// URL is databaseURL (a URL of the server behind the bouncer) with its host and
// port replaced by the bouncer's: the same user, database and parameters.
func (b *PgBouncer) URL(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		panic(fmt.Sprintf("testenv: pgbouncer URL of %q: %v", databaseURL, err))
	}
	u.Host = b.Addr
	return u.String()
}

// Log is what pgbouncer wrote so far, for a failing test's message.
func (b *PgBouncer) Log() string { return b.log.String() }

func (b *PgBouncer) kill() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
		}
	}
}

// Stop kills pgbouncer (its clients' connections are cut) and removes its files.
func (b *PgBouncer) Stop() {
	b.kill()
	_ = os.RemoveAll(b.Dir)
}

func removeStalePgBouncerDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "labelq-pgbouncer-*"))
	for _, m := range matches {
		parts := strings.Split(filepath.Base(m), "-")
		if len(parts) < 3 {
			continue
		}
		pid, _ := strconv.Atoi(parts[2])
		if pid != os.Getpid() && !processAlive(pid) {
			_ = os.RemoveAll(m)
		}
	}
}
