package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/storage"
)

// FloorTable is the scratch table DurableFloor writes to, created in the test's
// own database (it is not part of labelq's schema).
const FloorTable = "floor_objects"

// Floor is what the minimal durable floor measured: the least any system pays that
// records each object durably and validates its bytes, one object at a time.
type Floor struct {
	Objects     int
	Concurrency int
	Elapsed     time.Duration
	// PerSec is objects per second from the first INSERT to the last commit.
	PerSec float64
	// Steady is objects per second between the 10th and the 90th percentile of
	// completion times, the rate labelq's pipeline benchmarks compare on.
	Steady float64
	// CPU is what each process spent while the floor ran.
	CPU CPUByProcess
}

// DurableFloor is the baseline of labelq's small-object benchmarks: a plain Go
// loop over the same PostgreSQL and MinIO that, per object and with `concurrency`
// goroutines (one connection each), INSERTs a row and commits, GETs and SHA-256
// hashes the object, UPDATEs the row and commits. Each statement is its own
// transaction (autocommit): one round trip and one WAL flush per commit, which is
// the least a durable record costs; nothing is batched, prepared ahead or
// pipelined beyond what pgx does for any query.
//
// The table (FloorTable, a bigserial key and three columns, no other index) is
// dropped and created again on each call, before the clock starts.
func DurableFloor(ctx context.Context, databaseURL string, st *storage.Store, keys []string, concurrency int) (Floor, error) {
	if len(keys) == 0 || concurrency < 1 {
		return Floor{}, fmt.Errorf("durable floor: %d keys at concurrency %d", len(keys), concurrency)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return Floor{}, fmt.Errorf("durable floor: %w", err)
	}
	cfg.MaxConns = int32(concurrency)
	cfg.MinConns = int32(concurrency)
	cfg.ConnConfig.RuntimeParams["application_name"] = "labelq-bench-floor"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return Floor{}, fmt.Errorf("durable floor: connect: %w", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+FloorTable+`;
		CREATE TABLE `+FloorTable+` (
		    id          bigserial PRIMARY KEY,
		    key         text NOT NULL,
		    sha256      text,
		    size_bytes  bigint,
		    created_at  timestamptz NOT NULL DEFAULT now(),
		    validated_at timestamptz)`); err != nil {
		return Floor{}, fmt.Errorf("durable floor: create %s: %w", FloorTable, err)
	}
	// Every connection is open and has run a statement before the clock starts,
	// as a long-running worker's pool would have.
	conns := make([]*pgxpool.Conn, concurrency)
	for i := range conns {
		if conns[i], err = pool.Acquire(ctx); err == nil {
			_, err = conns[i].Exec(ctx, "SELECT 1")
		}
		if err != nil {
			for _, c := range conns[:i+1] {
				if c != nil {
					c.Release()
				}
			}
			return Floor{}, fmt.Errorf("durable floor: connect: %w", err)
		}
	}
	for _, c := range conns {
		c.Release()
	}

	finished := make([]time.Time, len(keys))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	cpuBefore := CPUSnapshot()
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(keys) {
					return
				}
				if err := floorOne(ctx, pool, st, keys[i]); err != nil {
					errs <- err
					return
				}
				finished[i] = time.Now()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := CPUSnapshot().Since(cpuBefore)
	close(errs)
	if err := <-errs; err != nil {
		return Floor{}, err
	}
	// The floor's deferred costs (its 2n dead row versions, which autovacuum would
	// clean, and the dirty pages the checkpointer would write) are paid here,
	// outside every measured window: left for later, they landed in the window of
	// the labelq run that follows and cost it 5 to 13 PostgreSQL CPU-seconds of the
	// 10,000-version benchmark (measured with and without a full floor first).
	if _, err := pool.Exec(ctx, `VACUUM `+FloorTable); err != nil {
		return Floor{}, fmt.Errorf("durable floor: vacuum %s: %w", FloorTable, err)
	}
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		return Floor{}, fmt.Errorf("durable floor: checkpoint after the floor: %w", err)
	}
	n := len(keys)
	slices.SortFunc(finished, func(x, y time.Time) int { return x.Compare(y) })
	f := Floor{Objects: n, Concurrency: concurrency, Elapsed: elapsed, PerSec: float64(n) / elapsed.Seconds(), CPU: cpu}
	if p10, p90 := finished[n/10], finished[n*9/10]; p90.After(p10) {
		f.Steady = 0.8 * float64(n) / p90.Sub(p10).Seconds()
	} else {
		f.Steady = f.PerSec
	}
	return f, nil
}

// Total is the CPU seconds of every process in c.
func (c CPUByProcess) Total() float64 {
	var t float64
	for _, v := range c {
		t += v
	}
	return t
}

// floorOne is the floor's work for one object: two commits and one GET.
func floorOne(ctx context.Context, pool *pgxpool.Pool, st *storage.Store, key string) error {
	var id int64
	if err := pool.QueryRow(ctx, `INSERT INTO `+FloorTable+` (key) VALUES ($1) RETURNING id`, key).Scan(&id); err != nil {
		return fmt.Errorf("durable floor: insert %s: %w", key, err)
	}
	obj, err := st.Client.GetObject(ctx, st.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("durable floor: get %s: %w", key, err)
	}
	h := sha256.New()
	size, err := io.Copy(h, obj)
	_ = obj.Close()
	if err != nil {
		return fmt.Errorf("durable floor: read %s: %w", key, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+FloorTable+` SET sha256 = $2, size_bytes = $3, validated_at = now() WHERE id = $1`,
		id, hex.EncodeToString(h.Sum(nil)), size); err != nil {
		return fmt.Errorf("durable floor: update %s: %w", key, err)
	}
	return nil
}
