// Package app wires labelq's processes: it opens the dependencies once (Postgres,
// Redis, S3), builds every role (api, worker, scheduler, relay) from them, and runs
// any set of roles until the context ends, stopping each gracefully. cmd/labelq only
// parses the command line and calls Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/config"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/reconcile"
	"github.com/labelq/labelq/internal/storage"
)

// Version is set at build time (-ldflags "-X github.com/labelq/labelq/internal/app.Version=…").
var Version = "dev"

// Role is one kind of labelq process.
type Role string

const (
	RoleAPI       Role = "api"
	RoleWorker    Role = "worker"
	RoleScheduler Role = "scheduler"
	RoleRelay     Role = "relay"
)

// AllRoles is what `labelq all` runs.
var AllRoles = []Role{RoleAPI, RoleWorker, RoleScheduler, RoleRelay}

// App holds the shared dependencies of a process.
type App struct {
	Cfg     *config.Config
	Log     *slog.Logger
	Pool    *pgxpool.Pool
	APIPool *pgxpool.Pool // the API's: labelq_api_login (Config.APIDatabase), under RLS even after a RESET ROLE
	// DirectPool reaches the server itself (Config.DirectDatabase), for sessions of
	// their own (the relay's LISTEN); it is Pool when no pooler is in between.
	DirectPool *pgxpool.Pool
	Store      *storage.Store
	// Storages resolves a version's or an export's storage id to its client
	// (labelq's own bucket for none).
	Storages *storage.Resolver
	// Keys seal and open tenants' secrets (storage credentials, webhook signing
	// secrets): LABELQ_SECRET_KEY.
	Keys      *storage.Keyring
	Redis     asynq.RedisConnOpt
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Metrics   *metrics.Metrics
	Now       func() time.Time
	// Mount wires the worker role's task handlers (cmd/labelq sets it).
	Mount Mount

	// rdb is the one go-redis client the LLM limiter and the API's request limiter
	// share, made on first use and closed by Close.
	rdbOnce sync.Once
	rdb     redis.UniversalClient
	rdbErr  error
}

// RedisClient is the App's go-redis client (for the Lua-script limiters and the
// webhook endpoints' slots; asynq keeps its own connections).
func (a *App) RedisClient() (redis.UniversalClient, error) { return a.redisClient() }

func (a *App) redisClient() (redis.UniversalClient, error) {
	a.rdbOnce.Do(func() {
		rdb, ok := a.Redis.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			a.rdbErr = fmt.Errorf("redis connection option %T makes no go-redis client", a.Redis)
			return
		}
		a.rdb = rdb
	})
	return a.rdb, a.rdbErr
}

// New connects to every dependency and fails with a message naming the one that is
// missing and how to start it.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	redisOpt, err := cfg.RedisConnOpt()
	if err != nil {
		return nil, err
	}
	execMode, err := cfg.QueryExecMode()
	if err != nil {
		return nil, err
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, database.WithExecMode(execMode))
	if err != nil {
		return nil, err
	}
	store, err := storage.New(storage.Config{
		Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
		Bucket: cfg.S3Bucket, Region: cfg.S3Region, UseTLS: cfg.S3UseTLS,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	keys, err := storage.ParseKeyring(cfg.SecretKey)
	if err != nil {
		pool.Close()
		return nil, err
	}
	allow, err := storage.ParseAllowlist(cfg.StorageAllowedEndpoints, cfg.S3Endpoint)
	if err != nil {
		pool.Close()
		return nil, err
	}
	resolver := storage.NewResolver(store, keys, allow, db.New(pool))
	bctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := store.EnsureBucket(bctx); err != nil {
		pool.Close()
		return nil, err
	}
	inspector := asynq.NewInspector(redisOpt)
	if err := waitRedis(ctx, redisOpt, inspector, log); err != nil {
		pool.Close()
		_ = inspector.Close()
		return nil, fmt.Errorf("connect to Redis: %w (is it running? see `make services`)", err)
	}
	// Lazy: only the api role uses it (role checks it can log in).
	apiPool, err := database.OpenLazy(ctx, cfg.APIDatabase(), cfg.DatabaseMaxConns, database.WithExecMode(execMode))
	if err != nil {
		pool.Close()
		_ = inspector.Close()
		return nil, fmt.Errorf("LABELQ_API_DATABASE_URL: %w", err)
	}
	directPool := pool
	if cfg.DirectDatabase() != cfg.DatabaseURL {
		// Lazy too: only the relay uses it, for one connection at a time.
		if directPool, err = database.OpenLazy(ctx, cfg.DirectDatabase(), 2); err != nil {
			pool.Close()
			apiPool.Close()
			_ = inspector.Close()
			return nil, fmt.Errorf("LABELQ_DATABASE_DIRECT_URL: %w", err)
		}
	}
	m := metrics.New()
	m.RegisterQueues(inspector)
	m.RegisterState(pool, log)
	for _, f := range reconcile.Finders() {
		m.InitReconcileKinds(f.Kind)
	}
	return &App{
		Cfg: cfg, Log: log, Pool: pool, APIPool: apiPool, DirectPool: directPool, Store: store, Storages: resolver, Keys: keys, Redis: redisOpt,
		Client: asynq.NewClient(redisOpt), Inspector: inspector, Metrics: m, Now: Clock(cfg.ClockSkew),
	}, nil
}

// Clock is the process's clock: time.Now, or shifted by LABELQ_CLOCK_SKEW (a test
// knob standing in for a host whose clock is off).
func Clock(skew time.Duration) func() time.Time {
	if skew == 0 {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(skew) }
}

// Close releases every connection.
func (a *App) Close() {
	_ = a.Client.Close()
	_ = a.Inspector.Close()
	a.Pool.Close()
	a.APIPool.Close()
	if a.DirectPool != nil && a.DirectPool != a.Pool {
		a.DirectPool.Close()
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
}

// Run runs the roles until ctx ends or one fails, then stops the rest and waits for
// them: in-flight HTTP requests finish and workers hand unfinished tasks back.
func (a *App) Run(ctx context.Context, roles ...Role) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	if a.Cfg.MetricsAddr != "" {
		roles = append(roles[:len(roles):len(roles)], roleMetrics)
	}
	for _, r := range roles {
		run, err := a.role(r)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", r, err)
				}
				mu.Unlock()
				a.Log.Error("role stopped with an error", slog.String("role", string(r)), slog.String("error", err.Error()))
				cancel()
			}
		}()
	}
	a.Log.Info("labelq started", slog.Any("roles", roles), slog.String("version", Version))
	<-ctx.Done()
	wg.Wait()
	a.Log.Info("labelq stopped")
	return first
}

func (a *App) role(r Role) (func(context.Context) error, error) {
	switch r {
	case RoleAPI:
		if err := database.Ping(context.Background(), a.APIPool); err != nil {
			return nil, fmt.Errorf("the API's database role (LABELQ_API_DATABASE_URL; `labelq migrate up` creates labelq_api_login): %w", err)
		}
		return a.runHTTP, nil
	case RoleWorker:
		return a.runWorker, nil
	case RoleScheduler:
		return a.runScheduler, nil
	case RoleRelay:
		return a.runRelay, nil
	case roleMetrics:
		return a.runMetrics, nil
	}
	return nil, fmt.Errorf("unknown role %q (want api, worker, scheduler or relay)", r)
}
