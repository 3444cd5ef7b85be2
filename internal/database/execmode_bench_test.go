package database_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// validateMix is the database side of one file:validate run, with the validate
// worker's own sqlc queries: the version read with its file and project, the
// attempt counted, and the decision transaction up to its row lock, checksum lock
// and duplicate lookup (committed without a state change, so the mix repeats).
func validateMix(ctx context.Context, pool *pgxpool.Pool, v db.FileVersion, sum string) error {
	q := db.New(pool)
	if _, err := q.FileVersionGetForValidation(ctx, v.ID); err != nil {
		return fmt.Errorf("get for validation: %w", err)
	}
	if _, err := q.FileVersionIncrementAttempts(ctx, v.ID); err != nil {
		return fmt.Errorf("increment attempts: %w", err)
	}
	return database.Tx(ctx, pool, func(q *db.Queries, _ pgx.Tx) error {
		if _, err := q.FileVersionGetForUpdate(ctx, v.ID); err != nil {
			return fmt.Errorf("get for update: %w", err)
		}
		if err := q.FileVersionLockChecksum(ctx, db.FileVersionLockChecksumParams{Checksum: sum, ProjectID: v.ProjectID}); err != nil {
			return fmt.Errorf("lock checksum: %w", err)
		}
		_, err := q.FileVersionFindDuplicate(ctx, db.FileVersionFindDuplicateParams{ProjectID: v.ProjectID, Checksum: &sum, ID: v.ID})
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("find duplicate: %w", err)
		}
		return nil
	})
}

// BenchmarkExecModes measures what LABELQ_DATABASE_EXEC_MODE=cache_describe costs:
// the validate worker's query mix (validateMix), from 8 goroutines over 8
// connections, in pgx's default mode straight to PostgreSQL (the baseline), in
// cache_describe straight to PostgreSQL (the mode's own cost), and in cache_describe
// through PgBouncer in transaction pooling with 8 server sessions (what a deployment
// behind the pooler gets). The three run in turn, twice each, so drift on a shared
// machine falls on all of them. LABELQ_BENCH_EXEC_MODE_OPS sets the mixes per turn
// (default 2000).
func BenchmarkExecModes(b *testing.B) {
	ops := 2000
	if v := os.Getenv("LABELQ_BENCH_EXEC_MODE_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("LABELQ_BENCH_EXEC_MODE_OPS=%q: want a positive number", v)
		}
		ops = n
	}
	const workers = 8
	pg := testenv.Postgres(b)
	bouncer := testenv.NewPgBouncer(b, testenv.PgBouncerConfig{PoolSize: workers})
	ctx := context.Background()
	org := pg.Org(b)
	pr := pg.Project(b, org.ID)
	var versions []db.FileVersion
	for i := range 64 {
		versions = append(versions, pg.RegisterVersion(b, pg.File(b, pr, fmt.Sprintf("f-%03d.csv", i)), fmt.Sprintf("k/%d", i), testenv.Declared{}))
	}
	open := func(url string, mode pgx.QueryExecMode) *pgxpool.Pool {
		p, err := database.Open(ctx, url, workers, database.WithExecMode(mode))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		return p
	}
	variants := []struct {
		name string
		pool *pgxpool.Pool
		took time.Duration
	}{
		{name: "direct_cache_statement", pool: open(pg.URL, pgx.QueryExecModeCacheStatement)},
		{name: "direct_cache_describe", pool: open(pg.URL, pgx.QueryExecModeCacheDescribe)},
		{name: "pgbouncer_cache_describe", pool: open(bouncer.URL(pg.URL), pgx.QueryExecModeCacheDescribe)},
	}
	mixes := func(pool *pgxpool.Pool, n int) error {
		return testenv.Parallel(workers, n, func(i int) error {
			v := versions[i%len(versions)]
			return validateMix(ctx, pool, v, fmt.Sprintf("%064d", v.ID))
		})
	}
	for i := range variants {
		// Warm: every connection open and every description or statement cached.
		if err := mixes(variants[i].pool, 20*workers); err != nil {
			b.Fatalf("%s: %v", variants[i].name, err)
		}
	}
	b.ResetTimer()
	for range b.N {
		for range 2 {
			for i := range variants {
				start := time.Now()
				if err := mixes(variants[i].pool, ops); err != nil {
					b.Fatalf("%s: %v", variants[i].name, err)
				}
				variants[i].took += time.Since(start)
			}
		}
	}
	b.StopTimer()
	perSec := func(i int) float64 { return float64(2*ops*b.N) / variants[i].took.Seconds() }
	for i := range variants {
		b.ReportMetric(perSec(i), variants[i].name+"_mixes_per_s")
	}
	b.ReportMetric(perSec(1)/perSec(0), "ratio_describe_vs_statement")
	b.ReportMetric(perSec(2)/perSec(0), "ratio_pgbouncer_vs_direct")
}
