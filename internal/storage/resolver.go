package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/db"
)

// Source is where one storage's objects are: a client and bucket, the prefix its
// keys live under, and the access key hint for error messages.
type Source struct {
	*Store
	StorageID int64
	OrgID     int64
	Prefix    string
	// Own is true for a storage in labelq's own bucket.
	Own bool
	// Endpoint is the host:port, and Hint the access key hint, for messages.
	Endpoint string
	Hint     string
}

// Resolver turns a version's or an export's storage id into the client that
// reaches its bytes: one client per storage, built once and cached (rebuilt when
// the storage row changes, checked at most every TTL). Storage id 0 (NULL) is
// labelq's own bucket. Every reader of a version's bytes (validation,
// pre-annotation, export, sync) goes through here.
type Resolver struct {
	Own   *Store
	Keys  *Keyring
	Allow *Allowlist
	// Lookup reads a storage row by id, with no tenant filter: the workers' pool.
	Lookup func(ctx context.Context, id int64) (db.Storage, error)
	// TTL bounds how long a cached client is used before its row is read again
	// (credentials rotated through the API take effect within it); 0 is 30 s.
	TTL time.Duration

	mu    sync.Mutex
	cache map[int64]cached
}

type cached struct {
	src     *Source
	updated time.Time
	checked time.Time
}

// NewResolver builds a resolver reading storages through q (the workers' queries).
func NewResolver(own *Store, keys *Keyring, allow *Allowlist, q *db.Queries) *Resolver {
	return &Resolver{Own: own, Keys: keys, Allow: allow, Lookup: q.StorageGetByID}
}

// ErrStorageGone says a version's storage was deleted.
var ErrStorageGone = errors.New("the storage that holds this object was deleted")

// For returns the source of storage id (nil or 0: labelq's own bucket).
func (r *Resolver) For(ctx context.Context, id *int64) (*Source, error) {
	if id == nil || *id == 0 {
		return &Source{Store: r.Own, Own: true}, nil
	}
	now := time.Now()
	ttl := r.TTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	r.mu.Lock()
	c, ok := r.cache[*id]
	r.mu.Unlock()
	if ok && now.Sub(c.checked) < ttl {
		return c.src, nil
	}
	row, err := r.Lookup(ctx, *id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("storage %d: %w", *id, ErrStorageGone)
	}
	if err != nil {
		return nil, fmt.Errorf("read storage %d: %w", *id, err)
	}
	if ok && row.UpdatedAt.Equal(c.updated) {
		r.remember(*id, cached{src: c.src, updated: c.updated, checked: now})
		return c.src, nil
	}
	src, err := r.Build(row)
	if err != nil {
		return nil, err
	}
	r.remember(*id, cached{src: src, updated: row.UpdatedAt, checked: now})
	return src, nil
}

func (r *Resolver) remember(id int64, c cached) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		r.cache = map[int64]cached{}
	}
	r.cache[id] = c
}

// OwnPrefix is where an organization's objects live in labelq's own bucket; an
// own storage's prefix always starts with it.
func OwnPrefix(orgID int64) string { return "orgs/" + strconv.FormatInt(orgID, 10) + "/" }

// Build makes the source of a storage row without caching it (the API uses it
// to check a storage before saving it). A row whose endpoint is no longer allowed
// is refused here, so an operator narrowing LABELQ_STORAGE_ALLOWED_ENDPOINTS
// cuts off existing storages too.
func (r *Resolver) Build(row db.Storage) (*Source, error) {
	if row.DeletedAt != nil {
		return nil, fmt.Errorf("storage %d: %w", row.ID, ErrStorageGone)
	}
	if row.Endpoint == "" {
		prefix := row.Prefix
		own := OwnPrefix(row.OrgID)
		if len(prefix) < len(own) || prefix[:len(own)] != own {
			return nil, fmt.Errorf("storage %d: a storage in labelq's bucket must stay under %s", row.ID, own)
		}
		return &Source{Store: r.Own, StorageID: row.ID, OrgID: row.OrgID, Prefix: prefix, Own: true}, nil
	}
	creds, err := r.Credentials(row)
	if err != nil {
		return nil, err
	}
	st, err := NewRemote(Remote{Endpoint: row.Endpoint, Bucket: row.Bucket, Region: row.Region, UseTLS: row.UseTls, Creds: creds}, r.Allow)
	if err != nil {
		return nil, fmt.Errorf("storage %d: %w", row.ID, err)
	}
	return &Source{Store: st, StorageID: row.ID, OrgID: row.OrgID, Prefix: row.Prefix, Endpoint: row.Endpoint, Hint: row.AccessKeyHint}, nil
}

// Credentials opens a row's sealed credentials (none: anonymous access).
func (r *Resolver) Credentials(row db.Storage) (Credentials, error) {
	var c Credentials
	if row.Credentials == nil || row.CredentialsKeyID == nil {
		return c, nil
	}
	plain, err := r.Keys.Open(row.Credentials, *row.CredentialsKeyID, CredentialsAAD(row.OrgID))
	if err != nil {
		return c, fmt.Errorf("storage %d: %w", row.ID, err)
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		return c, fmt.Errorf("storage %d: sealed credentials are not JSON", row.ID)
	}
	return c, nil
}

// SealCredentials seals c for a storage of orgID: the sealed bytes and key id
// to store in storages.credentials and credentials_key_id.
func (r *Resolver) SealCredentials(orgID int64, c Credentials) ([]byte, string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, "", err
	}
	return r.Keys.Seal(b, CredentialsAAD(orgID))
}

// CredentialsAAD binds sealed credentials to their organization.
func CredentialsAAD(orgID int64) []byte {
	return []byte("labelq storage credentials org " + strconv.FormatInt(orgID, 10))
}
