package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

var (
	secondOnce sync.Once
	secondSrv  *MinIOServer
	secondErr  error
)

// SecondMinIO returns a bucket of the test's own on a second MinIO server of
// this test binary (started on first use), with root credentials of its own:
// what a tenant's storage on another endpoint looks like. The bucket is emptied
// and removed when the test ends.
func SecondMinIO(t testing.TB) *S3 {
	t.Helper()
	secondOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		secondSrv, secondErr = StartMinIO(ctx)
	})
	if secondErr != nil {
		t.Fatalf("testenv: second MinIO: %v", secondErr)
	}
	bucket := "r-" + randHex(8)
	st, err := storage.New(storage.Config{
		Endpoint: secondSrv.Endpoint, AccessKey: secondSrv.AccessKey, SecretKey: secondSrv.SecretKey,
		Bucket: bucket, Region: "us-east-1",
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := st.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Client.RemoveBucketWithOptions(context.Background(), bucket,
			minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Logf("testenv: remove bucket %s: %v", bucket, err)
		}
	})
	return &S3{MinIOServer: secondSrv, Store: st}
}

// StorageKeyring is a keyring with one fresh random key (kid "test"), as
// LABELQ_SECRET_KEY would give.
func StorageKeyring(t testing.TB) *storage.Keyring {
	t.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	k, err := storage.ParseKeyring("test:" + base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatalf("testenv: keyring: %v", err)
	}
	return k
}

// StorageResolver is a resolver over own (labelq's bucket) that reads storages
// through pg, seals with keys, and allows own's endpoint plus allowed (host:port).
func StorageResolver(t testing.TB, pg *PG, own *S3, keys *storage.Keyring, allowed ...string) *storage.Resolver {
	t.Helper()
	allow, err := storage.ParseAllowlist(strings.Join(append([]string{own.Endpoint}, allowed...), ","), own.Endpoint)
	if err != nil {
		t.Fatalf("testenv: allow-list: %v", err)
	}
	return storage.NewResolver(own.Store, keys, allow, pg.Q)
}

// StorageRow is a storage to insert with InsertStorage. An empty Endpoint is
// labelq's own bucket (Prefix must then be under orgs/<org>/); Creds nil is
// none; Kind "" is import.
type StorageRow struct {
	Kind     db.StorageKind
	Name     string
	Endpoint string
	Bucket   string
	Prefix   string
	Region   string
	UseTLS   bool
	Creds    *storage.Credentials
}

// RemoteRow is the row of a storage on s's server and bucket, with s's root
// credentials unless creds says otherwise.
func RemoteRow(s *S3, kind db.StorageKind, prefix string, creds *storage.Credentials) StorageRow {
	if creds == nil {
		creds = &storage.Credentials{AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey}
	}
	return StorageRow{Kind: kind, Endpoint: s.Endpoint, Bucket: s.Store.Bucket, Prefix: prefix, Region: "us-east-1", Creds: creds}
}

// InsertStorage inserts a storages row of project pr with plain SQL (no API),
// its credentials sealed through r, and returns it.
func (p *PG) InsertStorage(t testing.TB, r *storage.Resolver, pr db.Project, row StorageRow) db.Storage {
	t.Helper()
	ctx := context.Background()
	if row.Kind == "" {
		row.Kind = db.StorageKindImport
	}
	if row.Name == "" {
		row.Name = "storage-" + randHex(6)
	}
	var sealed []byte
	var kid *string
	hint := ""
	if row.Creds != nil {
		b, k, err := r.SealCredentials(pr.OrgID, *row.Creds)
		if err != nil {
			t.Fatalf("testenv: seal credentials: %v", err)
		}
		sealed, kid, hint = b, &k, row.Creds.Hint()
	}
	var id int64
	err := p.Pool.QueryRow(ctx, `INSERT INTO storages (org_id, project_id, kind, name, endpoint, bucket, prefix, region, use_tls,
		access_key_hint, credentials, credentials_key_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
		pr.OrgID, pr.ID, row.Kind, row.Name, row.Endpoint, row.Bucket, row.Prefix, row.Region, row.UseTLS,
		hint, sealed, kid).Scan(&id)
	if err != nil {
		t.Fatalf("testenv: insert storage: %v", err)
	}
	st, err := p.Q.StorageGetByID(ctx, id)
	if err != nil {
		t.Fatalf("testenv: read storage %d: %v", id, err)
	}
	return st
}

// SetVersionStorage says the version's bytes are in storage st (at its
// storage_path, a key of st's bucket).
func (p *PG) SetVersionStorage(t testing.TB, versionID int64, st db.Storage) {
	t.Helper()
	if _, err := p.Pool.Exec(context.Background(), `UPDATE file_versions SET storage_id = $1 WHERE id = $2`, st.ID, versionID); err != nil {
		t.Fatalf("testenv: set storage of version %d: %v", versionID, err)
	}
}

// WebhookRow is a webhook endpoint to insert with InsertWebhook.
type WebhookRow struct {
	URL        string
	EventTypes []string // empty: all
	ProjectIDs []int64  // empty: all
	Secret     string   // empty: a new one
	Disabled   bool
}

// InsertWebhook writes an endpoint of orgID (its secret sealed under keys, as the
// API does) and returns the row and its plain secret.
func (p *PG) InsertWebhook(t testing.TB, keys *storage.Keyring, orgID int64, row WebhookRow) (db.WebhookEndpoint, string) {
	t.Helper()
	secret := row.Secret
	if secret == "" {
		secret = delivery.NewSecret()
	}
	sealed, kid, err := delivery.SealSecret(keys, orgID, secret)
	if err != nil {
		t.Fatalf("seal webhook secret: %v", err)
	}
	types := row.EventTypes
	if types == nil {
		types = []string{}
	}
	projects := row.ProjectIDs
	if projects == nil {
		projects = []int64{}
	}
	ep, err := db.New(p.Pool).WebhookEndpointInsert(context.Background(), db.WebhookEndpointInsertParams{
		OrgID: orgID, Url: row.URL, Description: "test", EventTypes: types, ProjectIds: projects,
		Secret: sealed, SecretKeyID: kid, Enabled: !row.Disabled,
	})
	if err != nil {
		t.Fatalf("insert webhook endpoint: %v", err)
	}
	return ep, secret
}
