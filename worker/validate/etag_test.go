package validate_test

import (
	"context"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// Validation records which object it measured (its ETag), so readers can refuse
// bytes swapped in afterwards; a version sent back to validation is measured
// again, new ETag and checksum included.
func TestValidateRecordsTheObjectETag(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, testOptions)
	pg := hs.env.PG
	ctx := context.Background()
	f := pg.File(t, pg.Project(t, pg.Org(t).ID), "")
	content := csvBytes(100)
	v := pg.Upload(t, hs.env.S3, f, content, testenv.Declared{})
	require.NoError(t, hs.process(t, v.ID))

	stat := func() minio.ObjectInfo {
		info, err := hs.env.S3.Store.Client.StatObject(ctx, hs.env.S3.Store.Bucket, v.StoragePath, minio.StatObjectOptions{})
		require.NoError(t, err)
		return info
	}
	got := hs.version(t, v.ID)
	require.Equal(t, db.ValidationStatusValid, got.ValidationStatus)
	require.NotNil(t, got.ObjectEtag)
	require.Equal(t, stat().ETag, *got.ObjectEtag)

	other := csvBytes(200)
	hs.env.S3.Put(t, v.StoragePath, other, minio.PutObjectOptions{})
	_, err := pg.Q.FileVersionRevalidate(ctx, db.FileVersionRevalidateParams{ID: v.ID, Checksum: *got.Checksum})
	require.NoError(t, err)
	require.NoError(t, hs.process(t, v.ID))
	again := hs.version(t, v.ID)
	require.Equal(t, db.ValidationStatusValid, again.ValidationStatus)
	require.Equal(t, testenv.SHA256Hex(other), *again.Checksum)
	require.Equal(t, stat().ETag, *again.ObjectEtag)
	require.NotEqual(t, *got.ObjectEtag, *again.ObjectEtag)
}
