package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
)

// TestStorageRekey rotates LABELQ_SECRET_KEY as an operator would: a storage
// sealed under k1, a new key k2 put first, `labelq storage rekey`, then k1 dropped.
func TestStorageRekey(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	k1 := "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k2 := "k2:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	old, err := storage.ParseKeyring(k1)
	require.NoError(t, err)
	r := &storage.Resolver{Keys: old}
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	sealed, kid, err := r.SealCredentials(org.ID, storage.Credentials{AccessKeyID: "AKIAREKEY", SecretAccessKey: "rekey-very-secret"})
	require.NoError(t, err)
	var id int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO storages (org_id, project_id, name, endpoint, bucket, credentials, credentials_key_id)
		VALUES ($1, $2, 'other', 'minio.example:9000', 'data', $3, $4) RETURNING id`, org.ID, pr.ID, sealed, kid).Scan(&id))

	t.Setenv("LABELQ_DATABASE_URL", pg.URL)
	t.Setenv("LABELQ_SECRET_KEY", k2+","+k1)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"storage", "rekey"}, &out, &errOut), errOut.String())
	require.Equal(t, "resealed=1\nkey_id=k2\n", out.String())
	require.NotContains(t, out.String()+errOut.String(), "rekey-very-secret")

	// The old key can go: the row opens under k2 alone.
	onlyNew, err := storage.ParseKeyring(k2)
	require.NoError(t, err)
	row, err := pg.Q.StorageGetByID(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "k2", *row.CredentialsKeyID)
	c, err := (&storage.Resolver{Keys: onlyNew}).Credentials(row)
	require.NoError(t, err)
	require.Equal(t, "rekey-very-secret", c.SecretAccessKey)

	out.Reset()
	require.Equal(t, 0, run([]string{"storage", "rekey"}, &out, &errOut), errOut.String())
	require.Equal(t, "resealed=0\nkey_id=k2\n", out.String(), "nothing left under an old key")

	t.Setenv("LABELQ_SECRET_KEY", "")
	errOut.Reset()
	require.NotEqual(t, 0, run([]string{"storage", "rekey"}, &out, &errOut))
	require.Contains(t, errOut.String(), "LABELQ_SECRET_KEY is not set")
}
