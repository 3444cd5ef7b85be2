package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// PrivatePostgres is a PostgreSQL server of a test's own (its own data directory and
// port), for tests that restart the database: restarting the machine's server would
// break every other test running beside them.
type PrivatePostgres struct {
	Port int
	Dir  string
	bin  string
	user string

	// Listen is an address the server listens on beside 127.0.0.1, and Clients
	// the network (CIDR) trusted there like loopback: for clients in other network
	// namespaces (the chaos runner's -netns). Empty: loopback only.
	Listen, Clients string
}

// PostgresBinDir finds the server binaries (initdb, pg_ctl): $LABELQ_PG_BIN or the
// newest /usr/lib/postgresql/<version>/bin.
func PostgresBinDir() (string, error) {
	if d := os.Getenv("LABELQ_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set LABELQ_PG_BIN")
}

// StartPrivatePostgres initialises a cluster in a temporary directory and starts it
// with trust authentication on a free port. Postgres refuses to run as root, so as
// root it runs as the postgres user.
func StartPrivatePostgres(ctx context.Context) (*PrivatePostgres, error) {
	return StartPrivatePostgresOn(ctx, "", "")
}

// StartPrivatePostgresOn is StartPrivatePostgres listening on listen too, trusting
// clients (a CIDR) there; see PrivatePostgres.Listen.
func StartPrivatePostgresOn(ctx context.Context, listen, clients string) (*PrivatePostgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	removeStalePostgres(bin)
	dir, err := os.MkdirTemp("", fmt.Sprintf("labelq-pg-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	p := &PrivatePostgres{Dir: dir, bin: bin, Listen: listen, Clients: clients}
	if os.Geteuid() == 0 {
		p.user = "postgres"
		if err := exec.Command("chown", "-R", "postgres", dir).Run(); err != nil {
			return nil, fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := p.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if clients != "" {
		if err := appendFile(filepath.Join(data, "pg_hba.conf"), "host all all "+clients+" trust\n"); err != nil {
			return nil, err
		}
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p.Port = port
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func appendFile(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		_ = f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return f.Close()
}

func (p *PrivatePostgres) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(p.bin, tool)
	var cmd *exec.Cmd
	if p.user != "" {
		cmd = exec.Command("runuser", append([]string{"-u", p.user, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = p.Dir
	return cmd.CombinedOutput()
}

// removeStalePostgres stops and removes servers left by test processes that were
// killed before their cleanup (pg_ctl starts the server detached, so it outlives them).
func removeStalePostgres(bin string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "labelq-pg-*"))
	for _, d := range dirs {
		parts := strings.Split(filepath.Base(d), "-")
		if len(parts) < 3 {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(parts[2], &pid); err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		p := &PrivatePostgres{Dir: d, bin: bin}
		if os.Geteuid() == 0 {
			p.user = "postgres"
		}
		_, _ = p.run("pg_ctl", "-D", filepath.Join(d, "data"), "-m", "immediate", "stop")
		_ = os.RemoveAll(d)
	}
}

// URL connects to database name on this server.
func (p *PrivatePostgres) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, name)
}

// Start (re)starts the server and waits until it accepts connections.
func (p *PrivatePostgres) Start(ctx context.Context) error {
	listen := "127.0.0.1"
	if p.Listen != "" {
		listen += "," + p.Listen
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=%s -c fsync=off -c max_connections=200", p.Port, p.Dir, listen)
	if out, err := p.run("pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-l", filepath.Join(p.Dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := pgx.Connect(ctx, p.URL("postgres"))
		if err == nil {
			return c.Close(ctx)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("private Postgres did not accept connections in 30s")
}

// Stop stops the server (fast mode: connections are cut, as in a crash of clients).
func (p *PrivatePostgres) Stop() error {
	out, err := p.run("pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-m", "fast", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Close stops the server and removes its data.
func (p *PrivatePostgres) Close() {
	_ = p.Stop()
	_ = os.RemoveAll(p.Dir)
}

// PrivateRedis is a redis-server of a test's own, for tests that FLUSHALL or restart it.
type PrivateRedis struct {
	Addr string
	cmd  *exec.Cmd
	port int

	// Listen is an address the server listens on beside 127.0.0.1 (see
	// PrivatePostgres.Listen); clients there use ListenAddr.
	Listen string
}

// StartPrivateRedis starts redis-server on a free port, keeping nothing on disk.
func StartPrivateRedis(ctx context.Context) (*PrivateRedis, error) {
	return StartPrivateRedisOn(ctx, "")
}

// StartPrivateRedisOn is StartPrivateRedis listening on listen too.
func StartPrivateRedisOn(ctx context.Context, listen string) (*PrivateRedis, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &PrivateRedis{Addr: fmt.Sprintf("127.0.0.1:%d", port), Listen: listen, port: port}
	return r, r.Start(ctx)
}

// ListenAddr is host:port on the Listen address (Addr when there is none).
func (r *PrivateRedis) ListenAddr() string {
	if r.Listen == "" {
		return r.Addr
	}
	return fmt.Sprintf("%s:%d", r.Listen, r.port)
}

// Start (re)starts the server on its port.
func (r *PrivateRedis) Start(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found: install redis-server")
	}
	bind := []string{"--bind", "127.0.0.1"}
	if r.Listen != "" {
		// Protected mode refuses clients from anywhere but loopback when there is
		// no password; Listen is an address of this host's own for them.
		bind = append(bind, r.Listen, "--protected-mode", "no")
	}
	r.cmd = exec.Command(bin, append(bind, "--port", fmt.Sprint(r.port), "--save", "", "--appendonly", "no", "--databases", "16")...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Ping(ctx).Err(); err == nil {
			return nil
		} else if !strings.Contains(err.Error(), "refused") && !strings.Contains(err.Error(), "LOADING") {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("private redis-server did not answer in 15s")
}

// Pid is the running server's process id, 0 when it is stopped.
func (r *PrivateRedis) Pid() int {
	if r.cmd == nil || r.cmd.Process == nil || r.cmd.ProcessState != nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Stop kills the server (all data is lost, as in a restart without persistence).
func (r *PrivateRedis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_, _ = r.cmd.Process.Wait()
	}
}
