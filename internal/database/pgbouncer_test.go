package database_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// throughBouncer opens a pool of maxConns client connections to url's database as
// url's user, through b, in the pooler-safe exec mode.
func throughBouncer(t *testing.T, b *testenv.PgBouncer, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	pool, err := database.Open(context.Background(), b.URL(url), maxConns, database.WithExecMode(pgx.QueryExecModeCacheDescribe))
	require.NoError(t, err, "pgbouncer log: %s", b.Log())
	t.Cleanup(pool.Close)
	return pool
}

// TestPgBouncerTenantSettingsStayInTheirTransaction is the classic pooler bug, looked
// for: API requests of four organizations run at once through PgBouncer in
// transaction pooling, sixteen client connections over two server sessions, each
// request a TenantTx. Every transaction sees its own organization and role and only
// its own rows; every statement outside one (on a session another organization's
// transaction used a moment ago) sees no organization, the login role, and no rows.
func TestPgBouncerTenantSettingsStayInTheirTransaction(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	b := testenv.NewPgBouncer(t, testenv.PgBouncerConfig{PoolSize: 2})
	ctx := context.Background()
	const orgs, projectsPer = 4, 3
	var orgIDs []int64
	for range orgs {
		o := pg.Org(t)
		for range projectsPer {
			pg.Project(t, o.ID)
		}
		orgIDs = append(orgIDs, o.ID)
	}
	pool := throughBouncer(t, b, pg.APIURL, 16)

	const goroutines, rounds = 16, 25
	var (
		mu       sync.Mutex
		backends = map[int32]bool{}
	)
	errc := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			errc <- func() error {
				for i := range rounds {
					org := orgIDs[(g+i)%orgs]
					var pid int32
					err := database.TenantTx(ctx, pool, org, func(q *db.Queries, tx pgx.Tx) error {
						var setting, role string
						if err := tx.QueryRow(ctx, "SELECT current_setting('labelq.org_id'), current_user, pg_backend_pid()").Scan(&setting, &role, &pid); err != nil {
							return err
						}
						if setting != fmt.Sprint(org) || role != "labelq_api" {
							return fmt.Errorf("org %d's transaction runs as org %q, role %q", org, setting, role)
						}
						rows, err := tx.Query(ctx, "SELECT org_id FROM projects")
						if err != nil {
							return err
						}
						seen, err := pgx.CollectRows(rows, pgx.RowTo[int64])
						if err != nil {
							return err
						}
						if len(seen) != projectsPer {
							return fmt.Errorf("org %d sees %d projects, want its %d", org, len(seen), projectsPer)
						}
						for _, o := range seen {
							if o != org {
								return fmt.Errorf("org %d sees a project of org %d", org, o)
							}
						}
						// The API's own query, asking for its org's projects and, as a
						// bug might, another org's.
						own, err := q.ProjectList(ctx, db.ProjectListParams{OrgID: org, MaxRows: 100})
						if err != nil {
							return err
						}
						other := orgIDs[(g+i+1)%orgs]
						theirs, err := q.ProjectList(ctx, db.ProjectListParams{OrgID: other, MaxRows: 100})
						if err != nil {
							return err
						}
						if len(own) != projectsPer || len(theirs) != 0 {
							return fmt.Errorf("org %d lists %d of its projects (want %d) and %d of org %d's (want 0)", org, len(own), projectsPer, len(theirs), other)
						}
						return nil
					})
					if err != nil {
						return err
					}
					mu.Lock()
					backends[pid] = true
					mu.Unlock()
					// Outside any transaction, on whichever session is free.
					var setting, role string
					var visible int
					if err := pool.QueryRow(ctx, "SELECT current_setting('labelq.org_id', true), current_user, (SELECT count(*) FROM projects)").
						Scan(&setting, &role, &visible); err != nil {
						return err
					}
					if setting != "" || role != testenv.APIRole || visible != 0 {
						return fmt.Errorf("after org %d's transaction a statement outside one sees org %q, role %q, %d projects", org, setting, role, visible)
					}
				}
				return nil
			}()
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	require.LessOrEqual(t, len(backends), 2, "at most PoolSize server sessions")
	require.Greater(t, pool.Stat().TotalConns(), int32(2), "more client connections than server sessions, so sessions were shared")
}

// TestPgBouncerHandsSessionStateOn is the control for the test above: a setting made
// for the session (set_config(..., false)) by one client is seen by another client
// that gets the same server session next. Were TenantTx to set the organization
// that way, org B's request would run as org A.
func TestPgBouncerHandsSessionStateOn(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	b := testenv.NewPgBouncer(t, testenv.PgBouncerConfig{PoolSize: 1})
	ctx := context.Background()
	connect := func() *pgx.Conn {
		cfg, err := pgx.ParseConfig(b.URL(pg.APIURL))
		require.NoError(t, err)
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		c, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(ctx) })
		return c
	}
	a, other := connect(), connect()
	_, err := a.Exec(ctx, "SELECT set_config('labelq.org_id', $1, false)", "4242")
	require.NoError(t, err)
	var seen string
	require.NoError(t, other.QueryRow(ctx, "SELECT current_setting('labelq.org_id', true)").Scan(&seen))
	require.Equal(t, "4242", seen, "the other client got the first one's session, setting and all")
}

// TestPgBouncerExecModes shows why LABELQ_DATABASE_EXEC_MODE exists: pgx's default
// mode prepares a named statement per query on the session, and two clients on one
// PgBouncer 1.18 session in transaction pooling collide on it; in cache_describe
// mode (unnamed statements) the same queries from the same two clients all succeed.
func TestPgBouncerExecModes(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	b := testenv.NewPgBouncer(t, testenv.PgBouncerConfig{PoolSize: 1})
	ctx := context.Background()
	connect := func(mode pgx.QueryExecMode) *pgx.Conn {
		cfg, err := pgx.ParseConfig(b.URL(pg.URL))
		require.NoError(t, err)
		cfg.DefaultQueryExecMode = mode
		c, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(ctx) })
		return c
	}
	queries := []string{"SELECT $1::bigint + 1", "SELECT count(*) FROM projects WHERE org_id = $1", "SELECT $1::bigint * 2"}
	run := func(c *pgx.Conn) error {
		for i, sql := range queries {
			var n int64
			if err := c.QueryRow(ctx, sql, int64(i)).Scan(&n); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
		return nil
	}

	t.Run("cache_statement collides", func(t *testing.T) {
		a, other := connect(pgx.QueryExecModeCacheStatement), connect(pgx.QueryExecModeCacheStatement)
		require.NoError(t, run(a))
		err := run(other)
		var pe *pgconn.PgError
		require.True(t, errors.As(err, &pe), "the second client's prepare must fail on the shared session, got %v", err)
		require.Equal(t, "42P05", pe.Code, "prepared statement already exists: %v", err)
	})
	t.Run("cache_describe works", func(t *testing.T) {
		a, other := connect(pgx.QueryExecModeCacheDescribe), connect(pgx.QueryExecModeCacheDescribe)
		for range 3 {
			require.NoError(t, run(a))
			require.NoError(t, run(other))
		}
	})
}
