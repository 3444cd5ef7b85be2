package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
)

// UnusableError says a storage's row was read and the storage cannot be used as
// it is: deleted, its endpoint no longer one the operator allows, its credentials
// not opening under LABELQ_SECRET_KEY, an own storage outside its organization's
// namespace. Retrying does not help until someone changes the storage or the
// operator's settings, so the work at hand is decided with this as its reason.
// The text names the storage by id, never its credentials.
type UnusableError struct {
	StorageID int64
	Err       error
}

func (e *UnusableError) Error() string { return e.Err.Error() }
func (e *UnusableError) Unwrap() error { return e.Err }

// Resolve is For with its errors sorted: an *UnusableError when the storage
// cannot be used as it is configured, and any other error (its row could not be
// read: the database) is transient. A nil or zero id is labelq's own bucket and
// never fails.
func (r *Resolver) Resolve(ctx context.Context, id *int64) (*Source, error) {
	src, err := r.For(ctx, id)
	if err == nil {
		return src, nil
	}
	if errors.Is(err, ErrStorageGone) {
		return nil, &UnusableError{StorageID: *id, Err: err}
	}
	// For does not say whether the row could not be read or could not be used.
	// Reading it again tells them apart; this costs a query on failures only.
	row, lerr := r.Lookup(ctx, *id)
	switch {
	case errors.Is(lerr, pgx.ErrNoRows):
		return nil, &UnusableError{StorageID: *id, Err: fmt.Errorf("storage %d: %w", *id, ErrStorageGone)}
	case lerr != nil:
		return nil, err
	}
	if _, berr := r.Build(row); berr != nil {
		return nil, &UnusableError{StorageID: *id, Err: berr}
	}
	// The row reads and builds now: the first failure was the database's, and
	// the retry finds the storage.
	return nil, err
}

// AccessDenied reports whether err is S3 refusing the request's credentials or
// permissions (403: AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch).
func AccessDenied(err error) bool {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	switch er.Code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
		return true
	}
	return er.StatusCode == http.StatusForbidden
}

// NoSuchBucket reports whether err says the bucket does not exist.
func NoSuchBucket(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && er.Code == "NoSuchBucket"
}

// Refusal is, for a tenant's storage (not labelq's own bucket), a reason a
// person can act on when S3 refused to let labelq read or write key (access
// denied, no such bucket); "" when err is not such a refusal or s is labelq's
// own bucket, whose errors are the operator's business. The reason names the
// storage, bucket and access key hint, never the endpoint's address or the
// credentials. op is what was being done: "read", "write", "delete".
func (s *Source) Refusal(op, key string, err error) string {
	if s == nil || s.StorageID == 0 || s.Own {
		return ""
	}
	switch {
	case AccessDenied(err):
		return fmt.Sprintf("access denied to %s %q in bucket %q of storage %d with access key %s: check that the key may s3:%s there, or update the storage's credentials",
			op, key, s.Bucket, s.StorageID, s.Hint, s3Action(op))
	case NoSuchBucket(err):
		return fmt.Sprintf("bucket %q of storage %d does not exist at its endpoint: fix the storage's bucket", s.Bucket, s.StorageID)
	}
	return ""
}

func s3Action(op string) string {
	switch op {
	case "write":
		return "PutObject"
	case "delete":
		return "DeleteObject"
	}
	return "GetObject"
}

// OwnOnly is a resolver that knows labelq's bucket alone, for a worker wired
// without one: a nil or zero storage id resolves to own, and any other id fails
// as an outage (retried), not as an unusable storage, since the storage may be
// fine and the wiring is what is missing.
func OwnOnly(own *Store) *Resolver {
	return &Resolver{Own: own, Lookup: func(context.Context, int64) (db.Storage, error) {
		return db.Storage{}, errors.New("this worker has no storage resolver (its Deps.Storages is nil)")
	}}
}
