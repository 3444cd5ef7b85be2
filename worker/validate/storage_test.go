package validate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/validate"
)

// TestVersionInAnotherStorage validates versions whose bytes are in a storage:
// one on a second MinIO server with credentials of its own, read through the
// resolver, and one in labelq's bucket under the organization's namespace.
func TestVersionInAnotherStorage(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	remote := testenv.SecondMinIO(t)
	keys := testenv.StorageKeyring(t)
	res := testenv.StorageResolver(t, env.PG, env.S3, keys, remote.Endpoint)
	opts := validate.Options{MissingAttempts: 2, MissingDelay: 10 * time.Millisecond, MissingMaxDelay: 20 * time.Millisecond}
	log, _ := testenv.Logger(t)
	handler := func(r *storage.Resolver) *validate.Handler {
		return validate.NewHandler(validate.Deps{Pool: env.PG.Pool, Store: env.S3.Store, Storages: r, Options: opts, Log: log})
	}
	h := handler(res)
	run := func(t *testing.T, h *validate.Handler, id int64) error {
		t.Helper()
		task, err := tasks.NewTask(tasks.Validate{VersionID: id})
		require.NoError(t, err)
		return tasks.Handle(h.Work).ProcessTask(context.Background(), task)
	}
	org := env.PG.Org(t)
	pr := env.PG.Project(t, org.ID)
	register := func(t *testing.T, st db.Storage, key string) db.FileVersion {
		t.Helper()
		f := env.PG.File(t, pr, fmt.Sprintf("file-%d.csv", time.Now().UnixNano()))
		v := env.PG.RegisterVersion(t, f, key, testenv.Declared{})
		env.PG.SetVersionStorage(t, v.ID, st)
		return v
	}
	get := func(t *testing.T, id int64) db.FileVersion {
		t.Helper()
		v, err := env.PG.Q.FileVersionGetByID(context.Background(), id)
		require.NoError(t, err)
		return v
	}
	st := env.PG.InsertStorage(t, res, pr, testenv.RemoteRow(remote, db.StorageKindImport, "incoming/", nil))

	t.Run("a key of the storage's bucket is read through it and judged valid", func(t *testing.T) {
		content := csvBytes(120)
		key := "incoming/cats/labels.csv" // the tenant's own layout, not orgs/<org>/
		remote.Put(t, key, content, minio.PutObjectOptions{})
		v := register(t, st, key)
		requireResult(t, succeeded, run(t, h, v.ID))
		got := get(t, v.ID)
		require.Equal(t, db.ValidationStatusValid, got.ValidationStatus, "validation_error: %v", got.ValidationError)
		require.Equal(t, testenv.SHA256Hex(content), *got.Checksum)
		require.Equal(t, int64(len(content)), *got.SizeBytes)
		_, err := env.S3.Store.Client.StatObject(context.Background(), env.S3.Store.Bucket, key, minio.StatObjectOptions{})
		require.True(t, storage.IsNotFound(err), "nothing is copied into labelq's bucket: %v", err)
	})

	t.Run("wrong credentials are looked at again, then the version is missing with a reason", func(t *testing.T) {
		const secret = "not-the-secret-key-of-that-server"
		bad := env.PG.InsertStorage(t, res, pr, testenv.RemoteRow(remote, db.StorageKindImport, "",
			&storage.Credentials{AccessKeyID: remote.AccessKey, SecretAccessKey: secret}))
		key := "incoming/wrong-creds.csv"
		remote.Put(t, key, csvBytes(10), minio.PutObjectOptions{})
		v := register(t, bad, key)
		requireResult(t, retryLater, run(t, h, v.ID))
		require.Equal(t, db.ValidationStatusPending, get(t, v.ID).ValidationStatus)
		requireResult(t, archived, run(t, h, v.ID))
		got := get(t, v.ID)
		require.Equal(t, db.ValidationStatusMissing, got.ValidationStatus)
		require.NotNil(t, got.ValidationError)
		msg := *got.ValidationError
		require.Contains(t, msg, "access denied")
		require.Contains(t, msg, fmt.Sprintf("storage %d", bad.ID))
		require.Contains(t, msg, "access key "+bad.AccessKeyHint)
		require.NotContains(t, msg, secret)
		require.Nil(t, got.Checksum, "nothing was measured")
	})

	t.Run("a deleted storage decides the version missing at once", func(t *testing.T) {
		gone := env.PG.InsertStorage(t, res, pr, testenv.RemoteRow(remote, db.StorageKindImport, "", nil))
		key := "incoming/deleted.csv"
		remote.Put(t, key, csvBytes(10), minio.PutObjectOptions{})
		v := register(t, gone, key)
		_, err := env.PG.Pool.Exec(context.Background(), `UPDATE storages SET deleted_at = now() WHERE id = $1`, gone.ID)
		require.NoError(t, err)
		requireResult(t, archived, run(t, h, v.ID))
		got := get(t, v.ID)
		require.Equal(t, db.ValidationStatusMissing, got.ValidationStatus)
		require.Contains(t, *got.ValidationError, fmt.Sprintf("storage %d, which held it, was deleted", gone.ID))
	})

	t.Run("an endpoint the operator no longer allows ends with that reason", func(t *testing.T) {
		narrowed := handler(testenv.StorageResolver(t, env.PG, env.S3, keys)) // the second server is not allowed
		key := "incoming/not-allowed.csv"
		remote.Put(t, key, csvBytes(10), minio.PutObjectOptions{})
		v := register(t, st, key)
		requireResult(t, retryLater, run(t, narrowed, v.ID))
		requireResult(t, archived, run(t, narrowed, v.ID))
		got := get(t, v.ID)
		require.Equal(t, db.ValidationStatusMissing, got.ValidationStatus)
		require.Contains(t, *got.ValidationError, "LABELQ_STORAGE_ALLOWED_ENDPOINTS")
	})

	t.Run("an own storage reads only its organization's namespace", func(t *testing.T) {
		own := env.PG.InsertStorage(t, res, pr, testenv.StorageRow{Prefix: storage.OwnPrefix(org.ID) + "drop/"})
		inside := storage.OwnPrefix(org.ID) + "drop/a.csv"
		content := csvBytes(30)
		env.S3.Put(t, inside, content, minio.PutObjectOptions{})
		v := register(t, own, inside)
		requireResult(t, succeeded, run(t, h, v.ID))
		require.Equal(t, testenv.SHA256Hex(content), *get(t, v.ID).Checksum)

		outside := storage.OwnPrefix(org.ID+1_000_000) + "drop/a.csv" // another organization's namespace
		env.S3.Put(t, outside, content, minio.PutObjectOptions{})
		w := register(t, own, outside)
		requireResult(t, archived, run(t, h, w.ID))
		got := get(t, w.ID)
		require.Equal(t, db.ValidationStatusRejected, got.ValidationStatus)
		require.Contains(t, *got.ValidationError, "outside the organization's namespace")
		require.Nil(t, got.Checksum, "not a byte of it was read")
	})
}
