package testenv_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// TestIsolation runs two tests at once through the harness; each writes a row, a
// Redis key and an object, and must see only its own.
func TestIsolation(t *testing.T) {
	marker := map[string]string{"a": "alpha", "b": "bravo"}
	for name, value := range marker {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pg := testenv.Postgres(t)
			rd := testenv.RedisDB(t)
			s3 := testenv.MinIO(t)

			_, err := pg.Q.OrganizationCreate(ctx, value)
			require.NoError(t, err)
			require.NoError(t, rd.Client.Set(ctx, "marker", value, 0).Err())
			s3.Put(t, "marker", []byte(value), minio.PutObjectOptions{})

			// Give the other subtest time to write its own markers.
			require.NoError(t, rd.Client.Set(ctx, "ready:"+name, "1", 0).Err())
			var names []string
			rows, err := pg.Pool.Query(ctx, "SELECT name FROM organizations")
			require.NoError(t, err)
			for rows.Next() {
				var n string
				require.NoError(t, rows.Scan(&n))
				names = append(names, n)
			}
			require.NoError(t, rows.Err())
			require.Equal(t, []string{value}, names, "only this test's organization is visible")

			got, err := rd.Client.Get(ctx, "marker").Result()
			require.NoError(t, err)
			require.Equal(t, value, got)
			keys, err := rd.Client.Keys(ctx, "*").Result()
			require.NoError(t, err)
			require.ElementsMatch(t, []string{"marker", "ready:" + name}, keys)

			obj, err := s3.Store.Client.GetObject(ctx, s3.Store.Bucket, "marker", minio.GetObjectOptions{})
			require.NoError(t, err)
			b, err := io.ReadAll(obj)
			require.NoError(t, err)
			require.True(t, bytes.Equal([]byte(value), b))
			var objects []string
			for o := range s3.Store.Client.ListObjects(ctx, s3.Store.Bucket, minio.ListObjectsOptions{Recursive: true}) {
				require.NoError(t, o.Err)
				objects = append(objects, o.Key)
			}
			require.Equal(t, []string{"marker"}, objects)
		})
	}
}

func TestFixturesBuildAPipelineInput(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	s3 := testenv.MinIO(t)
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	f := pg.File(t, pr, "")
	content := []byte("hello, annotators")
	sum := testenv.SHA256Hex(content)
	v1 := pg.Upload(t, s3, f, content, testenv.Declared{SHA256: &sum})
	v2 := pg.Upload(t, s3, f, content, testenv.Declared{})
	require.Equal(t, int32(1), v1.VersionNumber)
	require.Equal(t, int32(2), v2.VersionNumber)
	require.Equal(t, sum, *v1.ExpectedSha256)
	st, err := s3.Store.Client.StatObject(context.Background(), s3.Store.Bucket, v1.StoragePath, minio.StatObjectOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(len(content)), st.Size)
}

// The tests SkipUnderRace skips in the race pass must be the ones make test's
// second pass runs, or they would only ever be skipped.
func TestHeavyTestsRunInMakeTest(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	require.Contains(t, string(mk), "HEAVY_TESTS := "+strings.ReplaceAll(testenv.HeavyTestPass, "$", "$$")+"\n")
	require.Contains(t, string(mk), "-run '$(HEAVY_TESTS)'")
}
