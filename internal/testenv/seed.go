package testenv

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
)

// Seeding many small objects, for the sync benchmarks.
const (
	// seeders is how many snowball uploads of seedBatch objects run at once.
	seeders   = 4
	seedBatch = 2000
)

// SeedKey is the i-th seeded key under prefix: a hundred folders of objects, as
// a dataset laid out by date or shard would be.
func SeedKey(prefix string, i int) string { return fmt.Sprintf("%s%02d/%06d.csv", prefix, i%100, i) }

// SeedContent is the i-th seeded object: a two-line CSV file.
func SeedContent(i int) []byte { return fmt.Appendf(nil, "id,text\n%d,sample number %d\n", i, i) }

// Seed puts n small CSV objects (SeedKey, SeedContent) under prefix and returns
// how long that took (SeedObjects), failing the test when it cannot.
func Seed(t testing.TB, st *storage.Store, prefix string, n int) time.Duration {
	t.Helper()
	start := time.Now()
	if err := SeedObjects(context.Background(), st, prefix, n); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return time.Since(start)
}

// SeedObjects puts n small CSV objects (SeedKey, SeedContent) under prefix. The
// objects go up as snowball archives (a tar that MinIO unpacks into one object
// per entry), a few at a time: one PutObject per object runs at a few hundred per
// second on two shared cores.
func SeedObjects(ctx context.Context, st *storage.Store, prefix string, n int) error {
	err := Parallel(seeders, (n+seedBatch-1)/seedBatch, func(j int) error {
		lo, hi := j*seedBatch, min(n, (j+1)*seedBatch)
		objs := make(chan minio.SnowballObject, hi-lo) // never blocks, also when the upload fails
		for i := lo; i < hi; i++ {
			content := SeedContent(i)
			objs <- minio.SnowballObject{Key: SeedKey(prefix, i), Size: int64(len(content)), Content: bytes.NewReader(content)}
		}
		close(objs)
		return st.Client.PutObjectsSnowball(ctx, st.Bucket, minio.SnowballOptions{InMemory: true}, objs)
	})
	if err != nil {
		return fmt.Errorf("seed %d objects under %s: %w", n, prefix, err)
	}
	return nil
}

// Parallel runs fn for 0..n-1 on `workers` goroutines and returns the first error
// (the goroutine that hit it stops; the others finish what they took).
func Parallel(workers, n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// OwnStorage makes an import storage in labelq's own bucket over prefix (which
// must be under storage.OwnPrefix(orgID)), syncing into a new project of its own:
// file names are keys relative to the prefix, so two storages of one project
// would claim the same names.
func (p *PG) OwnStorage(t testing.TB, orgID int64, name, prefix string) db.Storage {
	t.Helper()
	ctx := context.Background()
	proj := p.Project(t, orgID)
	var id int64
	if err := p.Pool.QueryRow(ctx, `INSERT INTO storages (org_id, project_id, name, prefix)
		VALUES ($1, $2, $3, $4) RETURNING id`, orgID, proj.ID, name, prefix).Scan(&id); err != nil {
		t.Fatalf("testenv: storage %s: %v", name, err)
	}
	st, err := p.Q.StorageGetByID(ctx, id)
	if err != nil {
		t.Fatalf("testenv: storage %s: %v", name, err)
	}
	return st
}
