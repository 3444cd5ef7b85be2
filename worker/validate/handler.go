package validate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/verify"
	"github.com/labelq/labelq/internal/webhook"
)

// Defaults for the zero values of Options.
const (
	DefaultMissingAttempts = 5
	DefaultMissingDelay    = 2 * time.Second
	DefaultMissingMaxDelay = time.Minute
	DefaultBaseTimeout     = time.Minute
	DefaultMinThroughput   = 20_000_000 // bytes per second
)

// ErrVersionNotFound ends a task for good (wrapped with asynq.SkipRetry): the
// version it names does not exist.
var ErrVersionNotFound = errors.New("file version not found")

// Options tune the handler. The zero value is ready to use: every zero field means
// its default.
type Options struct {
	// MissingAttempts is how many times a version whose object is not in the bucket
	// is looked at before it is marked missing. Default 5: a version can be
	// registered while its bytes are still on their way (a presigned PUT or a
	// multipart upload still completing), so "not there" is only final after a few
	// looks.
	MissingAttempts int
	// MissingDelay is the wait before the second look; it doubles (with jitter, see
	// queue.Backoff) after each further miss, up to MissingMaxDelay. Defaults 2 s and
	// 1 min.
	MissingDelay    time.Duration
	MissingMaxDelay time.Duration

	// BaseTimeout and MinThroughput bound each pass over an object: a pass that takes
	// longer than BaseTimeout + size/MinThroughput is cut off and the task retried.
	// A fixed timeout would either kill a healthy 50 GiB upload or let a stalled 1 KiB
	// read hang for hours. Defaults 1 min and 20 MB/s.
	BaseTimeout   time.Duration
	MinThroughput int64

	// Verify is the base of the options handed to internal/verify; a project's
	// allowed_content_types overrides AllowList per file type.
	Verify verify.Options
}

func (o Options) withDefaults() Options {
	if o.MissingAttempts <= 0 {
		o.MissingAttempts = DefaultMissingAttempts
	}
	if o.MissingDelay <= 0 {
		o.MissingDelay = DefaultMissingDelay
	}
	if o.MissingMaxDelay <= 0 {
		o.MissingMaxDelay = DefaultMissingMaxDelay
	}
	o.MissingMaxDelay = max(o.MissingMaxDelay, o.MissingDelay)
	if o.BaseTimeout <= 0 {
		o.BaseTimeout = DefaultBaseTimeout
	}
	if o.MinThroughput <= 0 {
		o.MinThroughput = DefaultMinThroughput
	}
	return o
}

// Deps are what the handler needs; Log, Metrics and Now may be nil.
type Deps struct {
	Pool *pgxpool.Pool
	// Store is labelq's own bucket, where a version with no storage_id is.
	Store *storage.Store
	// Storages reaches the storage a version's storage_id names (and Store for
	// none). Nil: only Store is known, and a version of a storage is retried
	// until the worker is wired with a resolver.
	Storages *storage.Resolver
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	Now      func() time.Time
	Options  Options
}

// Handler processes file:validate tasks.
type Handler struct {
	pool     *pgxpool.Pool
	storages *storage.Resolver
	log      *slog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	opts     Options
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler {
	h := &Handler{pool: d.Pool, storages: d.Storages, log: d.Log, metrics: d.Metrics, now: d.Now, opts: d.Options.withDefaults()}
	if h.storages == nil {
		h.storages = storage.OwnOnly(d.Store)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// Work validates one version. It returns nil when the version was decided valid
// (or had already been decided), a queue.Permanent error when it was decided
// corrupt, rejected or missing or the version does not exist, a queue.RetryAfter
// error while the object may still be arriving, and any other error for transient
// failures, leaving the version pending. Mount it with tasks.Register.
func (h *Handler) Work(ctx context.Context, args tasks.Validate) error {
	log := logging.From(ctx, h.log).With(slog.Int64("version_id", args.VersionID))
	row, err := db.New(h.pool).FileVersionGetForValidation(ctx, args.VersionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return queue.Permanent(fmt.Errorf("version %d: %w", args.VersionID, ErrVersionNotFound))
	}
	if err != nil {
		return fmt.Errorf("read version %d: %w", args.VersionID, err)
	}
	if st := row.FileVersion.ValidationStatus; st != db.ValidationStatusPending {
		// A redelivery, or a retry of a run that committed and then lost its
		// acknowledgement: the decision is made and must not be made twice.
		log.InfoContext(ctx, "version already validated; nothing to do", slog.String("status", string(st)))
		return nil
	}
	log = log.With(slog.Int64("org_id", row.FileVersion.OrgID), slog.Int64("project_id", row.FileVersion.ProjectID),
		slog.Int64("file_id", row.FileVersion.FileID))
	return h.validate(ctx, log, row)
}

// codeOutsideNamespace: a key in labelq's bucket outside the version's
// organization's namespace.
const codeOutsideNamespace verify.Code = "key_outside_namespace"

// source finds the bucket that holds v's bytes. A storage that cannot be used as
// it is (deleted, its endpoint no longer allowed, its credentials not opening)
// is the tenant's or operator's to fix, not a passing outage: a deleted one
// decides the version missing at once, the others get the looks a missing
// object gets (someone may be fixing the storage right now) and then decide it
// missing with the storage's reason. Only a failure to read the storage's row
// (the database) is retried like any outage. done is true when err is the
// task's result.
func (h *Handler) source(ctx context.Context, log *slog.Logger, row db.FileVersionGetForValidationRow) (src *storage.Source, done bool, err error) {
	v := row.FileVersion
	src, err = h.storages.Resolve(ctx, v.StorageID)
	var ue *storage.UnusableError
	switch {
	case errors.As(err, &ue) && errors.Is(err, storage.ErrStorageGone):
		msg := fmt.Sprintf("the object %q cannot be read: storage %d, which held it, was deleted; register the file again from a storage that has it",
			v.StoragePath, ue.StorageID)
		return nil, true, h.decide(ctx, log, row, outcome{missing: msg})
	case errors.As(err, &ue):
		return nil, true, h.missing(ctx, log, row, err, fmt.Sprintf("the object %q cannot be read: %s; fix the storage, then validate the version again",
			v.StoragePath, ue.Error()))
	case err != nil:
		return nil, true, fmt.Errorf("find the storage of version %d: %w", v.ID, err)
	}
	// A version of an own storage (in labelq's bucket) reads only its
	// organization's namespace, whatever path wrote its row (sync, a
	// notification, batch registration). A version with no storage is confined
	// to orgs/<org>/ where it is registered (the API's checkStorageKey), as
	// before storages existed. A storage in another bucket is the tenant's
	// alone: any key in it is theirs, and none is refused for its shape.
	if v.StorageID != nil && src.Own && !strings.HasPrefix(v.StoragePath, storage.OwnPrefix(v.OrgID)) {
		rep := verify.Report{Verdict: verify.Rejected, Findings: []verify.Finding{{
			Verdict: verify.Rejected, Code: codeOutsideNamespace,
			Message: fmt.Sprintf("key %q is outside the organization's namespace %s of labelq's bucket", v.StoragePath, storage.OwnPrefix(v.OrgID)),
		}}}
		return nil, true, h.decide(ctx, log, row, outcome{report: rep})
	}
	return src, false, nil
}

// validate reads the object and decides. Nothing is written before the decision
// except the count of attempts that found no object.
func (h *Handler) validate(ctx context.Context, log *slog.Logger, row db.FileVersionGetForValidationRow) error {
	v := row.FileVersion
	opts, err := h.verifyOptions(row)
	if err != nil {
		// A project setting, not this version's fault: retry (with backoff) until an
		// admin fixes it; the version stays pending meanwhile.
		return fmt.Errorf("project allow-list unusable; version left pending: %w", err)
	}
	src, done, err := h.source(ctx, log, row)
	if done {
		return err
	}

	// One GET: its response headers are the object's metadata (size, ETag and, with
	// x-amz-checksum-mode, the stored checksums), and its body is what is measured.
	// A separate StatObject would cost storage a second request per version, and
	// would describe an object that could be replaced before the GET.
	octx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(h.opts.BaseTimeout, func() {
		cancel(fmt.Errorf("%w: no response after %s", errSlowRead, h.opts.BaseTimeout))
	})
	defer timer.Stop()
	body, info, err := h.get(octx, src, v.StoragePath)
	if err != nil {
		if objectMissing(err) {
			return h.missing(ctx, log, row, err, "")
		}
		// A tenant's bucket refusing labelq (wrong or narrowed credentials, a
		// bucket gone) is theirs to fix: looked at again like a missing object,
		// then decided with the reason.
		if reason := src.Refusal("read", v.StoragePath, err); reason != "" {
			return h.missing(ctx, log, row, err, reason+"; then validate the version again")
		}
		return fmt.Errorf("get object %q of version %d: %w", v.StoragePath, v.ID, withCause(octx, err))
	}
	defer func() { _ = body.Close() }()
	refs := references(row, info)
	size := info.Size
	if pre := verify.Precheck(refs, opts); pre.Verdict != verify.Valid {
		// Decided by the metadata alone (a truncated upload, an empty object):
		// reading the bytes would only confirm it.
		_ = body.Close()
		return h.decide(ctx, log, row, outcome{report: pre, size: &size})
	}

	// Results of a project with a label config are checked against it from the
	// same pass (results.go).
	res, err := h.resultsFor(ctx, row, info.Size)
	if err != nil {
		return err
	}
	var in io.Reader = body
	if res != nil {
		in = res.tee(body)
	}
	budget := h.passBudget(info.Size)
	timer.Reset(budget)
	m, rep, err := h.read(octx, timer, budget, in, src, v.StoragePath, info, refs, opts)
	switch {
	case errors.Is(err, verify.ErrTooLarge):
		rep = verify.Report{Verdict: verify.Rejected, Findings: []verify.Finding{{
			Verdict: verify.Rejected, Code: verify.CodeTooLarge, Message: err.Error(),
		}}}
		return h.decide(ctx, log, row, outcome{report: rep, size: &size})
	case err != nil && objectMissing(err):
		// Deleted between the GET and the ZIP inspection's reads.
		return h.missing(ctx, log, row, err, "")
	case err != nil:
		return fmt.Errorf("read object %q of version %d: %w", v.StoragePath, v.ID, err)
	}
	_ = body.Close()
	if res != nil && rep.Verdict == verify.Valid {
		if rep, err = h.check(ctx, log, row, res, rep); err != nil {
			return err
		}
	}
	return h.decide(ctx, log, row, outcome{report: rep, m: &m, size: &m.Size, etag: info.ETag, objectVersion: info.VersionID})
}

// get starts the GET of key and returns its body and the object's metadata from the
// response headers. The checksum mode is asked for with the header itself rather
// than GetObjectOptions.Checksum, which would make minio-go hash the body a second
// time to verify one stored checksum (SHA-256 twice over for an object that has
// one); Measure computes every digest the references need in its own pass.
func (h *Handler) get(ctx context.Context, src *storage.Source, key string) (io.ReadCloser, minio.ObjectInfo, error) {
	var opts minio.GetObjectOptions
	opts.Set("x-amz-checksum-mode", "ENABLED")
	body, info, _, err := minio.Core{Client: src.Client}.GetObject(ctx, src.Bucket, key, opts)
	return body, info, err
}

// verifyOptions are the handler's verify options with the project's allow-list laid
// over the operator's (file types the project does not mention keep theirs).
func (h *Handler) verifyOptions(row db.FileVersionGetForValidationRow) (verify.Options, error) {
	opts := h.opts.Verify
	raw := row.AllowedContentTypes
	if len(raw) == 0 || string(raw) == "null" {
		return opts, nil
	}
	var project map[string][]string
	if err := json.Unmarshal(raw, &project); err != nil {
		return opts, fmt.Errorf("project %d: allowed_content_types is not an object of file type to media types: %w",
			row.FileVersion.ProjectID, err)
	}
	merged := maps.Clone(opts.AllowList)
	if merged == nil {
		merged = make(map[string][]string, len(project))
	}
	maps.Copy(merged, project)
	opts.AllowList = merged
	return opts, nil
}

// references gathers what the bytes are checked against: the registration's
// declarations and what storage says about the object.
func references(row db.FileVersionGetForValidationRow, info minio.ObjectInfo) verify.References {
	v := row.FileVersion
	size := info.Size
	refs := verify.References{
		FileType:       string(row.FileType),
		DeclaredSHA256: deref(v.ExpectedSha256),
		DeclaredSize:   v.ExpectedSize,
		DeclaredMIME:   deref(v.ExpectedMimeType),
		ObjectSize:     &size,
		ETag:           info.ETag,
		// With server-side encryption the ETag is not an MD5 of the plaintext.
		ETagNotMD5: info.Metadata.Get("X-Amz-Server-Side-Encryption") != "" ||
			info.Metadata.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "",
	}
	for _, c := range []struct {
		alg   verify.Algorithm
		value string
	}{
		{verify.SHA256, info.ChecksumSHA256},
		{verify.SHA1, info.ChecksumSHA1},
		{verify.SHA512, info.ChecksumSHA512},
		{verify.MD5, info.ChecksumMD5},
		{verify.CRC32, info.ChecksumCRC32},
		{verify.CRC32C, info.ChecksumCRC32C},
		{verify.CRC64NVME, info.ChecksumCRC64NVME},
	} {
		if c.value != "" {
			refs.S3Checksums = append(refs.S3Checksums, verify.S3Checksum{Algorithm: c.alg, Value: c.value, Type: info.ChecksumMode})
		}
	}
	return refs
}

// objectMissing tells "no such object" (the upload may still come) from "no such
// bucket" (a configuration problem, retried like any outage rather than blamed on
// the upload).
func objectMissing(err error) bool {
	var er minio.ErrorResponse
	if !errors.As(err, &er) || er.Code == "NoSuchBucket" {
		return false
	}
	return er.Code == "NoSuchKey" || er.StatusCode == http.StatusNotFound
}

// errSlowRead is the cause a pass is cancelled with when it overruns its budget.
var errSlowRead = errors.New("object read slower than the minimum throughput")

// read makes one streaming pass over body (SHA-256, size, content type and the extra
// digests the references call for) and checks it; an archive (ZIP, tar, gzip) is then
// inspected entry by entry through ranged reads of the same object (If-Match its ETag, so a
// replaced object fails the reads instead of mixing two uploads), with the budget
// timer re-armed for that second pass.
func (h *Handler) read(ctx context.Context, timer *time.Timer, budget time.Duration, body io.Reader, src *storage.Source, key string,
	info minio.ObjectInfo, refs verify.References, opts verify.Options) (verify.Measurement, verify.Report, error) {
	opts.Checksums = verify.Needed(refs)
	opts.SizeHint = info.Size
	var hashed int64
	opts.Progress = func(n int64) {
		if h.metrics != nil {
			h.metrics.BytesHashed.Add(float64(n - hashed))
		}
		hashed = n
	}
	// One goroutine reads and hashes: read-ahead on a second one measured slower on
	// a 2-core machine (the socket copy and SHA-256 share a core's cache), see
	// BenchmarkValidate1GiB in make bench.
	m, err := verify.Measure(ctx, cutShort{body}, opts)
	if err != nil {
		return verify.Measurement{}, verify.Report{}, withCause(ctx, err)
	}
	rep := verify.Check(m, refs, opts)
	if rep.Verdict == verify.Valid && m.IsArchive() {
		timer.Reset(budget)
		getOpts := minio.GetObjectOptions{}
		if info.ETag != "" {
			if err := getOpts.SetMatchETag(info.ETag); err != nil {
				return verify.Measurement{}, verify.Report{}, err
			}
		}
		obj, err := src.Client.GetObject(ctx, src.Bucket, key, getOpts)
		if err != nil {
			return verify.Measurement{}, verify.Report{}, err
		}
		defer func() { _ = obj.Close() }()
		z, err := verify.InspectArchive(ctx, obj, m.Size, opts)
		if err != nil {
			return verify.Measurement{}, verify.Report{}, withCause(ctx, err)
		}
		rep = rep.Merge(z)
	}
	return m, rep, nil
}

// passBudget is how long one pass over size bytes may take.
func (h *Handler) passBudget(size int64) time.Duration {
	return h.opts.BaseTimeout + time.Duration(float64(max(size, 0))/float64(h.opts.MinThroughput)*float64(time.Second))
}

// withCause names the budget overrun when that is why the pass was cancelled.
func withCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errSlowRead) {
		return fmt.Errorf("%w (%w)", cause, err)
	}
	return err
}

// missing counts an attempt that found no object (or could not read it: see
// source); it asks for a later retry until the attempts run out, then decides
// the version missing with final as the reason ("": no object at the key).
func (h *Handler) missing(ctx context.Context, log *slog.Logger, row db.FileVersionGetForValidationRow, cause error, final string) error {
	v := row.FileVersion
	n, err := db.New(h.pool).FileVersionIncrementAttempts(ctx, v.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		log.InfoContext(ctx, "version decided by another run meanwhile; nothing to do")
		return nil
	}
	if err != nil {
		return fmt.Errorf("count attempt of version %d: %w", v.ID, err)
	}
	if int(n) < h.opts.MissingAttempts {
		delay := queue.Backoff(int(n)-1, h.opts.MissingDelay, h.opts.MissingMaxDelay)
		log.InfoContext(ctx, "object not in the bucket yet (or its storage refused); will look again",
			slog.String("storage_path", v.StoragePath), slog.Int("attempt", int(n)),
			slog.Int("max_attempts", h.opts.MissingAttempts), slog.Duration("retry_in", delay))
		return queue.RetryAfter(delay, fmt.Errorf("object %q of version %d not found or not readable (attempt %d of %d): %w",
			v.StoragePath, v.ID, n, h.opts.MissingAttempts, cause))
	}
	msg := final
	if msg == "" {
		bucket := h.storages.Own.Bucket
		if src, err := h.storages.For(ctx, v.StorageID); err == nil {
			bucket = src.Bucket
		}
		msg = fmt.Sprintf("no object at %q in bucket %q (looked %d times); upload the file to that key, or register the version again with the key it was uploaded to, then validate it again",
			v.StoragePath, bucket, n)
	} else {
		msg = fmt.Sprintf("%s (looked %d times)", msg, n)
	}
	return h.decide(ctx, log, row, outcome{missing: msg})
}

// outcome is a decision about a version: a report (valid, corrupt, rejected) or a
// missing object.
type outcome struct {
	report  verify.Report
	m       *verify.Measurement // nil when no bytes were read
	size    *int64              // bytes measured, or storage's size when not read
	missing string              // set for a missing object: the message
	// etag and objectVersion identify the object whose bytes were measured (as the
	// GET's response reported them); later readers read it If-Match the ETag.
	etag, objectVersion string
}

func (o outcome) status() db.ValidationStatus {
	if o.missing != "" {
		return db.ValidationStatusMissing
	}
	switch o.report.Verdict {
	case verify.Valid:
		return db.ValidationStatusValid
	case verify.Corrupt:
		return db.ValidationStatusCorrupt
	default:
		return db.ValidationStatusRejected
	}
}

func (o outcome) message() string {
	if o.missing != "" {
		return o.missing
	}
	return o.report.Message()
}

// eventType is the event_log type of each outcome.
func eventType(s db.ValidationStatus) string {
	if s == db.ValidationStatusValid {
		return "validated"
	}
	return string(s)
}

// committed is what the outcome's transaction did.
type committed struct {
	changed     bool // false: another run had decided the version already
	duplicateOf *int64
	active      bool
	jobID       int64
	queued      []string // task types added to the outbox
	// pendingSince is the version's updated_at as this run found it pending and
	// locked: it names the pending spell the outcome ends (a re-validation starts a
	// new one), whatever task id asked for it.
	pendingSince time.Time
}

// decide writes the outcome and everything that follows from it in one transaction,
// then turns it into the task's result.
func (h *Handler) decide(ctx context.Context, log *slog.Logger, row db.FileVersionGetForValidationRow, o outcome) error {
	v := row.FileVersion
	status := o.status()
	var res committed
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		res = committed{}
		// Re-check under the row lock: a concurrent run (a redelivered task, the
		// reconciler's copy) may have decided while this one was reading.
		cur, err := q.FileVersionGetForUpdate(ctx, v.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrVersionNotFound
		}
		if err != nil {
			return fmt.Errorf("lock version: %w", err)
		}
		if cur.ValidationStatus != db.ValidationStatusPending {
			return nil
		}
		res.changed, res.pendingSince = true, cur.UpdatedAt
		if status == db.ValidationStatusValid {
			err = h.commitValid(ctx, q, row, o, &res)
		} else {
			err = h.commitFailed(ctx, q, v, status, o)
		}
		if err != nil {
			return err
		}
		return h.event(ctx, q, row, status, o, res)
	})
	if errors.Is(err, ErrVersionNotFound) {
		return queue.Permanent(fmt.Errorf("version %d deleted while it was validated: %w", v.ID, err))
	}
	if err != nil {
		return fmt.Errorf("record %s outcome of version %d: %w", status, v.ID, err)
	}
	if !res.changed {
		log.InfoContext(ctx, "version decided by another run meanwhile; nothing to do")
		return nil
	}
	if h.metrics != nil {
		h.metrics.VersionsValidated.WithLabelValues(string(status)).Inc()
	}

	attrs := []any{slog.String("status", string(status))}
	if o.m != nil {
		attrs = append(attrs, slog.String("sha256", o.m.SHA256Hex()))
	}
	if o.size != nil {
		attrs = append(attrs, slog.Int64("size_bytes", *o.size))
	}
	if status == db.ValidationStatusValid {
		attrs = append(attrs, slog.String("mime_type", o.report.ContentType), slog.Bool("active", res.active),
			slog.Any("queued", res.queued))
		if res.duplicateOf != nil {
			attrs = append(attrs, slog.Int64("duplicate_of", *res.duplicateOf))
		}
		log.InfoContext(ctx, "version valid", attrs...)
		return nil
	}
	// Archived, not retried: the same bytes give the same answer. The reason is on
	// the row for people; the error is for asynqmon and the one log line the
	// worker's middleware writes for it, with the figures measured as context.
	log.InfoContext(ctx, "version not valid", attrs...)
	return queue.Permanent(fmt.Errorf("version %d is %s: %s", v.ID, status, o.message()))
}

func (h *Handler) commitValid(ctx context.Context, q *db.Queries, row db.FileVersionGetForValidationRow, o outcome, res *committed) error {
	v := row.FileVersion
	sum := o.m.SHA256Hex()
	if err := q.FileVersionLockChecksum(ctx, db.FileVersionLockChecksumParams{Checksum: sum, ProjectID: v.ProjectID}); err != nil {
		return fmt.Errorf("lock checksum: %w", err)
	}
	dup, err := q.FileVersionFindDuplicate(ctx, db.FileVersionFindDuplicateParams{ProjectID: v.ProjectID, Checksum: &sum, ID: v.ID})
	switch {
	case err == nil:
		res.duplicateOf = &dup
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("find duplicate: %w", err)
	}
	now := h.now()
	mime := o.report.ContentType
	arg := db.FileVersionMarkValidParams{
		ID: v.ID, Checksum: &sum, SizeBytes: &o.m.Size, MimeType: nonEmpty(mime), ValidatedAt: &now,
		DuplicateOf: res.duplicateOf, ObjectEtag: nonEmpty(o.etag), ObjectVersionID: nonEmpty(o.objectVersion),
	}
	if im := o.m.Image; im != nil {
		// The stored size, as the header gives it; the displayed one (what Label
		// Studio's original_width/original_height are) swaps the two for
		// orientations 5-8 (verify.Image.Displayed). The conversions cannot
		// overflow: PNG sizes are 31-bit, the other formats' 16-bit or less,
		// and the orientation is 1-8.
		arg.ImageWidth, arg.ImageHeight, arg.ImageOrientation = ptr(int32(im.Width)), ptr(int32(im.Height)), ptr(int32(im.Orientation))
	}
	if err := q.FileVersionMarkValid(ctx, arg); err != nil {
		return fmt.Errorf("mark valid: %w", err)
	}
	if row.Retired {
		return nil // the file or project is deleted: judged, but nothing follows
	}

	// Only a dataset version that is now the file's active one is worth annotating:
	// a version superseded before it was validated would be wasted work. An existing
	// job (from an earlier validation of this version) is kept, and nothing is queued
	// for it again.
	dataset := row.FileType == db.FileTypeDataset
	act, err := q.FileActivateVersion(ctx, db.FileActivateVersionParams{
		VersionID: v.ID, MarkReady: dataset, FileID: v.FileID, VersionNumber: v.VersionNumber,
		WantJob: dataset,
	})
	if err != nil {
		return fmt.Errorf("set active version and create annotation job: %w", err)
	}
	res.active, res.jobID = act.Active, act.JobID
	if !dataset || !res.active {
		return nil
	}
	if row.LlmEnabled {
		next := tasks.Preannotate{VersionID: v.ID}
		if err := outbox.Add(ctx, q, v.OrgID, next); err != nil {
			return err
		}
		res.queued = append(res.queued, next.Kind())
	}
	if res.jobID != 0 {
		next := tasks.MatchTrigger{ProjectID: v.ProjectID, Run: fmt.Sprint(v.ID)}
		if err := outbox.Add(ctx, q, v.OrgID, next); err != nil {
			return err
		}
		res.queued = append(res.queued, next.Kind())
	}
	return nil
}

func (h *Handler) commitFailed(ctx context.Context, q *db.Queries, v db.FileVersion, status db.ValidationStatus, o outcome) error {
	now := h.now()
	msg := o.message()
	arg := db.FileVersionMarkFailedParams{
		ID: v.ID, ValidationStatus: status, ValidationError: &msg, ValidatedAt: &now, SizeBytes: o.size,
	}
	if o.m != nil {
		sum := o.m.SHA256Hex()
		arg.Checksum = &sum
		arg.MimeType = nonEmpty(o.report.ContentType)
	}
	if err := q.FileVersionMarkFailed(ctx, arg); err != nil {
		return fmt.Errorf("mark %s: %w", status, err)
	}
	if err := q.FileStepBackFromVersion(ctx, db.FileStepBackFromVersionParams{FileID: v.FileID, VersionID: v.ID}); err != nil {
		return fmt.Errorf("stop using version %d as the active one: %w", v.ID, err)
	}
	return nil
}

// event writes the outcome's one event_log entry, then its webhook event (notify).
// The entry's dedup key names the task, so a redelivered task never logs twice,
// while a requested re-validation (a new task id) logs its own outcome.
func (h *Handler) event(ctx context.Context, q *db.Queries, row db.FileVersionGetForValidationRow, status db.ValidationStatus, o outcome, res committed) error {
	v := row.FileVersion
	taskID, ok := asynq.GetTaskID(ctx)
	if !ok || taskID == "" {
		taskID = tasks.Validate{VersionID: v.ID}.TaskID()
	}
	typ := eventType(status)
	meta := map[string]any{"file_id": v.FileID, "version_number": v.VersionNumber, "task_id": taskID}
	var codes []string
	if status != db.ValidationStatusValid {
		codes = make([]string, 0, len(o.report.Findings))
		for _, f := range o.report.Findings {
			codes = append(codes, string(f.Code))
		}
	}
	if o.m != nil {
		meta["checksum"] = o.m.SHA256Hex()
		if im := o.m.Image; im != nil && status == db.ValidationStatusValid {
			w, h := im.Displayed()
			meta["image"] = map[string]any{
				"format": im.Format, "width": im.Width, "height": im.Height, "orientation": im.Orientation,
				"display_width": w, "display_height": h,
			}
		}
	}
	if o.size != nil {
		meta["size_bytes"] = *o.size
	}
	if ct := o.report.ContentType; ct != "" {
		meta["mime_type"] = ct
	}
	if status == db.ValidationStatusValid {
		meta["active"] = res.active
		if res.duplicateOf != nil {
			meta["duplicate_of"] = *res.duplicateOf
		}
		if res.jobID != 0 {
			meta["job_id"] = res.jobID
		}
		if len(res.queued) > 0 {
			meta["queued"] = res.queued
		}
	} else {
		meta["error"] = o.message()
		if len(codes) > 0 {
			meta["codes"] = codes
		}
	}
	if len(o.report.Notes) > 0 {
		meta["notes"] = o.report.Notes
	}
	if a := o.report.Archive; a != nil {
		meta["archive"] = map[string]any{
			"entries": a.Entries, "files": a.Files, "uncompressed_bytes": a.UncompressedBytes,
			"nested_archives": a.NestedArchives,
		}
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	key := fmt.Sprintf("file_version:%d:%s:%s", v.ID, typ, taskID)
	if err := q.EventLogInsert(ctx, db.EventLogInsertParams{
		OrgID: v.OrgID, EntityType: db.EntityTypeFileVersion, EntityID: v.ID, EventType: typ,
		DedupKey: &key, Metadata: b,
	}); err != nil {
		return fmt.Errorf("log %s event: %w", typ, err)
	}
	return h.notify(ctx, q, row, status, o, res, codes)
}

// webhookTypes are the webhook event types of the outcomes.
var webhookTypes = map[db.ValidationStatus]string{
	db.ValidationStatusValid:    webhook.FileVersionValidated,
	db.ValidationStatusCorrupt:  webhook.FileVersionCorrupt,
	db.ValidationStatusRejected: webhook.FileVersionRejected,
	db.ValidationStatusMissing:  webhook.FileVersionMissing,
}

// notify writes the outcome's webhook event in the outcome's transaction. For an
// organization with no endpoint that is one statement that writes nothing.
//
// Its dedup key names the pending spell the outcome ends rather than the task (as
// the event_log entry's does): a version sent back to validation because its
// object changed is queued under the pipeline's first task id again, and its new
// outcome must still be told. Only the run that moves the version out of pending
// gets here, so a redelivered task never does.
func (h *Handler) notify(ctx context.Context, q *db.Queries, row db.FileVersionGetForValidationRow, status db.ValidationStatus,
	o outcome, res committed, codes []string) error {
	v := row.FileVersion
	key := fmt.Sprintf("file_version:%d:%s:%d", v.ID, status, res.pendingSince.UnixMicro())
	data := webhook.FileVersionData{
		FileVersionID: v.ID, FileID: v.FileID, ProjectID: v.ProjectID, VersionNumber: v.VersionNumber,
		FileType: string(row.FileType), Filename: row.FileName, StorageKey: v.StoragePath, StorageID: v.StorageID,
		Status: string(status), SizeBytes: o.size, ContentType: nonEmpty(o.report.ContentType), Codes: codes,
	}
	if o.m != nil {
		sum := o.m.SHA256Hex()
		data.ChecksumSHA256 = &sum
	}
	if status != db.ValidationStatusValid {
		msg := o.message()
		data.Reason = &msg
	}
	if res.jobID != 0 {
		data.JobID = &res.jobID
	}
	_, err := webhook.Emit(ctx, q, webhook.Event{
		OrgID: v.OrgID, ProjectID: &v.ProjectID, Type: webhookTypes[status],
		EntityType: db.EntityTypeFileVersion, EntityID: v.ID, DedupKey: key, Data: data,
	})
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ptr[T any](v T) *T { return &v }

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
