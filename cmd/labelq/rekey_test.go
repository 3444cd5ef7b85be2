package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook/delivery"
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

	// A webhook endpoint in a rotation's overlap: both its secrets are under k1.
	ep, current := pg.InsertWebhook(t, old, org.ID, testenv.WebhookRow{URL: "https://hooks.example/labelq"})
	previous := delivery.NewSecret()
	sealedPrev, kidPrev, err := delivery.SealSecret(old, org.ID, previous)
	require.NoError(t, err)
	_, err = pg.Pool.Exec(ctx, `UPDATE webhook_endpoints SET previous_secret = $2, previous_secret_key_id = $3,
		previous_secret_expires_at = now() + interval '1 hour' WHERE id = $1`, ep.ID, sealedPrev, kidPrev)
	require.NoError(t, err)

	t.Setenv("LABELQ_DATABASE_URL", pg.URL)
	t.Setenv("LABELQ_SECRET_KEY", k2+","+k1)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"storage", "rekey"}, &out, &errOut), errOut.String())
	require.Equal(t, "resealed=2\nkey_id=k2\n", out.String(), "the storage and the webhook endpoint")
	require.NotContains(t, out.String()+errOut.String(), current)
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
	var w struct {
		secret, prev []byte
		kid, prevKid string
		expires      time.Time
	}
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT secret, secret_key_id, previous_secret, previous_secret_key_id, previous_secret_expires_at
		FROM webhook_endpoints WHERE id = $1`, ep.ID).Scan(&w.secret, &w.kid, &w.prev, &w.prevKid, &w.expires))
	require.Equal(t, "k2", w.kid)
	require.Equal(t, "k2", w.prevKid)
	secrets, err := delivery.SigningSecrets(onlyNew, delivery.Sealed{OrgID: org.ID, Secret: w.secret, SecretKeyID: w.kid,
		Previous: w.prev, PreviousKeyID: &w.prevKid, PreviousExpires: &w.expires}, time.Now())
	require.NoError(t, err)
	require.Equal(t, []string{current, previous}, secrets)

	out.Reset()
	require.Equal(t, 0, run([]string{"storage", "rekey"}, &out, &errOut), errOut.String())
	require.Equal(t, "resealed=0\nkey_id=k2\n", out.String(), "nothing left under an old key")

	t.Setenv("LABELQ_SECRET_KEY", "")
	errOut.Reset()
	require.NotEqual(t, 0, run([]string{"storage", "rekey"}, &out, &errOut))
	require.Contains(t, errOut.String(), "LABELQ_SECRET_KEY is not set")
}
