package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/storage"
)

// ScopeStorageSecret is the Scope of the routes a bucket calls: they take no API
// token. The storage's notification secret (shown once when the storage is
// created) authenticates them, as `Authorization: Bearer <secret>`, which is what
// MinIO's webhook target sends with its auth_token; the request then runs in the
// storage's organization exactly as a token's does.
const ScopeStorageSecret admin.Scope = "storage-secret"

// Limits of one notification: MinIO sends one record per request and S3 (through
// a forwarder) a few, so the cap is well below LABELQ_MAX_BODY_BYTES' default.
const (
	DefaultNotifyMaxBodyBytes = 256 << 10
	MaxNotifyRecords          = 1000
)

// NotificationInput is an S3 event notification message: the JSON S3 sends (to
// SNS, SQS, Lambda) and MinIO's webhook target posts, which adds EventName and Key
// (bucket/key, decoded) at the top. Fields S3 and MinIO send that labelq does not
// read (eventTime, userIdentity, ...) are allowed and ignored.
type NotificationInput struct {
	EventName string               `json:"EventName"`
	Key       string               `json:"Key"`
	Records   []NotificationRecord `json:"Records"`
	// Event is "s3:TestEvent" in the message S3 sends when notifications are
	// configured; it has no records.
	Event string `json:"Event"`
}

// NotificationRecord is one event of a notification.
type NotificationRecord struct {
	// EventName is such as s3:ObjectCreated:Put or s3:ObjectRemoved:Delete.
	EventName string               `json:"eventName"`
	S3        NotificationRecordS3 `json:"s3"`
}

// NotificationRecordS3 names the bucket and object of an event.
type NotificationRecordS3 struct {
	Bucket NotificationBucket `json:"bucket"`
	Object NotificationObject `json:"object"`
}

// NotificationBucket is the bucket of an event.
type NotificationBucket struct {
	Name string `json:"name"`
}

// NotificationObject is the object of an event; Key is URL-encoded (form
// encoding: '+' is a space), as S3 and MinIO send it.
type NotificationObject struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	ETag string `json:"eTag"`
}

// NotificationResult says what one notification did: how many of its records
// were object creations and removals of the storage's keys, how many were ignored
// and why, and what registering them changed (the counts of a sync page).
type NotificationResult struct {
	StorageID int64 `json:"storage_id"`
	Records   int   `json:"records"`
	Created   int   `json:"created"`
	Removed   int   `json:"removed"`
	// Ignored records: another bucket, a key outside the storage's prefix, an
	// event that is neither a creation nor a removal, a key that is not
	// URL-encoded.
	OtherBucket   int `json:"other_bucket"`
	OutsidePrefix int `json:"outside_prefix"`
	OtherEvents   int `json:"other_events"`
	BadKeys       int `json:"bad_keys"`
	// What registering the keys did, as in a sync run.
	New       int64         `json:"new"`
	Changed   int64         `json:"changed"`
	Unchanged int64         `json:"unchanged"`
	Filtered  int64         `json:"filtered"`
	Gone      int64         `json:"gone"`
	Skipped   int64         `json:"skipped"`
	Skips     []ingest.Skip `json:"skips"`
}

// maxBodyBytes caps a notification's body.
func (NotificationInput) maxBodyBytes(def int64) int64 { return min(def, DefaultNotifyMaxBodyBytes) }

// notifyRefused is the one answer to a notification that is not authenticated:
// no secret, a wrong one, and a storage that does not exist (or is another
// organization's, disabled or deleted) cannot be told apart.
func notifyRefused() *Problem {
	return problem(http.StatusUnauthorized, "Invalid notification secret",
		"send the storage's notification secret as `Authorization: Bearer <secret>` (MinIO: the webhook target's auth_token); "+
			"it was shown once when the storage was created")
}

// serveStorageSecret answers a route a bucket calls (ScopeStorageSecret):
// authenticate the storage's secret, rate-limit per storage, then run the
// handler in the storage's organization as a token's request is. There is no
// Idempotency-Key: registering keys is idempotent by itself (a key already
// linked with the same ETag and size writes nothing).
func (s *Server) serveStorageSecret(w http.ResponseWriter, r *http.Request, rt Route) {
	ctx := r.Context()
	orgID, storageID, err := s.authenticateStorage(ctx, r)
	if err != nil {
		s.writeError(ctx, w, err)
		return
	}
	if s.rateLimitedBy(ctx, w, "storage:"+strconv.FormatInt(storageID, 10), "this storage's notifications") {
		return
	}
	body, err := s.readBody(r, rt)
	if err != nil {
		s.writeError(ctx, w, err)
		return
	}
	res, err := s.answer(ctx, r, rt, token{OrgID: orgID}, body, idempotency{})
	if err != nil {
		s.writeError(ctx, w, err)
		return
	}
	writeResponse(w, res)
}

// authenticateStorage checks the bearer secret against {storage_id}'s
// notification secret by its SHA-256 (labelq_storage_notify_authenticate) and
// returns the storage's organization.
func (s *Server) authenticateStorage(ctx context.Context, r *http.Request) (orgID, storageID int64, err error) {
	storageID, perr := strconv.ParseInt(r.PathValue("storage_id"), 10, 64)
	scheme, secret, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	if perr != nil || storageID <= 0 || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return 0, 0, notifyRefused()
	}
	sum := sha256.Sum256([]byte(secret))
	orgID, err = db.New(s.Pool).StorageNotifyAuthenticate(ctx, db.StorageNotifyAuthenticateParams{StorageID: storageID, SecretHash: sum[:]})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, notifyRefused()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("authenticate storage notification: %w", err)
	}
	return orgID, storageID, nil
}

// notifyStorage reads the storage of an authenticated notification, in its
// organization; one deleted since is refused like a wrong secret.
func notifyStorage(c *Call) (db.Storage, error) {
	id, err := strconv.ParseInt(c.R.PathValue("storage_id"), 10, 64)
	if err != nil {
		return db.Storage{}, notifyRefused()
	}
	st, err := c.Q.StorageNotifyGet(c.R.Context(), db.StorageNotifyGetParams{ID: id, OrgID: c.OrgID})
	if errors.Is(err, pgx.ErrNoRows) {
		return db.Storage{}, notifyRefused()
	}
	return st, err
}

// checkNotifications answers HEAD: the secret is right. MinIO's webhook target
// sends HEAD when it starts (any answer counts as "up"); an operator can check a
// secret with `curl -I`.
func checkNotifications(c *Call) (int, any, error) {
	st, err := notifyStorage(c)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, NotificationResult{StorageID: st.ID, Skips: []ingest.Skip{}}, nil
}

// receiveNotification registers or retires the keys of one S3 event
// notification through the same code path as a sync page (ingest.Events), in
// one transaction.
func receiveNotification(c *Call) (int, any, error) {
	st, err := notifyStorage(c)
	if err != nil {
		return 0, nil, err
	}
	var in NotificationInput
	if err := json.Unmarshal(c.Body, &in); err != nil {
		return 0, nil, jsonProblem(err)
	}
	if len(in.Records) > MaxNotifyRecords {
		return 0, nil, invalid("Records", fmt.Sprintf("a notification may carry at most %d records; this one has %d", MaxNotifyRecords, len(in.Records)))
	}
	res := NotificationResult{StorageID: st.ID, Records: len(in.Records), Skips: []ingest.Skip{}}
	if len(in.Records) == 0 {
		// S3's s3:TestEvent, or an empty message: nothing to register.
		return http.StatusOK, res, nil
	}
	created, removed := sortEvents(&res, in.Records, notifyBucket(c.S, st), st)
	if len(created) == 0 && len(removed) == 0 {
		return http.StatusOK, res, nil
	}
	plan, err := ingest.Compile(st)
	if err != nil {
		return 0, nil, conflict(fmt.Sprintf("storage %d cannot register keys: %v; fix it with PATCH /v1/storages/%d", st.ID, err, st.ID))
	}
	n, err := ingest.Events(c.R.Context(), c.Q, st, plan, created, removed)
	if err != nil {
		return 0, nil, fmt.Errorf("register notified keys of storage %d: %w", st.ID, err)
	}
	res.New, res.Changed, res.Unchanged, res.Filtered, res.Gone, res.Skipped = n.New, n.Changed, n.Unchanged, n.Filtered, n.Gone, n.Skipped
	if n.Skips != nil {
		res.Skips = n.Skips
	}
	return http.StatusOK, res, nil
}

// notifyBucket is the bucket a storage's events must name: its own, or labelq's
// for a storage in labelq's bucket.
func notifyBucket(s *Server, st db.Storage) string {
	if st.Endpoint == "" && s.Store != nil {
		return s.Store.Bucket
	}
	return st.Bucket
}

// sortEvents splits records into the created objects and removed keys of the
// storage, counting the others into res. A key's last event in the message wins
// (S3 may batch a put and a delete of one key).
func sortEvents(res *NotificationResult, records []NotificationRecord, bucket string, st db.Storage) ([]ingest.Object, []string) {
	type last struct {
		created bool
		obj     ingest.Object
	}
	var order []string
	byKey := map[string]last{}
	for _, rec := range records {
		isCreated := strings.HasPrefix(rec.EventName, "s3:ObjectCreated:") || strings.HasPrefix(rec.EventName, "ObjectCreated:")
		isRemoved := strings.HasPrefix(rec.EventName, "s3:ObjectRemoved:") || strings.HasPrefix(rec.EventName, "ObjectRemoved:")
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		switch {
		case !isCreated && !isRemoved:
			res.OtherEvents++
			continue
		case rec.S3.Bucket.Name != bucket:
			res.OtherBucket++
			continue
		case err != nil || key == "":
			res.BadKeys++
			continue
		case !inStorage(st, key):
			res.OutsidePrefix++
			continue
		}
		if isCreated {
			res.Created++
		} else {
			res.Removed++
		}
		if _, seen := byKey[key]; !seen {
			order = append(order, key)
		}
		byKey[key] = last{created: isCreated, obj: ingest.Object{
			Key: key, Size: rec.S3.Object.Size, ETag: strings.Trim(rec.S3.Object.ETag, `"`),
		}}
	}
	var created []ingest.Object
	var removed []string
	for _, k := range order {
		if l := byKey[k]; l.created {
			created = append(created, l.obj)
		} else {
			removed = append(removed, k)
		}
	}
	return created, removed
}

// inStorage reports whether key is one of the storage's: under its prefix, and
// for a storage in labelq's bucket under its organization's namespace too.
func inStorage(st db.Storage, key string) bool {
	if st.Endpoint == "" && !strings.HasPrefix(key, storage.OwnPrefix(st.OrgID)) {
		return false
	}
	return strings.HasPrefix(key, st.Prefix)
}
