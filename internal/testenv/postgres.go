// Package testenv is labelq's test harness over the real services: a fresh Postgres
// database per test (cloned from a migrated template), an isolated Redis database per
// test, one real MinIO server per test binary with a bucket per test, and one-line
// fixtures. Nothing here mocks a service; when one is unreachable the test fails and
// says how to start it.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/migrations"
)

// AdminURL is the maintenance database tests create their databases from.
func AdminURL() string {
	if u := os.Getenv("LABELQ_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

const startPostgres = "start it with `make services` or `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"

// PG is one test's private database.
type PG struct {
	URL  string
	Name string
	Pool *pgxpool.Pool
	Q    *db.Queries
	// APIURL and APIPool log in as the API's role (labelq_api_login, no superuser,
	// under row-level security), as the API process does.
	APIURL  string
	APIPool *pgxpool.Pool
}

// APIRole is the login role of the API process (migrations/00008).
const APIRole = "labelq_api_login"

// WithUser is a database URL logging in as user instead, with no password.
func WithUser(u, user string) string {
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", user, cfg.Host, cfg.Port, cfg.Database)
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// MigrationsHash identifies the migration set, so a changed migration gets a new template.
func MigrationsHash() string {
	h := sha256.New()
	entries, _ := fs.ReadDir(migrations.FS, ".")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		b, _ := fs.ReadFile(migrations.FS, n)
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func withDB(u, name string) string {
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

func adminConn(ctx context.Context) (*pgx.Conn, error) {
	c, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return nil, fmt.Errorf("Postgres at %s is unreachable (%w): %s", database.HostOf(AdminURL()), err, startPostgres)
	}
	return c, nil
}

// ensureTemplate builds the migrated template database once per migration set,
// guarded by an advisory lock so parallel test binaries build it once.
func ensureTemplate() (string, error) {
	templateOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		templateName, templateErr = buildTemplate(ctx)
	})
	return templateName, templateErr
}

func buildTemplate(ctx context.Context) (string, error) {
	conn, err := adminConn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(74657374)"); err != nil {
		return "", err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(74657374)") }() // the session ends with the test process anyway

	name := "labelq_tmpl_" + MigrationsHash()
	dropStale(ctx, conn, name)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	quiet := slog.New(slog.NewTextHandler(discard{}, nil))
	if err := database.MigrateUp(ctx, withDB(AdminURL(), building), quiet); err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	// Renaming last makes a half-built template invisible to other binaries.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", fmt.Errorf("rename template: %w", err)
	}
	return name, nil
}

var staleDB = regexp.MustCompile(`^lqt_(\d+)_`)

// dropStale removes templates of older migration sets and databases left by test
// processes that died before their cleanup ran.
func dropStale(ctx context.Context, conn *pgx.Conn, keep string) {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'labelq_tmpl_%' OR datname LIKE 'lqt_%'")
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		if n == keep {
			continue
		}
		if m := staleDB.FindStringSubmatch(n); m != nil {
			pid, _ := strconv.Atoi(m[1])
			if processAlive(pid) {
				continue
			}
		}
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Postgres gives the test a fresh, fully migrated database of its own, dropped when
// the test ends.
func Postgres(t testing.TB) *PG {
	t.Helper()
	tmpl, err := ensureTemplate()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx := context.Background()
	conn, err := adminConn(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("lqt_%d_%s", os.Getpid(), randHex(6))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tmpl); err != nil {
		t.Fatalf("testenv: create database from %s: %v", tmpl, err)
	}
	u := withDB(AdminURL(), name)
	pool, err := database.Open(ctx, u, 8)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	apiURL := WithUser(u, APIRole)
	apiPool, err := database.Open(ctx, apiURL, 8)
	if err != nil {
		pool.Close()
		t.Fatalf("testenv: as %s: %v", APIRole, err)
	}
	t.Cleanup(func() {
		apiPool.Close()
		pool.Close()
		c, err := adminConn(context.Background())
		if err != nil {
			t.Errorf("testenv: drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop %s: %v", name, err)
		}
	})
	return &PG{URL: u, Name: name, Pool: pool, Q: db.New(pool), APIURL: apiURL, APIPool: apiPool}
}

// EmptyDatabase gives the test a database with no migrations applied, for the
// migration tests themselves.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	conn, err := adminConn(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("lqt_%d_%s", os.Getpid(), randHex(6))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := adminConn(context.Background())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDB(AdminURL(), name)
}
