package preannotate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/publicerr"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
)

// Defaults for the zero values of Options.
const (
	DefaultBusyRetry         = 5 * time.Second
	DefaultBudgetJitter      = 10 * time.Minute
	DefaultRateLimitFallback = 10 * time.Second
)

// imageTokens is what one image part is budgeted at before the call: OpenAI's
// charge for a 1024×1024 image at detail "auto", the common case. The provider
// reports the real figure afterwards.
const imageTokens = 765

// Errors a task ends with that no retry can fix (wrapped with asynq.SkipRetry).
var (
	ErrVersionNotFound = errors.New("file version not found")
	ErrNotEligible     = errors.New("version cannot be pre-annotated")
)

// Options tune the handler; every zero field means its default.
type Options struct {
	// BusyRetry is the delay before a task retries when another task (in any
	// process) is calling the model for identical content: by then that call has
	// usually finished and this task reuses its output. Jitter of up to half is
	// added. Default 5 s.
	BusyRetry time.Duration
	// BudgetJitter spreads the tasks a spent daily token budget delays over this
	// much time after midnight UTC, so they do not all start in the same second.
	// Default 10 min.
	BudgetJitter time.Duration
	// RateLimitFallback is the delay after a provider 429 that named none.
	// Default 10 s.
	RateLimitFallback time.Duration
}

func (o Options) withDefaults() Options {
	if o.BusyRetry <= 0 {
		o.BusyRetry = DefaultBusyRetry
	}
	if o.BudgetJitter <= 0 {
		o.BudgetJitter = DefaultBudgetJitter
	}
	if o.RateLimitFallback <= 0 {
		o.RateLimitFallback = DefaultRateLimitFallback
	}
	return o
}

// Deps are what the handler needs; Log, Metrics and Now may be nil.
type Deps struct {
	Pool *pgxpool.Pool
	// Store is labelq's own bucket: outputs are stored there, and a version
	// with no storage_id is read from it.
	Store *storage.Store
	// Storages reaches the storage a version's storage_id names. Nil: only
	// Store is known, and a version of a storage is retried until the worker is
	// wired with a resolver.
	Storages *storage.Resolver
	LLM      *llm.Client
	Limiter  *ratelimit.Limiter
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	Now      func() time.Time
	Options  Options
}

// Handler processes file:preannotate tasks.
type Handler struct {
	pool     *pgxpool.Pool
	store    *storage.Store
	storages *storage.Resolver
	llm      *llm.Client
	limiter  *ratelimit.Limiter
	log      *slog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	opts     Options
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler {
	h := &Handler{
		pool: d.Pool, store: d.Store, storages: d.Storages, llm: d.LLM, limiter: d.Limiter, log: d.Log,
		metrics: d.Metrics, now: d.Now, opts: d.Options.withDefaults(),
	}
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

// job is one task's view of the world, read once at the start.
type job struct {
	log     *slog.Logger
	version db.FileVersion
	file    db.File
	project db.Project
	req     llm.Request
	key     llm.CacheKey
	run     db.LlmRun
	// labels is the label config the schema was derived from, nil when the
	// project has none or a hand-written schema (labelConfigOf): with it the
	// reply is stored as a Label Studio prediction.
	labels *labelconfig.Config
}

// Work pre-annotates one version. It returns nil when the output is stored (now,
// or by an earlier run), when the run is skipped (unsupported content, LLM turned
// off), a queue.Permanent error when the run failed for good or the version cannot
// be pre-annotated, a queue.RetryAfter error when a limit (ours, the provider's, the
// daily budget) asks to wait, and any other error for transient failures, which
// asynq retries with backoff. Mount it with tasks.Register.
func (h *Handler) Work(ctx context.Context, args tasks.Preannotate) error {
	log := logging.From(ctx, h.log).With(slog.Int64("version_id", args.VersionID))
	j, err := h.load(ctx, log, args.VersionID)
	if err != nil || j == nil {
		return err
	}
	return h.process(ctx, j)
}

// load reads the version, its file and project, checks the version can be
// pre-annotated, and finds (or creates) the run for the project's current
// settings. A nil job and nil error mean there is nothing to do.
func (h *Handler) load(ctx context.Context, log *slog.Logger, versionID int64) (*job, error) {
	q := db.New(h.pool)
	v, err := q.FileVersionGetByID(ctx, versionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, queue.Permanent(fmt.Errorf("version %d: %w", versionID, ErrVersionNotFound))
	}
	if err != nil {
		return nil, fmt.Errorf("read version %d: %w", versionID, err)
	}
	log = log.With(slog.Int64("org_id", v.OrgID), slog.Int64("project_id", v.ProjectID), slog.Int64("file_id", v.FileID))
	ineligible := func(reason string) (*job, error) {
		err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
			// Open runs of the version would otherwise look stuck to the reconciler,
			// which would queue this task again and again.
			if _, err := q.LLMRunSkipOthers(ctx, db.LLMRunSkipOthersParams{Reason: reason, FileVersionID: v.ID}); err != nil {
				return fmt.Errorf("close runs of version %d: %w", v.ID, err)
			}
			return skipVersion(ctx, q, v.ID, reason)
		})
		if err != nil {
			return nil, err
		}
		return nil, queue.Permanent(fmt.Errorf("version %d: %w: %s", v.ID, ErrNotEligible, reason))
	}
	switch {
	case v.ValidationStatus != db.ValidationStatusValid:
		return ineligible(fmt.Sprintf("the version is %s; only valid versions are pre-annotated", v.ValidationStatus))
	case v.Checksum == nil:
		return ineligible("the version has no measured checksum")
	case v.GenerationMethod == db.GenerationMethodLlm:
		return ineligible("the version is itself a model output")
	}
	f, err := q.FileGet(ctx, db.FileGetParams{ID: v.FileID, OrgID: v.OrgID})
	if errors.Is(err, pgx.ErrNoRows) {
		return ineligible("the file has been deleted")
	}
	if err != nil {
		return nil, fmt.Errorf("read file %d: %w", v.FileID, err)
	}
	if f.FileType != db.FileTypeDataset {
		return ineligible(fmt.Sprintf("the file is a %s file; only dataset files are pre-annotated", f.FileType))
	}
	pr, err := q.ProjectGetByID(ctx, v.ProjectID)
	if errors.Is(err, pgx.ErrNoRows) {
		return ineligible("the project has been deleted")
	}
	if err != nil {
		return nil, fmt.Errorf("read project %d: %w", v.ProjectID, err)
	}
	if !pr.LlmEnabled {
		return nil, h.disabled(ctx, log, v)
	}

	req := llm.Request{
		Model:        pr.LlmModel,
		Temperature:  pr.LlmTemperature,
		MaxTokens:    int(pr.LlmMaxTokens),
		SystemPrompt: pr.LlmSystemPrompt,
		Instructions: pr.RequirementsText,
		Schema:       pr.AnnotationSchema,
		// The file name is not sent: it is tenant-chosen text that is not part of
		// the cache key (two files with the same bytes share one answer), and a
		// name in the prompt would let one file steer the answer all its
		// duplicates reuse.
		Input: llm.Input{ContentType: contentType(v)},
	}
	labels, err := labelConfigOf(pr)
	if err != nil {
		return ineligible("the project's label config cannot be used: " + err.Error())
	}
	if labels != nil {
		// Derived, so nobody writes a schema by hand. The schema hash and the
		// guide (in the prompt hash) follow the config: a changed config is a
		// new run, never a reuse of answers to the old one.
		if req.Schema, err = labels.OutputSchema(); err != nil {
			return ineligible("the project's label config cannot be used: " + err.Error())
		}
		// The schema is held to the limits of a hand-written one (the reply is
		// checked with the same compiler); a config too large for them must not
		// cost a call and a repair call before that shows.
		if _, err := llm.CompileSchema(req.Schema); err != nil {
			return ineligible("the project's label config cannot be used: the JSON Schema derived from it is refused: " +
				strings.TrimPrefix(err.Error(), "llm: "))
		}
		req.SchemaName = "label_config"
		req.Guide = guide(*labels)
	}
	key, err := h.llm.CacheKey(*v.Checksum, req)
	if err != nil {
		return ineligible("the project's annotation schema is not valid JSON: " + err.Error())
	}
	run, err := q.LLMRunInsert(ctx, db.LLMRunInsertParams{
		OrgID: v.OrgID, ProjectID: v.ProjectID, FileVersionID: v.ID,
		Model: key.Model, PromptHash: key.PromptHash, SchemaHash: key.SchemaHash, InputSha256: key.InputSHA256,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		run, err = q.LLMRunGetBySettings(ctx, db.LLMRunGetBySettingsParams{
			FileVersionID: v.ID, Model: key.Model, PromptHash: key.PromptHash, SchemaHash: key.SchemaHash,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("find run of version %d: %w", v.ID, err)
	}
	if run.Status == db.LlmRunStatusSkipped && (run.InputSha256 != key.InputSHA256 || (run.Error != nil && *run.Error == objectChangedReason)) {
		// Skipped because the object changed after validation, and validated
		// again since: these bytes are to be pre-annotated.
		if r, err := q.LLMRunRestartForInput(ctx, db.LLMRunRestartForInputParams{
			ID: run.ID, InputSha256: key.InputSHA256, ChangedReason: objectChangedReason,
		}); err == nil {
			run = r
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("reopen run %d for the version's new bytes: %w", run.ID, err)
		}
	}
	log = log.With(slog.Int64("run_id", run.ID), slog.String("model", key.Model))
	if run.Status == db.LlmRunStatusSucceeded || run.Status == db.LlmRunStatusSkipped {
		// A redelivered or repeated task: the outcome stands, and touching the
		// row would make "run twice" differ from "run once".
		log.InfoContext(ctx, "version already pre-annotated with these settings; nothing to do", slog.String("status", string(run.Status)))
		return nil, nil
	}
	if _, err := q.LLMRunSkipOthers(ctx, db.LLMRunSkipOthersParams{
		Reason:        fmt.Sprintf("superseded by run %d: the project's LLM settings changed", run.ID),
		FileVersionID: v.ID, KeepID: run.ID,
	}); err != nil {
		return nil, fmt.Errorf("close superseded runs of version %d: %w", v.ID, err)
	}
	return &job{log: log, version: v, file: f, project: pr, req: req, key: key, run: run, labels: labels}, nil
}

// disabled records that the project does not pre-annotate (once per version and
// checksum) and closes any run left open from when it did, in one transaction.
func (h *Handler) disabled(ctx context.Context, log *slog.Logger, v db.FileVersion) error {
	const reason = "LLM pre-annotation is disabled for the project"
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		if _, err := q.LLMRunSkipOthers(ctx, db.LLMRunSkipOthersParams{Reason: reason, FileVersionID: v.ID}); err != nil {
			return fmt.Errorf("close runs of version %d: %w", v.ID, err)
		}
		if err := skipVersion(ctx, q, v.ID, reason); err != nil {
			return err
		}
		if err := event(ctx, q, v, "preannotation_skipped", fmt.Sprintf("preannotate:version:%d:disabled", v.ID),
			map[string]any{"reason": reason}); err != nil {
			return err
		}
		// The checksum in the key: the same version validated again with other
		// bytes is a new decision not to pre-annotate it.
		r := reason
		return notify(ctx, q, v, webhook.PreannotationSkipped, fmt.Sprintf("preannotate:version:%d:disabled:%s", v.ID, deref(v.Checksum)),
			webhook.PreannotationData{Status: string(db.LlmRunStatusSkipped), Reason: &r})
	})
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "pre-annotation skipped: disabled for the project")
	return nil
}

// skipVersion records on a version that it is not pre-annotated, and why, when no
// run of its own says so.
func skipVersion(ctx context.Context, q *db.Queries, id int64, reason string) error {
	if err := q.FileVersionSetPreannotation(ctx, db.FileVersionSetPreannotationParams{
		ID: id, Status: db.LlmRunStatusSkipped, Reason: reason,
	}); err != nil {
		return fmt.Errorf("record on version %d that it is not pre-annotated: %w", id, err)
	}
	return nil
}

// contentType is the measured MIME type, else the declared one.
func contentType(v db.FileVersion) string {
	for _, s := range []*string{v.MimeType, v.ExpectedMimeType} {
		if s != nil && strings.TrimSpace(*s) != "" {
			return *s
		}
	}
	return "application/octet-stream"
}

// process takes a loaded run to its outcome.
func (h *Handler) process(ctx context.Context, j *job) error {
	// Find out whether the content can be sent at all before reading a byte of
	// it: a one-byte stand-in makes BuildPrompt judge the type and charset alone.
	probe := j.req
	probe.Input.Data = []byte(" ")
	pp, err := h.llm.BuildPrompt(probe)
	var unsupported *llm.UnsupportedContentError
	if errors.As(err, &unsupported) {
		return h.skip(ctx, j, unsupported.Error())
	}
	if err != nil {
		return h.fail(ctx, j, usage{}, strings.TrimPrefix(err.Error(), "llm: "), nil)
	}
	lim := h.llm.Limits()
	isImage := hasImage(pp)
	if isImage && j.version.SizeBytes != nil && *j.version.SizeBytes > lim.MaxImageBytes {
		// Judged on the measured size: the bounded read below would only see the
		// first MaxImageBytes+1 bytes and report that as the size.
		return h.skip(ctx, j, (&llm.UnsupportedContentError{ContentType: j.req.Input.ContentType, Reason: fmt.Sprintf(
			"the image is %d bytes, over the %d-byte limit", *j.version.SizeBytes, lim.MaxImageBytes)}).Error())
	}

	// One process at a time per cache key, everywhere: two tasks for the same
	// bytes must not both pay. The loser comes back once the winner's output is
	// committed and reuses it. (llm_runs_paid_cache_key stands behind this if Redis
	// ever loses the lock.)
	lock, err := h.limiter.TryLock(ctx, fmt.Sprintf("cache:%d:%s", j.version.OrgID, keyHash(j.key)))
	if err != nil {
		return fmt.Errorf("lock cache key: %w", err)
	}
	if lock == nil {
		d := h.opts.BusyRetry + time.Duration(rand.Int64N(int64(h.opts.BusyRetry)/2+1))
		j.log.InfoContext(ctx, "identical content is being pre-annotated by another task; waiting to reuse its output")
		return queue.RetryAfter(d, errors.New("identical content is being pre-annotated by another task; this one will reuse its output"))
	}
	defer lock.Release()

	q := db.New(h.pool)
	// Read the run again under the lock: another task for this same run (an
	// explicit re-run beside the pipeline's) may have finished it meanwhile, and
	// must not be paid for or overwritten a second time.
	cur, err := q.LLMRunGet(ctx, j.run.ID)
	if err != nil {
		return fmt.Errorf("read run %d: %w", j.run.ID, err)
	}
	if cur.Status == db.LlmRunStatusSucceeded || cur.Status == db.LlmRunStatusSkipped {
		j.log.InfoContext(ctx, "run finished by another task meanwhile; nothing to do")
		return nil
	}
	j.run = cur
	src, err := q.LLMRunFindCached(ctx, db.LLMRunFindCachedParams{OrgID: j.version.OrgID, CacheKey: j.key.String()})
	switch {
	case err == nil:
		return h.reuse(ctx, j, src, usage{})
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("look up cache: %w", err)
	}

	if err := h.checkBudget(ctx, j); err != nil {
		return err
	}

	limit := int64(lim.MaxInputTokens)*4 + 1
	if isImage {
		limit = lim.MaxImageBytes + 1
	}
	data, err := h.read(ctx, j.version, limit)
	if errors.Is(err, errObjectChanged) {
		return h.revalidate(ctx, j)
	}
	// A tenant's storage that cannot be used, or that refuses labelq, is theirs
	// to fix: the run fails with the reason (a re-run picks it up once fixed)
	// rather than retrying against a door that stays shut.
	var ue *storage.UnusableError
	var re *refusedError
	switch {
	case errors.As(err, &ue):
		return h.fail(ctx, j, usage{}, fmt.Sprintf("the version's object %q cannot be read: %s", j.version.StoragePath, ue.Error()), nil)
	case errors.As(err, &re):
		return h.fail(ctx, j, usage{}, re.reason, nil)
	}
	if storage.IsNotFound(err) {
		return h.fail(ctx, j, usage{}, fmt.Sprintf("the version's object %q is no longer in the bucket", j.version.StoragePath), nil)
	}
	if err != nil {
		return fmt.Errorf("read object of version %d: %w", j.version.ID, err)
	}
	j.req.Input.Data = data
	prompt, err := h.llm.BuildPrompt(j.req)
	if errors.As(err, &unsupported) {
		return h.skip(ctx, j, unsupported.Error()) // the file is empty
	}
	if err != nil {
		return h.fail(ctx, j, usage{}, strings.TrimPrefix(err.Error(), "llm: "), nil)
	}

	if j.run, err = h.record(ctx, j, db.LlmRunStatusRunning, usage{}, nil, nil); err != nil {
		return err
	}
	return h.call(ctx, j, prompt)
}

func hasImage(p llm.Prompt) bool {
	for _, m := range p.Messages {
		for _, part := range m.Parts {
			if part.ImageURL != "" {
				return true
			}
		}
	}
	return false
}

// estimate is the token count the shared limiter reserves for a call: the prompt
// estimated the way providers estimate it when admitting a request, plus every
// reply token the call may use.
func estimate(p llm.Prompt, maxTokens int) int {
	n, images := 0, 0
	for _, m := range p.Messages {
		for _, part := range m.Parts {
			n += len(part.Text)
			if part.ImageURL != "" {
				images++
			}
		}
	}
	return llm.EstimateTokens(n) + images*imageTokens + maxTokens
}

// keyHash names a cache key in object keys and lock names: short, and without the
// model name's arbitrary characters.
func keyHash(k llm.CacheKey) string {
	s := sha256.Sum256([]byte(k.String()))
	return hex.EncodeToString(s[:16])
}

// read returns at most limit bytes of the object: BuildPrompt never sends more
// than its budget of a text, and refuses images over its size limit, so more
// would be read for nothing. A text cut here reports its size to the model as
// the bytes read (a lower bound), and says it was truncated.
//
// The bytes are the ones file:validate measured, or none: the object is read
// If-Match the ETag recorded at validation, and a version validated before ETags
// were recorded is hashed to its end and compared with its checksum. Either
// mismatch is errObjectChanged, and nothing read is returned.
func (h *Handler) read(ctx context.Context, v db.FileVersion, limit int64) ([]byte, error) {
	src, err := h.storages.Resolve(ctx, v.StorageID)
	if err != nil {
		return nil, err
	}
	var opts minio.GetObjectOptions
	if v.ObjectEtag != nil {
		if err := opts.SetMatchETag(*v.ObjectEtag); err != nil {
			return nil, err
		}
	}
	sorted := func(err error) error {
		if reason := src.Refusal("read", v.StoragePath, err); reason != "" {
			return &refusedError{reason: reason, err: err}
		}
		return objectChanged(err)
	}
	obj, err := src.Client.GetObject(ctx, src.Bucket, v.StoragePath, opts)
	if err != nil {
		return nil, sorted(err)
	}
	defer func() { _ = obj.Close() }()
	if v.ObjectEtag != nil {
		data, err := io.ReadAll(io.LimitReader(obj, limit))
		if err != nil {
			return nil, sorted(err)
		}
		return data, nil
	}
	sum := sha256.New()
	data, err := io.ReadAll(io.LimitReader(io.TeeReader(obj, sum), limit))
	if err == nil {
		_, err = io.Copy(sum, obj)
	}
	if err != nil {
		return nil, sorted(err)
	}
	if v.Checksum == nil || !strings.EqualFold(hex.EncodeToString(sum.Sum(nil)), *v.Checksum) {
		return nil, errObjectChanged
	}
	return data, nil
}

// refusedError is a tenant's bucket refusing to let labelq read a version's
// object (access denied, no such bucket), with the reason for the run.
type refusedError struct {
	reason string
	err    error
}

func (e *refusedError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// objectChangedReason is the skip reason of a run whose version's object changed
// after validation; the run is opened again once the version is valid again.
const objectChangedReason = "the file's stored bytes changed after validation; the version is being validated again"

// errObjectChanged: the version's object is not the one file:validate measured.
var errObjectChanged = errors.New("the stored object changed after validation")

// objectChanged maps S3's answer to a failed If-Match onto errObjectChanged.
func objectChanged(err error) error {
	if minio.ToErrorResponse(err).Code == "PreconditionFailed" {
		return errObjectChanged
	}
	return err
}

// revalidate sends a version whose object changed after validation back to
// file:validate (pending, with a file:validate task through the outbox) and skips
// the run: the new bytes are judged before anything is sent to the model, and the
// task validation queues then pre-annotates them with this run.
func (h *Handler) revalidate(ctx context.Context, j *job) error {
	const reason = objectChangedReason
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		if _, err := q.FileVersionRevalidate(ctx, db.FileVersionRevalidateParams{ID: j.version.ID, Checksum: *j.version.Checksum}); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // validated again by another task meanwhile
			}
			return fmt.Errorf("send version %d back to validation: %w", j.version.ID, err)
		}
		if err := outbox.Add(ctx, q, j.version.OrgID, tasks.Validate{VersionID: j.version.ID}); err != nil {
			return err
		}
		r := reason
		run, err := recordRun(ctx, q, recordParams(j.run.ID, db.LlmRunStatusSkipped, usage{}, &r, nil, nil, nil))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			run = j.run
		case err != nil:
			return fmt.Errorf("mark run %d skipped: %w", j.run.ID, err)
		}
		if err := event(ctx, q, j.version, "preannotation_skipped", fmt.Sprintf("preannotate:run:%d:object-changed", j.run.ID),
			map[string]any{"run_id": j.run.ID, "reason": reason}); err != nil {
			return err
		}
		// The input in the key: a run opened again for the new bytes may be
		// skipped again for the same reason, and that is told too.
		return notify(ctx, q, j.version, webhook.PreannotationSkipped,
			fmt.Sprintf("preannotate:run:%d:object-changed:%s", run.ID, j.run.InputSha256), runData(run, db.LlmRunStatusSkipped, &r))
	})
	if err != nil {
		return err
	}
	j.log.WarnContext(ctx, "object changed after validation; version sent back to validation, nothing sent to the model")
	return nil
}

// checkBudget delays the task to the next UTC day when the project has spent its
// daily token budget ("today" is the runs created since midnight UTC). The check
// is soft: tasks that passed it just before the budget ran out still make their
// call, so a day can overshoot by the calls in flight at that moment.
func (h *Handler) checkBudget(ctx context.Context, j *job) error {
	budget := j.project.LlmDailyTokenBudget
	if budget == nil {
		return nil
	}
	now := h.now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	used, err := db.New(h.pool).LLMTokensUsedSince(ctx, db.LLMTokensUsedSinceParams{ProjectID: j.project.ID, Since: day})
	if err != nil {
		return fmt.Errorf("read today's token use: %w", err)
	}
	if used < *budget {
		return nil
	}
	next := day.Add(24 * time.Hour)
	wait := next.Sub(now) + time.Duration(rand.Int64N(int64(h.opts.BudgetJitter)+1))
	note := fmt.Sprintf("the project's daily token budget (%d) is spent (%d used today): waiting until after %s",
		*budget, used, next.Format(time.RFC3339))
	if j.run, err = h.record(ctx, j, db.LlmRunStatusPending, usage{}, &note, nil); err != nil {
		return err
	}
	if h.metrics != nil {
		h.metrics.LLMBudgetExhausted.Inc()
	}
	j.log.InfoContext(ctx, "daily token budget spent; pre-annotation delayed to the next day",
		slog.Int64("budget", *budget), slog.Int64("used", used), slog.Duration("wait", wait))
	return queue.RetryAfter(wait, errors.New(note))
}

// usage is what calls cost, added to the run.
type usage struct {
	calls, promptTokens, completionTokens, latencyMs int
	cost                                             float64
}

func (u *usage) add(resp llm.Response) {
	if resp.Latency > 0 {
		u.calls++ // the request went out; failures before sending are not attempts
	}
	u.promptTokens += resp.PromptTokens
	u.completionTokens += resp.CompletionTokens
	u.latencyMs += int(resp.Latency.Milliseconds())
	u.cost += resp.Cost
}

// complete makes one call under the shared limits.
func (h *Handler) complete(ctx context.Context, j *job, req llm.Request, prompt llm.Prompt, u *usage) (llm.Response, error) {
	// Organizations take turns at the shared limits: one with a few versions is
	// not held behind another's backlog of hundreds.
	permit, err := h.limiter.AcquireFor(ctx, strconv.FormatInt(j.version.OrgID, 10), estimate(prompt, req.MaxTokens))
	if err != nil {
		return llm.Response{}, err
	}
	resp, err := h.llm.Complete(ctx, req)
	if used := resp.PromptTokens + resp.CompletionTokens; used > 0 {
		// The reply says what the call cost: what the reservation held beyond
		// that goes back to every worker. Without a usage (no reply, a provider
		// that reports none) the reservation stays spent.
		if _, serr := permit.Settle(ctx, used); serr != nil {
			j.log.WarnContext(ctx, "could not settle the call's tokens with the shared limiter", slog.String("error", serr.Error()))
		}
	}
	permit.Release()
	u.add(resp)
	if h.metrics != nil {
		h.metrics.LLMTokens.WithLabelValues("prompt").Add(float64(resp.PromptTokens))
		h.metrics.LLMTokens.WithLabelValues("completion").Add(float64(resp.CompletionTokens))
		h.metrics.LLMCost.Add(resp.Cost)
		if resp.Latency > 0 { // the request went out: a call, as usage counts them
			outcome := "ok"
			if kind, _ := llm.Classify(err); kind != llm.KindNone {
				outcome = kind.String()
			}
			h.metrics.LLMCalls.WithLabelValues(outcome).Inc()
		}
	}
	j.log.DebugContext(ctx, "model call", slog.Duration("latency", resp.Latency),
		slog.Int("usage_in", resp.PromptTokens), slog.Int("usage_out", resp.CompletionTokens), slog.Bool("ok", err == nil))
	return resp, err
}

// call sends the request, makes the one repair attempt a schema-invalid reply
// gets, and stores the result.
func (h *Handler) call(ctx context.Context, j *job, prompt llm.Prompt) error {
	var u usage
	resp, err := h.complete(ctx, j, j.req, prompt, &u)
	if err != nil {
		return h.callFailed(ctx, j, u, resp, err)
	}
	reply := llm.Reply{JSON: resp.Content}
	if len(j.req.Schema) > 0 {
		// A reply holding one JSON value in a code fence or a sentence is judged
		// by that value, and stored as it; only a reply still invalid after that
		// is worth the repair call.
		var verr error
		if reply, verr = llm.CheckReply(j.req.Schema, resp.Content); verr != nil {
			j.log.InfoContext(ctx, "reply does not satisfy the annotation schema; one repair attempt", slog.String("problem", verr.Error()))
			repair := j.req.WithRepair(resp.Content, verr)
			resp, err = h.complete(ctx, j, repair, llm.RepairPrompt(prompt, resp.Content, verr), &u)
			if err != nil {
				return h.callFailed(ctx, j, u, resp, err)
			}
			if reply, verr = llm.CheckReply(j.req.Schema, resp.Content); verr != nil {
				reason := "the model's reply does not satisfy the annotation schema, even after one repair attempt: " +
					strings.TrimPrefix(verr.Error(), "llm: ")
				return h.fail(ctx, j, u, reason, &resp.Content)
			}
		}
		if reply.Unwrapped != llm.NotWrapped {
			j.log.InfoContext(ctx, "reply held its JSON in a wrapping; stored unwrapped", slog.String("unwrapped", string(reply.Unwrapped)))
		}
	} else if strings.TrimSpace(resp.Content) == "" {
		return h.fail(ctx, j, u, fmt.Sprintf("the model returned an empty reply (finish_reason %q)", resp.FinishReason), nil)
	}
	ans := answer{body: []byte(reply.JSON), reply: reply}
	if j.labels != nil {
		body, counts, err := prediction(*j.labels, j.req.Model, ans.body, shownText(j, prompt), imageFacts(j.version))
		if err != nil {
			// ToRegions refuses only shapes the derived schema rules out, so
			// this is not expected; a repair call would be held to the same
			// schema the answer already satisfies.
			return h.fail(ctx, j, u, "the model's answer cannot be turned into Label Studio regions: "+err.Error(), &resp.Content)
		}
		if counts.repaired > 0 || counts.dropped > 0 {
			j.log.InfoContext(ctx, "spans checked against the text", slog.Int("regions", counts.regions),
				slog.Int("repaired", counts.repaired), slog.Int("dropped", counts.dropped))
		}
		ans.body, ans.counts = body, &counts
	}
	return h.storeNew(ctx, j, u, resp, ans)
}

// shownText is the text the model was shown, which its span offsets count in:
// the input as far as the prompt sent it (a prefix of the file, so offsets into
// it are offsets into the file), "" for an image.
func shownText(j *job, p llm.Prompt) string {
	if hasImage(p) {
		return ""
	}
	data := j.req.Input.Data
	if p.InputBytes < len(data) {
		data = data[:p.InputBytes]
	}
	return strings.ToValidUTF8(string(data), "\uFFFD")
}

// callFailed records a failed call on the run and turns it into the task's
// outcome.
func (h *Handler) callFailed(ctx context.Context, j *job, u usage, resp llm.Response, err error) error {
	var wait *ratelimit.WaitError
	if errors.As(err, &wait) {
		// Our own limits: nothing was sent. Come back when the limit allows.
		d := wait.Wait + time.Duration(rand.Int64N(int64(wait.Wait)/10+int64(time.Second)))
		j.log.DebugContext(ctx, "shared rate limit reached; task rescheduled", slog.String("limit", wait.Limit), slog.Duration("wait", d))
		if u.calls > 0 { // the first call of a repair went out
			if _, rerr := h.record(ctx, j, db.LlmRunStatusRunning, u, nil, nil); rerr != nil {
				return rerr
			}
		}
		return queue.RetryAfter(d, err)
	}
	kind, after := llm.Classify(err)
	// The run's error is read by the tenant: a transport failure is told as a plain
	// reason there, with the detail (addresses, host names) in this log only.
	detail := strings.TrimPrefix(err.Error(), "llm: ")
	reason := publicerr.Text(detail, publicerr.Model)
	if reason != detail {
		j.log.WarnContext(ctx, "model endpoint unavailable", slog.String("error", detail))
	}
	switch kind {
	case llm.KindRateLimited:
		if after <= 0 {
			after = h.opts.RateLimitFallback
		}
		// Every worker shares the provider's quota: pause them all, not only
		// this task.
		if perr := h.limiter.Pause(ctx, after); perr != nil {
			j.log.WarnContext(ctx, "could not pause the shared limiter", slog.String("error", perr.Error()))
		}
		if _, rerr := h.record(ctx, j, db.LlmRunStatusRunning, u, &reason, nil); rerr != nil {
			return rerr
		}
		// A little jitter, never earlier than asked.
		d := after + time.Duration(rand.Int64N(int64(after)/10+1))
		return queue.RetryAfter(d, err)
	case llm.KindTransient:
		if lastAttempt(ctx) {
			return h.fail(ctx, j, u, "gave up after the task's last retry: "+reason, nil)
		}
		if _, rerr := h.record(ctx, j, db.LlmRunStatusRunning, u, &reason, nil); rerr != nil {
			return rerr
		}
		// A plain error: asynq retries with queue.RetryDelay's exponential
		// backoff and jitter, and counts it against the task's retries.
		return fmt.Errorf("pre-annotate version %d: %w", j.version.ID, err)
	case llm.KindRefusal:
		var raw *string
		if resp.Refusal != "" {
			raw = &resp.Refusal
		}
		return h.fail(ctx, j, u, reason, raw)
	default:
		return h.fail(ctx, j, u, reason, nil)
	}
}

// lastAttempt reports whether asynq will not retry this task after a failure.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	m, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= m
}

// record writes a non-final step (status, usage, error) on the run. It uses a
// context of its own: tokens already spent must be recorded even when the task's
// context has just ended.
func (h *Handler) record(ctx context.Context, j *job, status db.LlmRunStatus, u usage, errText, raw *string) (db.LlmRun, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	run, err := recordRun(wctx, db.New(h.pool), recordParams(j.run.ID, status, u, errText, raw, nil, nil))
	if errors.Is(err, pgx.ErrNoRows) {
		return j.run, nil // another task finished the run meanwhile; its outcome stands
	}
	if err != nil {
		return j.run, fmt.Errorf("record run %d: %w", j.run.ID, err)
	}
	return run, nil
}

// recordRun writes one step on the run; the same statement moves the version's
// pre-annotation status and reason along.
func recordRun(ctx context.Context, q *db.Queries, p db.LLMRunRecordParams) (db.LlmRun, error) {
	r, err := q.LLMRunRecord(ctx, p)
	return db.LlmRun(r), err
}

func recordParams(id int64, status db.LlmRunStatus, u usage, errText, raw *string, output, cachedFrom *int64) db.LLMRunRecordParams {
	return db.LLMRunRecordParams{
		ID: id, Status: status, Calls: int32(u.calls),
		PromptTokens: int32(u.promptTokens), CompletionTokens: int32(u.completionTokens),
		LatencyMs: int32(u.latencyMs), CostUsd: u.cost,
		Error: errText, RawOutput: raw, OutputVersionID: output, CachedFromID: cachedFrom,
	}
}

// skip ends the run as skipped: nothing about this input can be pre-annotated, and
// that is not a failure.
func (h *Handler) skip(ctx context.Context, j *job, reason string) error {
	reason = strings.TrimPrefix(reason, "llm: ")
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		run, err := recordRun(ctx, q, recordParams(j.run.ID, db.LlmRunStatusSkipped, usage{}, &reason, nil, nil, nil))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mark run %d skipped: %w", j.run.ID, err)
		}
		if err := event(ctx, q, j.version, "preannotation_skipped", fmt.Sprintf("preannotate:run:%d:skipped", run.ID),
			map[string]any{"run_id": run.ID, "reason": reason, "content_type": j.req.Input.ContentType}); err != nil {
			return err
		}
		// The input in the key: a run is opened again only for other bytes.
		return notify(ctx, q, j.version, webhook.PreannotationSkipped,
			fmt.Sprintf("preannotate:run:%d:skipped:%s", run.ID, run.InputSha256), runData(run, db.LlmRunStatusSkipped, &reason))
	})
	if err != nil {
		return err
	}
	j.log.InfoContext(ctx, "pre-annotation skipped", slog.String("reason", reason))
	return nil
}

// fail ends the run as failed with a reason a person can act on, keeping the raw
// reply when there is one, and ends the task without retry.
func (h *Handler) fail(ctx context.Context, j *job, u usage, reason string, raw *string) error {
	raw = boundRaw(raw)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := database.Tx(wctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		run, err := recordRun(wctx, q, recordParams(j.run.ID, db.LlmRunStatusFailed, u, &reason, raw, nil, nil))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mark run %d failed: %w", j.run.ID, err)
		}
		meta := map[string]any{"run_id": run.ID, "reason": reason, "attempts": run.Attempts}
		// Attempts in the key: an explicit re-run that fails again logs again.
		key := fmt.Sprintf("preannotate:run:%d:failed:%d", run.ID, run.Attempts)
		if err := event(wctx, q, j.version, "preannotation_failed", key, meta); err != nil {
			return err
		}
		// And the task: a re-run (its own task id) that fails before any call
		// leaves the attempts as they were, and is still a new failure. A
		// redelivered task is the same task.
		return notify(wctx, q, j.version, webhook.PreannotationFailed, key+":"+taskID(ctx, j.version.ID), runData(run, db.LlmRunStatusFailed, &reason))
	})
	if err != nil {
		return err
	}
	return queue.Permanent(fmt.Errorf("pre-annotate version %d failed after %d model calls: %s", j.version.ID, u.calls, reason))
}

// MaxRawOutput bounds the raw reply a failed run keeps (llm_runs.raw_output), in
// bytes: enough to see what the model did wrong, not a copy of a runaway reply.
const MaxRawOutput = 8 << 10

// boundRaw cuts a raw reply to MaxRawOutput bytes on a character boundary,
// marking the cut.
func boundRaw(raw *string) *string {
	if raw == nil || len(*raw) <= MaxRawOutput {
		return raw
	}
	const mark = "…"
	cut := MaxRawOutput - len(mark)
	for cut > 0 && !utf8.RuneStart((*raw)[cut]) {
		cut--
	}
	s := (*raw)[:cut] + mark
	return &s
}

// notify writes a preannotation.* webhook event about version v in the caller's
// transaction, with the version's ids laid over data. For an organization with no
// endpoint that is one statement that writes nothing.
func notify(ctx context.Context, q *db.Queries, v db.FileVersion, typ, dedup string, data webhook.PreannotationData) error {
	data.FileVersionID, data.FileID, data.ProjectID = v.ID, v.FileID, v.ProjectID
	_, err := webhook.Emit(ctx, q, webhook.Event{
		OrgID: v.OrgID, ProjectID: &v.ProjectID, Type: typ, EntityType: db.EntityTypeFileVersion, EntityID: v.ID,
		DedupKey: dedup, Data: data,
	})
	return err
}

// runData is the webhook data of a run that ended with status.
func runData(run db.LlmRun, status db.LlmRunStatus, reason *string) webhook.PreannotationData {
	return webhook.PreannotationData{
		LLMRunID: &run.ID, OutputVersionID: run.OutputVersionID, Model: run.Model, Status: string(status), Reason: reason,
		PromptTokens: &run.PromptTokens, CompletionTokens: &run.CompletionTokens, CostUSD: &run.CostUsd,
	}
}

// taskID is the running task's id (the pipeline's own when there is none, as in a
// direct call).
func taskID(ctx context.Context, versionID int64) string {
	if id, ok := asynq.GetTaskID(ctx); ok && id != "" {
		return id
	}
	return tasks.Preannotate{VersionID: versionID}.TaskID()
}

// event writes the run's one event_log entry on the source version; the dedup key
// makes a redelivered task's entry a no-op.
func event(ctx context.Context, q *db.Queries, v db.FileVersion, typ, dedup string, meta map[string]any) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if err := q.EventLogInsert(ctx, db.EventLogInsertParams{
		OrgID: v.OrgID, EntityType: db.EntityTypeFileVersion, EntityID: v.ID, EventType: typ, DedupKey: &dedup, Metadata: b,
	}); err != nil {
		return fmt.Errorf("write %s event: %w", typ, err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
