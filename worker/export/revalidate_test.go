package export_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/export"
)

// An object overwritten after validation (through a still-valid presigned URL)
// is never packed: the export fails with the reason, and the version goes back
// to validation instead of staying "valid" over bytes nobody measured.
func TestExportSendsASwappedVersionBackToValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ok := f.dataset("ok.txt", []byte("fine"), "text/plain")
	swapped := f.dataset("cat.jpg", testenv.RandomBytes(7, 4<<10), "image/jpeg")
	f.s3.Put(t, swapped.StoragePath, testenv.RandomBytes(99, 4<<10), minio.PutObjectOptions{})

	e := f.newExport(`{"include_files":true,"include_annotations":false}`)
	require.Error(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
	row := f.row(e.ID)
	require.Equal(t, db.ExportStatusFailed, row.Status)
	require.Contains(t, *row.Error, "stored bytes no longer match the recorded SHA-256")
	require.Nil(t, row.StoragePath)
	f.requireNoArchive(e.ID)

	ctx := context.Background()
	got, err := f.pg.Q.FileVersionGetByID(ctx, swapped.ID)
	require.NoError(t, err)
	require.Equal(t, db.ValidationStatusPending, got.ValidationStatus, "validated again")
	require.Nil(t, got.Checksum)
	var queued int
	require.NoError(t, f.pg.Pool.QueryRow(ctx,
		`SELECT count(*) FROM outbox WHERE task_type = 'file:validate' AND subject_id = $1`, swapped.ID).Scan(&queued))
	require.Equal(t, 1, queued)
	untouched, err := f.pg.Q.FileVersionGetByID(ctx, ok.ID)
	require.NoError(t, err)
	require.Equal(t, db.ValidationStatusValid, untouched.ValidationStatus)
}

// The export row is read by the tenant: a storage transport error is told as a
// plain reason there, while the log keeps the address.
func TestExportErrorNamesNoInternalAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.dataset("a.txt", []byte("hello"), "text/plain")
	e := f.newExport(`{"include_files":true,"include_annotations":false}`)
	addr := testenv.FreeAddr(t)
	client, err := minio.New(addr, &minio.Options{
		Creds: credentials.NewStaticV4("x", "y", ""), Region: "us-east-1", MaxRetries: 1,
	})
	require.NoError(t, err)
	dead := &storage.Store{Client: client, Bucket: f.s3.Store.Bucket}
	h := export.NewHandler(export.Deps{Pool: f.pg.Pool, Store: dead, Log: f.log, Options: export.Options{}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.Error(t, f.run(ctx, h, e.ID))

	row := f.row(e.ID)
	require.NotNil(t, row.Error)
	require.Contains(t, *row.Error, "storage unavailable")
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	require.NotContains(t, *row.Error, host)
	require.NotContains(t, *row.Error, ":"+port)
	require.Contains(t, f.logs.String(), addr, "operators see the detail in the log")
}
