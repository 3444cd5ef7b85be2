// Package database opens labelq's Postgres pool, applies the embedded migrations and
// owns the transaction helpers every handler uses, so that "a state change and the
// tasks it queues commit together" is written once.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/migrations"
)

// Option changes how Open and OpenLazy set up a pool.
type Option func(*pgxpool.Config)

// WithExecMode sets how the pool's connections send queries. pgx's default,
// QueryExecModeCacheStatement, prepares a named statement per query on each server
// session and reuses it; PgBouncer before 1.21 in transaction pooling hands
// sessions from client to client between transactions, so a client meets
// statements it never prepared, or misses its own. QueryExecModeCacheDescribe keeps
// the one round trip and the binary formats but sends every query as the unnamed
// statement, parsed with its execution in one message sequence (a describe round
// trip only the first time a connection meets a query), so no statement outlives
// the exchange. (QueryExecModeDescribeExec describes and executes in two exchanges,
// which a pooler may route to two different sessions outside a transaction.)
func WithExecMode(m pgx.QueryExecMode) Option {
	return func(c *pgxpool.Config) { c.ConnConfig.DefaultQueryExecMode = m }
}

// Open connects a pool and checks the server answers.
func Open(ctx context.Context, databaseURL string, maxConns int32, opts ...Option) (*pgxpool.Pool, error) {
	pool, err := OpenLazy(ctx, databaseURL, maxConns, opts...)
	if err != nil {
		return nil, err
	}
	if err := Ping(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// OpenLazy is Open without the check: the pool connects on first use, so a process
// that never uses it (a worker never serves the API) never logs in with it.
func OpenLazy(ctx context.Context, databaseURL string, maxConns int32, opts ...Option) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", redactURLError(err))
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "labelq"
	for _, o := range opts {
		o(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	return pool, nil
}

// Ping checks the pool's server answers and accepts its login, within 10 seconds.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		c := pool.Config().ConnConfig
		return fmt.Errorf("connect to Postgres at %s:%d/%s as %s: %w (is it running? see `make services`)", c.Host, c.Port, c.Database, c.User, err)
	}
	return nil
}

// HostOf returns host:port/dbname of a database URL, with no credentials, for messages.
func HostOf(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Host + u.Path
}

// pgconn's parse errors can quote the whole connection string.
func redactURLError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("malformed connection string")
	}
	return err
}

// Tx runs fn in a transaction and commits when fn returns nil. The transaction is
// begun and ended here, so no caller can forget the rollback. It pipelines (see
// pipeTx): BEGIN travels with the first statement, statements whose results are
// not used travel with the next one or with COMMIT.
func Tx(ctx context.Context, pool *pgxpool.Pool, fn func(q *db.Queries, tx pgx.Tx) error) error {
	return tx(ctx, pool, nil, fn)
}

// TenantTx is Tx for API requests: the transaction runs as role labelq_api with the
// caller's organization set, so row-level security hides every other organization's
// rows even from a query that forgets its org_id filter. The two settings ride
// with the transaction's first statement. The API's pool logs in as
// labelq_api_login (migrations/00008: NOSUPERUSER NOBYPASSRLS), so a RESET ROLE
// inside the transaction still leaves it under the policies.
func TenantTx(ctx context.Context, pool *pgxpool.Pool, orgID int64, fn func(q *db.Queries, tx pgx.Tx) error) error {
	return tx(ctx, pool, func(t *pipeTx) {
		t.pending.Queue(tenantSQL, strconv.FormatInt(orgID, 10))
		t.names = append(t.names, "set tenant")
	}, fn)
}

// tenantSQL is SET LOCAL ROLE and the organization setting in one statement (both are
// settings; set_config with is_local true is SET LOCAL).
const tenantSQL = "SELECT set_config('labelq.org_id', $1, true), set_config('role', 'labelq_api', true)"

func tx(ctx context.Context, pool *pgxpool.Pool, setup func(*pipeTx), fn func(q *db.Queries, tx pgx.Tx) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// pgxpool closes rather than reuses a connection left inside a transaction.
	defer conn.Release()
	t := &pipeTx{conn: conn.Conn()}
	if setup != nil {
		setup(t)
	}
	defer func() { _ = t.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(db.New(t), t); err != nil {
		return err
	}
	if err := t.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique-constraint violation, optionally
// of the named constraint.
func IsUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (constraint == "" || pe.ConstraintName == constraint)
}

// ConstraintViolation returns the violated constraint's name for integrity errors
// (unique, check, foreign key, not null), or "".
func ConstraintViolation(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "23") {
		if pe.ConstraintName != "" {
			return pe.ConstraintName
		}
		return pe.ColumnName
	}
	return ""
}

var gooseOnce sync.Mutex

func newProvider(sqlDB *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations.FS, ".")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, sqlDB, sub)
}

func withProvider(ctx context.Context, databaseURL string, fn func(*goose.Provider) error) error {
	gooseOnce.Lock()
	defer gooseOnce.Unlock()
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", redactURLError(err))
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to Postgres at %s: %w", HostOf(databaseURL), err)
	}
	p, err := newProvider(sqlDB)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	return fn(p)
}

// MigrateUp applies every pending migration.
func MigrateUp(ctx context.Context, databaseURL string, log *slog.Logger) error {
	return withProvider(ctx, databaseURL, func(p *goose.Provider) error {
		res, err := p.Up(ctx)
		for _, r := range res {
			log.InfoContext(ctx, "migration applied", slog.String("file", r.Source.Path), slog.Duration("took", r.Duration))
		}
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		return nil
	})
}

// MigrateDown rolls back the last `steps` migrations (all of them when steps <= 0).
func MigrateDown(ctx context.Context, databaseURL string, steps int, log *slog.Logger) error {
	return withProvider(ctx, databaseURL, func(p *goose.Provider) error {
		if steps <= 0 {
			res, err := p.DownTo(ctx, 0)
			for _, r := range res {
				log.InfoContext(ctx, "migration rolled back", slog.String("file", r.Source.Path))
			}
			if err != nil {
				return fmt.Errorf("migrate down: %w", err)
			}
			return nil
		}
		for range steps {
			r, err := p.Down(ctx)
			if errors.Is(err, goose.ErrNoNextVersion) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("migrate down: %w", err)
			}
			log.InfoContext(ctx, "migration rolled back", slog.String("file", r.Source.Path))
		}
		return nil
	})
}

// MigrationStatus reports, per migration file, whether it is applied.
func MigrationStatus(ctx context.Context, databaseURL string) ([]string, error) {
	var out []string
	err := withProvider(ctx, databaseURL, func(p *goose.Provider) error {
		st, err := p.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range st {
			out = append(out, fmt.Sprintf("%-8s %s", s.State, s.Source.Path))
		}
		return nil
	})
	return out, err
}

// EnsureDatabase creates the database named in databaseURL when it does not exist,
// connecting to the server's "postgres" database to do so. It lets `make run` work on
// a machine whose Postgres has never seen labelq.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", redactURLError(err))
	}
	name := cfg.Database
	if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		return conn.Close(ctx)
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to Postgres at %s: %w (is it running? see `make services`)", HostOf(databaseURL), err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !IsDuplicateDatabase(err) {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// IsDuplicateDatabase reports a CREATE DATABASE that lost a race with another.
func IsDuplicateDatabase(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P04" || pe.Code == "23505")
}
