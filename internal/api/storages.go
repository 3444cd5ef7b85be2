package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
)

// StorageInput creates or updates a storage: a bucket and prefix on an S3
// endpoint that a project imports from (kind import) or exports to (kind
// export). On update, absent fields keep their value; kind never changes.
type StorageInput struct {
	Kind *string `json:"kind"`
	Name *string `json:"name"`
	// Endpoint is host:port of an S3 endpoint the operator allows
	// (LABELQ_STORAGE_ALLOWED_ENDPOINTS); "" is labelq's own bucket, where the
	// prefix is relative to the organization's namespace and no credentials are
	// taken.
	Endpoint *string `json:"endpoint"`
	Bucket   *string `json:"bucket"`
	Prefix   *string `json:"prefix"`
	Region   *string `json:"region"`
	UseTLS   *bool   `json:"use_tls"`
	// Credentials are write-only: sealed at rest, never answered. null removes
	// them (anonymous access).
	Credentials   CredentialsInput `json:"credentials"`
	KeyFilter     *string          `json:"key_filter"`
	KeyFilterKind *string          `json:"key_filter_kind"`
	FileType      *string          `json:"file_type"`
	Rules         json.RawMessage  `json:"rules"`
	ArchiveGone   *bool            `json:"archive_gone"`
	// SyncCron schedules syncs like an export schedule; "" removes the schedule.
	SyncCron     *string `json:"sync_cron"`
	SyncTimezone *string `json:"sync_timezone"`
	Enabled      *bool   `json:"enabled"`
}

// CredentialsInput are a storage's S3 keys as a request sends them. Whether the
// field was sent at all, and sent as null, is kept apart from its value.
type CredentialsInput struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`

	given bool
	null  bool
}

// UnmarshalJSON reads the credentials object strictly (an unknown field is an
// error, as everywhere in the API) and notes that it was given. Its errors never
// quote a value.
func (c *CredentialsInput) UnmarshalJSON(b []byte) error {
	c.given = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		c.null = true
		return nil
	}
	var v struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		SessionToken    string `json:"session_token"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		msg := "must be an object {access_key_id, secret_access_key, session_token} or null"
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			msg = "unknown field " + f + "; " + msg
		}
		return invalid("credentials", msg)
	}
	c.AccessKeyID, c.SecretAccessKey, c.SessionToken = v.AccessKeyID, v.SecretAccessKey, v.SessionToken
	return nil
}

func (c CredentialsInput) creds() storage.Credentials {
	return storage.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
}

// NotifySecretPrefix starts every bucket-notification secret, so a leaked one is
// recognisable (secret scanners, logs).
const NotifySecretPrefix = "lqn_"

// newNotifySecret makes a storage's bucket-notification secret and the SHA-256
// that is all labelq keeps of it.
func newNotifySecret() (string, []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := NotifySecretPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	return secret, sum[:]
}

var (
	bucketName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$`)
	regionName = regexp.MustCompile(`^[A-Za-z0-9_-]{0,64}$`)
	keyIDChars = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
)

// storageDefaults is a new storage before the request is applied.
func storageDefaults(orgID, projectID int64) db.Storage {
	return db.Storage{
		OrgID: orgID, ProjectID: projectID, Kind: db.StorageKindImport, UseTls: true,
		KeyFilterKind: ingest.MatchGlob, FileType: db.FileTypeDataset, Rules: json.RawMessage(`[]`),
		SyncTimezone: "UTC", Enabled: true,
	}
}

// mergeStorage applies a create (cur nil) or an update to a storage row and
// checks the result as a whole: an update is judged with the values it keeps.
// Credentials given are sealed into the row.
func (c *Call) mergeStorage(in *StorageInput, cur *db.Storage, projectID int64) (db.Storage, error) {
	var v Validation
	row := storageDefaults(c.OrgID, projectID)
	if cur != nil {
		row = *cur
	}
	create := cur == nil

	if in.Kind != nil {
		k := db.StorageKind(*in.Kind)
		switch {
		case !k.Valid():
			v.Add("kind", "must be import or export")
		case create:
			row.Kind = k
		case k != row.Kind:
			v.Add("kind", "cannot change (this is an %s storage); create a new storage of the other kind", row.Kind)
		}
	}
	if create || in.Name != nil {
		checkName(&v, "name", deref(in.Name), true)
		row.Name = strings.TrimSpace(deref(in.Name))
	}

	// Where: labelq's own bucket or an allowed endpoint.
	oldEndpoint, oldRel := row.Endpoint, relativePrefix(row, c.OrgID)
	if in.Endpoint != nil {
		row.Endpoint = strings.ToLower(strings.TrimSpace(*in.Endpoint))
	}
	own := row.Endpoint == ""
	rel := oldRel
	if in.Prefix != nil {
		rel = *in.Prefix
	}
	if in.Bucket != nil {
		row.Bucket = strings.TrimSpace(*in.Bucket)
	} else if own {
		row.Bucket = "" // moving to labelq's bucket drops the old one
	}
	if in.Region != nil {
		row.Region = strings.TrimSpace(*in.Region)
	}
	if in.UseTLS != nil {
		row.UseTls = *in.UseTLS
	}
	if own {
		c.checkOwnStorage(&v, in, &row, rel)
	} else {
		c.checkRemoteStorage(&v, &row, rel)
	}
	v.Check(regionName.MatchString(row.Region), "region", "must be at most 64 letters, digits, '-' or '_', such as us-east-1")

	// What: which keys, as which files.
	if in.KeyFilter != nil {
		row.KeyFilter = *in.KeyFilter
	}
	if in.KeyFilterKind != nil {
		row.KeyFilterKind = *in.KeyFilterKind
	}
	v.Check(len(row.KeyFilter) <= 1024, "key_filter", "must be at most 1024 bytes")
	v.Check(row.KeyFilterKind == ingest.MatchGlob || row.KeyFilterKind == ingest.MatchRegex, "key_filter_kind", `must be "glob" or "regex"`)
	if in.FileType != nil {
		ft := db.FileType(*in.FileType)
		switch {
		case !ft.Valid():
			v.Add("file_type", "must be one of dataset, requirement, annotation_results")
		case ft == db.FileTypeLlmOutput:
			v.Add("file_type", "llm_output files are made by pre-annotation only; use dataset, requirement or annotation_results")
		default:
			row.FileType = ft
		}
	}
	if len(in.Rules) > 0 {
		raw := bytes.TrimSpace(in.Rules)
		switch {
		case bytes.Equal(raw, []byte("null")):
			row.Rules = json.RawMessage(`[]`)
		case len(raw) == 0 || raw[0] != '[':
			v.Add("rules", "must be an array of rules such as [{\"match\": \"*.json\", \"file_type\": \"annotation_results\"}]")
		case len(raw) > 64<<10:
			v.Add("rules", "must be at most 64 KiB")
		default:
			row.Rules = raw
		}
	}
	if in.ArchiveGone != nil {
		row.ArchiveGone = *in.ArchiveGone
	}
	if in.Enabled != nil {
		row.Enabled = *in.Enabled
	}

	// When: the sync schedule.
	if in.SyncCron != nil {
		if s := strings.TrimSpace(*in.SyncCron); s == "" {
			row.SyncCron = nil
		} else {
			row.SyncCron = &s
		}
	}
	if in.SyncTimezone != nil {
		row.SyncTimezone = *in.SyncTimezone
	}
	checkTimezone(&v, "sync_timezone", row.SyncTimezone)
	if row.SyncCron != nil {
		v.Check(row.Kind == db.StorageKindImport, "sync_cron", "only import storages sync; an export storage takes no schedule")
		v.Check(len(*row.SyncCron) <= 200, "sync_cron", "must be at most 200 characters")
		checkCron(&v, "sync_cron", *row.SyncCron)
	}

	c.checkCredentials(&v, in, &row, oldEndpoint, own)
	if err := v.Err(); err != nil {
		return row, err
	}
	if row.SyncCron != nil && (create || in.SyncCron != nil || in.SyncTimezone != nil || deref(in.Enabled)) {
		if err := c.checkCronInterval("sync_cron", *row.SyncCron, row.SyncTimezone); err != nil {
			return row, err
		}
	}
	// The key filter and rules, exactly as a sync compiles them.
	if _, err := ingest.Compile(row); err != nil {
		var fe *ingest.FieldError
		if errors.As(err, &fe) {
			return row, invalid(fe.Field, fe.Reason)
		}
		return row, invalid("rules", err.Error())
	}
	if in.Credentials.given && !in.Credentials.null {
		if err := c.sealCredentials(&row, in.Credentials.creds()); err != nil {
			return row, err
		}
	}
	return row, nil
}

// relativePrefix is a row's prefix as a request gives it: for labelq's own
// bucket, without the organization's namespace.
func relativePrefix(row db.Storage, orgID int64) string {
	if row.Endpoint == "" {
		return strings.TrimPrefix(row.Prefix, storage.OwnPrefix(orgID))
	}
	return row.Prefix
}

// checkOwnStorage confines a storage in labelq's own bucket to the
// organization's namespace: the prefix is relative to orgs/<org>/ (one that
// already starts with it is taken as is), and cannot climb out of it.
func (c *Call) checkOwnStorage(v *Validation, in *StorageInput, row *db.Storage, rel string) {
	own := storage.OwnPrefix(c.OrgID)
	if row.Bucket != "" {
		v.Add("bucket", "must be empty for labelq's own bucket (endpoint \"\"); set an endpoint to use another bucket")
	}
	full := own + rel
	switch {
	case strings.HasPrefix(rel, own):
		full = rel
	case strings.HasPrefix(rel, "orgs/"):
		v.Add("prefix", "is relative to your organization's namespace %q of labelq's bucket; another organization's namespace is out of reach", own)
		return
	}
	switch {
	case strings.HasPrefix(rel, "/"):
		v.Add("prefix", "is relative to your organization's namespace %q of labelq's bucket; it must not start with '/'", own)
	case rel == ".." || strings.HasPrefix(rel, "../") || strings.Contains(rel, "/../") || strings.HasSuffix(rel, "/..") ||
		strings.Contains(rel, "//") || strings.ContainsFunc(rel, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		v.Add("prefix", "must not contain '..' segments, '//', backslashes or control characters")
	case hidesPathChars(rel):
		v.Add("prefix", "must not contain percent-encoded '.', '/' or '\\' (such as %%2e, %%2f, %%5c)")
	case len(full) > 512:
		v.Add("prefix", "must be at most %d bytes", 512-len(own))
	}
	row.Prefix = full
	if in.Credentials.given && !in.Credentials.null {
		v.Add("credentials", "labelq's own bucket takes no credentials; to use other keys, set the endpoint of the bucket they are for")
	}
	if row.Region != "" && in.Region != nil {
		v.Add("region", "must be empty for labelq's own bucket")
	}
	row.Region = ""
}

// checkRemoteStorage checks a storage on another endpoint: one the operator
// allows, never a private or loopback address a tenant typed in, never labelq's
// own bucket in disguise.
func (c *Call) checkRemoteStorage(v *Validation, row *db.Storage, rel string) {
	row.Prefix = rel
	v.Check(len(rel) <= 512, "prefix", "must be at most 512 bytes")
	v.Check(!strings.ContainsFunc(rel, func(r rune) bool { return r < 0x20 || r == 0x7f }), "prefix", "must not contain control characters")
	if msg := c.endpointRefusal(row.Endpoint); msg != "" {
		v.Add("endpoint", "%s", msg)
	}
	switch {
	case row.Bucket == "":
		v.Add("bucket", "is required with an endpoint (the bucket's name on that server)")
	case !bucketName.MatchString(row.Bucket):
		v.Add("bucket", "%q is not a bucket name (3 to 63 letters, digits, '.', '-' or '_')", row.Bucket)
	case c.S.Store != nil && c.S.Store.Client != nil && strings.EqualFold(row.Endpoint, c.S.Store.Client.EndpointURL().Host) && row.Bucket == c.S.Store.Bucket:
		v.Add("endpoint", "with bucket %q this is labelq's own bucket: leave endpoint and bucket empty to use it, with a prefix inside your organization's namespace", row.Bucket)
	}
}

// endpointRefusal says why an endpoint may not be used ("" when it may).
func (c *Call) endpointRefusal(endpoint string) string {
	if strings.Contains(endpoint, "://") || strings.Contains(endpoint, "/") {
		return fmt.Sprintf("%q must be host:port without a scheme or path, such as s3.eu-west-1.amazonaws.com:443 (use_tls says whether it is HTTPS)", endpoint)
	}
	var allow *storage.Allowlist
	if c.S.Storages != nil {
		allow = c.S.Storages.Allow
	}
	wildcard, err := allow.Check(endpoint)
	host, _, _ := net.SplitHostPort(endpoint)
	ip, ipErr := netip.ParseAddr(strings.Trim(host, "[]"))
	internal := ipErr == nil && isInternal(ip.Unmap())
	switch {
	case err != nil && internal:
		return fmt.Sprintf("%q is a private, loopback or link-local address, which a storage may only use when the operator lists it in LABELQ_STORAGE_ALLOWED_ENDPOINTS", endpoint)
	case err != nil:
		return err.Error()
	case wildcard && ipErr == nil:
		// A wildcard allows names; an address is allowed only by name.
		return fmt.Sprintf("%q is an IP address; the operator allows it only if LABELQ_STORAGE_ALLOWED_ENDPOINTS lists it exactly", endpoint)
	}
	return ""
}

func isInternal(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}

// checkCredentials checks the credentials a request gives and what happens to
// those stored: labelq's own bucket drops them, and stored credentials never
// follow a storage to another endpoint (they would be offered to a server they
// were not made for); the request must send them again, or null.
func (c *Call) checkCredentials(v *Validation, in *StorageInput, row *db.Storage, oldEndpoint string, own bool) {
	cr := in.Credentials
	switch {
	case own || (cr.given && cr.null):
		row.Credentials, row.CredentialsKeyID, row.AccessKeyHint = nil, nil, ""
		return
	case !cr.given:
		if row.Credentials != nil && row.Endpoint != oldEndpoint {
			v.Add("credentials", "send the credentials again (or null) when changing the endpoint: stored credentials are never used with another endpoint")
		}
		return
	}
	v.Check(keyIDChars.MatchString(cr.AccessKeyID), "credentials.access_key_id", "is required: 1 to 128 printable characters without spaces")
	v.Check(cr.SecretAccessKey != "" && len(cr.SecretAccessKey) <= 256 && !strings.ContainsFunc(cr.SecretAccessKey, func(r rune) bool { return r < 0x20 || r == 0x7f }),
		"credentials.secret_access_key", "is required: 1 to 256 characters without control characters")
	v.Check(len(cr.SessionToken) <= 4096 && !strings.ContainsFunc(cr.SessionToken, func(r rune) bool { return r < 0x20 || r == 0x7f }),
		"credentials.session_token", "must be at most 4096 characters without control characters")
}

// sealCredentials encrypts creds into the row (AES-GCM under LABELQ_SECRET_KEY).
func (c *Call) sealCredentials(row *db.Storage, creds storage.Credentials) error {
	var (
		sealed []byte
		kid    string
		err    = storage.ErrNoKeyring
	)
	if c.S.Storages != nil {
		sealed, kid, err = c.S.Storages.SealCredentials(c.OrgID, creds)
	}
	if errors.Is(err, storage.ErrNoKeyring) {
		return invalid("credentials", "this deployment cannot store credentials yet: the operator must set LABELQ_SECRET_KEY (see the README); "+
			"until then only storages without credentials (labelq's own bucket, or public buckets) can be made")
	}
	if err != nil {
		return fmt.Errorf("seal storage credentials: %w", err)
	}
	row.Credentials, row.CredentialsKeyID, row.AccessKeyHint = sealed, &kid, creds.Hint()
	return nil
}

// storageOut maps a row to its answer, with the notification URL absolute.
func (c *Call) storageOut(r db.Storage) Storage {
	s := storageFromRow(r)
	if s.NotificationURL != nil {
		u := c.S.publicURL(*s.NotificationURL)
		s.NotificationURL = &u
	}
	return s
}

func (s *Server) publicURL(path string) string {
	return strings.TrimRight(s.PublicURL, "/") + path
}

func notificationPath(id int64) string { return fmt.Sprintf("/v1/storages/%d/notifications", id) }

func storageEvent(r db.Storage) map[string]any {
	return map[string]any{
		"project_id": r.ProjectID, "kind": r.Kind, "name": r.Name, "endpoint": r.Endpoint, "bucket": r.Bucket,
		"prefix": r.Prefix, "has_credentials": r.Credentials != nil, "access_key_hint": r.AccessKeyHint,
	}
}

func createStorage(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	var in StorageInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	row, err := c.mergeStorage(&in, nil, pid)
	if err != nil {
		return 0, nil, err
	}
	var secret string
	if row.Kind == db.StorageKindImport {
		secret, row.NotifySecretHash = newNotifySecret()
	}
	ctx := c.R.Context()
	st, err := c.Q.StorageCreate(ctx, db.StorageCreateParams{
		OrgID: c.OrgID, ProjectID: pid, Kind: row.Kind, Name: row.Name, Endpoint: row.Endpoint, Bucket: row.Bucket,
		Prefix: row.Prefix, Region: row.Region, UseTls: row.UseTls, AccessKeyHint: row.AccessKeyHint,
		Credentials: row.Credentials, CredentialsKeyID: row.CredentialsKeyID, KeyFilter: row.KeyFilter,
		KeyFilterKind: row.KeyFilterKind, FileType: row.FileType, Rules: row.Rules, ArchiveGone: row.ArchiveGone,
		SyncCron: row.SyncCron, SyncTimezone: row.SyncTimezone, NotifySecretHash: row.NotifySecretHash, Enabled: row.Enabled,
	})
	if err != nil {
		return 0, nil, err
	}
	if err := event(ctx, c, db.EntityTypeStorage, st.ID, "storage_created", storageEvent(st)); err != nil {
		return 0, nil, err
	}
	out := c.storageOut(st)
	if secret != "" {
		out.NotifySecret = &secret
	}
	return http.StatusCreated, out, nil
}

func getStorage(c *Call) (int, any, error) {
	return getByID(c, "storage_id", "storage", func(ctx context.Context, id int64) (any, error) {
		st, err := c.Q.StorageGet(ctx, db.StorageGetParams{ID: id, OrgID: c.OrgID})
		return c.storageOut(st), err
	})
}

func listStorages(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	ss, err := c.Q.StorageListByProject(c.R.Context(), db.StorageListByProjectParams{ProjectID: pid, OrgID: c.OrgID, AfterID: after, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(ss, c.storageOut), nil
}

func updateStorage(c *Call) (int, any, error) {
	id, err := pathID(c.R, "storage_id")
	if err != nil {
		return 0, nil, err
	}
	var in StorageInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	cur, err := c.Q.StorageGetForUpdate(ctx, db.StorageGetForUpdateParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "storage")
	}
	row, err := c.mergeStorage(&in, &cur, cur.ProjectID)
	if err != nil {
		return 0, nil, err
	}
	st, err := c.Q.StorageUpdate(ctx, db.StorageUpdateParams{
		ID: id, OrgID: c.OrgID, Name: row.Name, Endpoint: row.Endpoint, Bucket: row.Bucket, Prefix: row.Prefix,
		Region: row.Region, UseTls: row.UseTls, AccessKeyHint: row.AccessKeyHint, Credentials: row.Credentials,
		CredentialsKeyID: row.CredentialsKeyID, KeyFilter: row.KeyFilter, KeyFilterKind: row.KeyFilterKind,
		FileType: row.FileType, Rules: row.Rules, ArchiveGone: row.ArchiveGone, SyncCron: row.SyncCron,
		SyncTimezone: row.SyncTimezone, Enabled: row.Enabled,
	})
	if err != nil {
		return 0, nil, orNotFound(err, "storage")
	}
	meta := storageEvent(st)
	meta["credentials_replaced"] = in.Credentials.given
	if err := event(ctx, c, db.EntityTypeStorage, st.ID, "storage_updated", meta); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c.storageOut(st), nil
}

func deleteStorage(c *Call) (int, any, error) {
	id, err := pathID(c.R, "storage_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	// The UPDATE waits for a sync request holding the row (StorageGetForShare),
	// so the run that request made is committed, and cancelled below.
	st, err := c.Q.StorageDelete(ctx, db.StorageDeleteParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "storage")
	}
	if st.Kind == db.StorageKindExport {
		// A schedule's next export would fail; sending it to labelq's bucket instead
		// would put the archive where its owner did not ask. The PM decides.
		ids, err := c.Q.ExportScheduleIDsByStorage(ctx, db.ExportScheduleIDsByStorageParams{StorageID: &st.ID, OrgID: c.OrgID})
		if err != nil {
			return 0, nil, err
		}
		if len(ids) > 0 {
			return 0, nil, conflict(fmt.Sprintf("export schedules %v send their exports to storage %d: point them elsewhere (PATCH /v1/export-schedules/{id} with storage_id, 0 for labelq's bucket) or delete them first", ids, st.ID))
		}
	}
	if err := c.Q.ExportLogSetLockTimeout(ctx, cancelLockTimeout.String()); err != nil {
		return 0, nil, err
	}
	runs, err := c.Q.SyncRunCancelLive(ctx, db.SyncRunCancelLiveParams{StorageID: st.ID, OrgID: c.OrgID})
	if isLockTimeout(err) {
		return 0, nil, problem(http.StatusServiceUnavailable, "Storage busy",
			fmt.Sprintf("storage %d's sync run is committing a page; retry the delete in a few seconds", id))
	}
	if err != nil {
		return 0, nil, err
	}
	meta := map[string]any{"project_id": st.ProjectID}
	var cancelled []int64
	for _, r := range runs {
		cancelled = append(cancelled, r.ID)
		if err := event(ctx, c, db.EntityTypeSyncRun, r.ID, "cancel_requested", map[string]any{"storage_id": st.ID, "reason": "storage deleted"}); err != nil {
			return 0, nil, err
		}
	}
	meta["cancelled_runs"] = cancelled
	if err := event(ctx, c, db.EntityTypeStorage, st.ID, "storage_deleted", meta); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"id": st.ID, "deleted": true, "cancelled_runs": cancelled}, nil
}

// NotifySecret is a storage's new bucket-notification secret, shown once.
type NotifySecret struct {
	StorageID       int64  `json:"storage_id"`
	NotifySecret    string `json:"notify_secret"`
	NotificationURL string `json:"notification_url"`
}

// forReplay is what an Idempotency-Key keeps of the answer: not the secret.
func (n NotifySecret) forReplay() any {
	return map[string]any{"storage_id": n.StorageID, "notify_secret": nil, "notification_url": n.NotificationURL,
		"detail": "the secret is shown once; rotate it again with POST /v1/storages/{storage_id}/notify-secret"}
}

func rotateNotifySecret(c *Call) (int, any, error) {
	id, err := pathID(c.R, "storage_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	cur, err := c.Q.StorageGet(ctx, db.StorageGetParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "storage")
	}
	if cur.Kind != db.StorageKindImport {
		return 0, nil, conflict(fmt.Sprintf("storage %d is an export storage; only import storages take bucket notifications", id))
	}
	secret, hash := newNotifySecret()
	st, err := c.Q.StorageSetNotifySecret(ctx, db.StorageSetNotifySecretParams{ID: id, OrgID: c.OrgID, NotifySecretHash: hash})
	if err != nil {
		return 0, nil, orNotFound(err, "storage")
	}
	if err := event(ctx, c, db.EntityTypeStorage, st.ID, "notify_secret_rotated", nil); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, NotifySecret{StorageID: st.ID, NotifySecret: secret, NotificationURL: c.S.publicURL(notificationPath(st.ID))}, nil
}

// SyncStarted answers a sync request: the run to poll, and whether the request
// joined a run already live.
type SyncStarted struct {
	ID        int64  `json:"id"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	Joined    bool   `json:"joined"`
	TaskID    string `json:"task_id"`
	StatusURL string `json:"status_url"`
	TaskURL   string `json:"task_url"`
}

func syncStorage(c *Call) (int, any, error) {
	id, err := pathID(c.R, "storage_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	st, err := c.Q.StorageGetForShare(ctx, db.StorageGetForShareParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "storage")
	}
	switch {
	case st.Kind != db.StorageKindImport:
		return 0, nil, conflict(fmt.Sprintf("storage %d is an export storage; only import storages sync", id))
	case !st.Enabled:
		return 0, nil, conflict(fmt.Sprintf("storage %d is disabled; enable it with PATCH /v1/storages/%d {\"enabled\": true}", id, id))
	}
	run, joined, err := ingest.StartRun(ctx, c.Q, st, ingest.TriggerAPI, nil)
	if err != nil {
		return 0, nil, err
	}
	if !joined {
		if err := event(ctx, c, db.EntityTypeSyncRun, run.ID, "sync_requested", map[string]any{"storage_id": st.ID}); err != nil {
			return 0, nil, err
		}
	}
	taskID := tasks.StorageSync{RunID: run.ID}.TaskID()
	return http.StatusAccepted, SyncStarted{
		ID: run.ID, Kind: "sync_run", Status: c.S.syncRun(run).Status, Joined: joined, TaskID: taskID,
		StatusURL: fmt.Sprintf("/v1/sync-runs/%d", run.ID), TaskURL: "/v1/tasks/" + taskID,
	}, nil
}

func listSyncRuns(c *Call) (int, any, error) {
	id, err := pathID(c.R, "storage_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	if _, err := c.Q.StorageGet(ctx, db.StorageGetParams{ID: id, OrgID: c.OrgID}); err != nil {
		return 0, nil, orNotFound(err, "storage")
	}
	_, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	var before *int64
	if s := c.R.URL.Query().Get("before"); s != "" {
		var b int64
		if _, err := fmt.Sscan(s, &b); err != nil || b <= 0 {
			return 0, nil, invalid("before", "must be a positive id")
		}
		before = &b
	}
	rs, err := c.Q.SyncRunListByStorage(ctx, db.SyncRunListByStorageParams{StorageID: id, OrgID: c.OrgID, BeforeID: before, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(rs, c.S.syncRun), nil
}

func getSyncRun(c *Call) (int, any, error) {
	return getByID(c, "run_id", "sync run", func(ctx context.Context, id int64) (any, error) {
		r, err := c.Q.SyncRunGet(ctx, db.SyncRunGetParams{ID: id, OrgID: c.OrgID})
		return c.S.syncRun(r), err
	})
}

// cancelSyncRun cancels a pending run at once and asks a running one to stop
// after the page it is committing; an ended run is a conflict.
func cancelSyncRun(c *Call) (int, any, error) {
	id, err := pathID(c.R, "run_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	r, err := cancelRow(c, "sync run", id, "Sync run busy", "is committing a page",
		func() (db.SyncRun, error) {
			return c.Q.SyncRunRequestCancel(ctx, db.SyncRunRequestCancelParams{ID: id, OrgID: c.OrgID})
		},
		func() (string, error) {
			cur, err := c.Q.SyncRunGet(ctx, db.SyncRunGetParams{ID: id, OrgID: c.OrgID})
			return string(cur.Status), err
		})
	if err != nil {
		return 0, nil, err
	}
	typ := "cancel_requested"
	if r.Status == db.SyncRunStatusCancelled {
		typ = "cancelled"
	}
	if err := event(ctx, c, db.EntityTypeSyncRun, r.ID, typ, map[string]any{"storage_id": r.StorageID}); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, c.S.syncRun(r), nil
}
