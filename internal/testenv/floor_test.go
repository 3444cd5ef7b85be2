package testenv_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

func TestDurableFloorRecordsEveryObject(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := context.Background()
	want := map[string]string{}
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = fmt.Sprintf("floor/%02d.csv", i)
		content := fmt.Appendf(nil, "id\n%d\n", i)
		env.S3.Put(t, keys[i], content, minio.PutObjectOptions{})
		want[keys[i]] = testenv.SHA256Hex(content)
	}

	f, err := testenv.DurableFloor(ctx, env.PG.URL, env.S3.Store, keys, 4)
	require.NoError(t, err)
	require.Equal(t, 30, f.Objects)
	require.Positive(t, f.PerSec)
	require.Positive(t, f.Steady)

	rows, err := env.PG.Pool.Query(ctx, "SELECT key, sha256 FROM "+testenv.FloorTable+" WHERE validated_at IS NOT NULL")
	require.NoError(t, err)
	got := map[string]string{}
	var k, sum string
	_, err = pgx.ForEachRow(rows, []any{&k, &sum}, func() error { got[k] = sum; return nil })
	require.NoError(t, err)
	require.Equal(t, want, got)

	_, err = testenv.DurableFloor(ctx, env.PG.URL, env.S3.Store, []string{"floor/absent"}, 1)
	require.ErrorContains(t, err, "floor/absent")
}

func TestClosePoolFlushesTableWrites(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	_, err := pg.Pool.Exec(ctx, "CREATE TABLE scratch (id int PRIMARY KEY, v int)")
	require.NoError(t, err)
	before, err := testenv.ReadTableWrites(ctx, pg.Pool, "scratch")
	require.NoError(t, err)

	w, err := testenv.NamedPool(ctx, pg.URL, "labelq-test-writer", 2)
	require.NoError(t, err)
	for i := range 5 {
		_, err := w.Exec(ctx, "INSERT INTO scratch VALUES ($1, 0)", i)
		require.NoError(t, err)
	}
	_, err = w.Exec(ctx, "UPDATE scratch SET v = 1 WHERE id < 2")
	require.NoError(t, err)
	// An idle backend would hold these counts for up to 10 s; closing the pool
	// makes them visible at once.
	require.NoError(t, testenv.ClosePool(ctx, w, pg.Pool))

	after, err := testenv.ReadTableWrites(ctx, pg.Pool, "scratch")
	require.NoError(t, err)
	require.Equal(t, testenv.TableWrites{"scratch": {Inserted: 5, Updated: 2}}, after.Since(before))
	all, err := testenv.ReadTableWrites(ctx, pg.Pool)
	require.NoError(t, err)
	require.Equal(t, after["scratch"], all["scratch"], "no names: every table")
	require.Contains(t, all, "file_versions")
}

func TestSeedPutsEveryObject(t *testing.T) {
	t.Parallel()
	s3 := testenv.MinIO(t)
	ctx := context.Background()
	testenv.Seed(t, s3.Store, "seed/", 2500) // two snowballs and a part of one
	n := 0
	for o := range s3.Store.Client.ListObjects(ctx, s3.Store.Bucket, minio.ListObjectsOptions{Prefix: "seed/", Recursive: true}) {
		require.NoError(t, o.Err)
		n++
	}
	require.Equal(t, 2500, n)
	obj, err := s3.Store.Client.GetObject(ctx, s3.Store.Bucket, testenv.SeedKey("seed/", 2499), minio.GetObjectOptions{})
	require.NoError(t, err)
	defer func() { _ = obj.Close() }()
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, testenv.SeedContent(2499), got)
}
