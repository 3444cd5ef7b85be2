// Package storagesync is the storage:sync worker: it walks an import storage's
// bucket with ListObjectsV2, page by page, and registers what is new or changed
// through internal/ingest, each page in one transaction with the run's counts
// and checkpoint. A run that is killed, retried or redelivered resumes after its
// checkpoint; a page that did not commit is listed and registered again, and the
// storage link's primary key keeps any key from becoming a file twice.
package storagesync

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/heartbeat"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/publicerr"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
)

// Event types this package writes to event_log, on the sync run.
const (
	EventCompleted = "completed"
	EventFailed    = "failed"
	EventCancelled = "cancelled"
)

// Defaults for [Deps].
const (
	// DefaultPageSize is ListObjectsV2's largest page: one transaction per
	// thousand keys.
	DefaultPageSize = 1000
	// DefaultMaxAttempts bounds the runs (attempts) of one sync run. Each crash
	// or transient error costs one, and progress is kept between them, so
	// this only stops a run that can never get anywhere (one that kills its
	// worker every time, or an endpoint down for days).
	DefaultMaxAttempts = 25
)

// Deps are the handler's dependencies.
type Deps struct {
	Pool     *pgxpool.Pool
	Storages *storage.Resolver
	Log      *slog.Logger
	// Now stamps the run; nil is time.Now.
	Now func() time.Time
	// PageSize is the keys per listing page and per transaction (at most
	// 1000 on S3). Default DefaultPageSize.
	PageSize int
	// MaxAttempts is how many attempts a run gets. Default DefaultMaxAttempts.
	MaxAttempts int
	// Heartbeat is how often a running attempt writes the run's heartbeat_at
	// (LABELQ_HEARTBEAT_INTERVAL); 0 is heartbeat.DefaultInterval.
	Heartbeat time.Duration
}

// Handler is the storage:sync handler.
type Handler struct {
	pool        *pgxpool.Pool
	storages    *storage.Resolver
	log         *slog.Logger
	now         func() time.Time
	pageSize    int
	maxAttempts int
	beat        time.Duration

	// beforeCommit, set by tests only, runs in each page's transaction after
	// the page is registered and before it commits (page counts from 1 in
	// this attempt).
	beforeCommit func(ctx context.Context, page int)
	// afterPage, set by tests only, runs after a page that does not end the
	// run has committed.
	afterPage func(ctx context.Context, page int)
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler {
	h := &Handler{
		pool: d.Pool, storages: d.Storages, log: d.Log, now: d.Now,
		pageSize: cmp.Or(d.PageSize, DefaultPageSize), maxAttempts: cmp.Or(d.MaxAttempts, DefaultMaxAttempts),
		beat: d.Heartbeat,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

var errRunNotFound = errors.New("sync run not found")

// Work runs the task's sync run. Mount it with tasks.Register.
func (h *Handler) Work(ctx context.Context, args tasks.StorageSync) error {
	return h.Run(ctx, args.RunID)
}

// run is one attempt at one sync run.
type run struct {
	db.SyncRun
	// attempt is sync_runs.attempts as this attempt set it: every later write
	// is conditional on it, so an attempt that a newer one overtook (a
	// redelivery while it still ran) changes nothing.
	attempt int32
	st      db.Storage
	src     *storage.Source
	plan    *ingest.Plan
	log     *slog.Logger
}

// Run does one sync run, or what is left of it after its checkpoint. A run
// that is finished (completed, failed, cancelled) is left alone, so a
// redelivered task is a no-op.
func (h *Handler) Run(ctx context.Context, runID int64) error {
	log := logging.From(ctx, h.log).With(slog.Int64("sync_run_id", runID))
	rn, err := h.start(ctx, runID, log)
	if err != nil || rn == nil {
		return err
	}
	// The attempt beats until it returns, between pages and while a slow
	// listing page is fetched, so a worker that is gone shows as stalled
	// within a few beats.
	q := db.New(h.pool)
	stop := heartbeat.Start(ctx, h.beat, rn.log, func(ctx context.Context) (bool, error) {
		n, err := q.SyncRunHeartbeat(ctx, db.SyncRunHeartbeatParams{ID: rn.ID, Attempt: rn.attempt})
		return n > 0, err
	})
	defer stop()
	return h.walk(ctx, rn)
}

// start takes the run under its row lock: it checks the status, the attempts
// and the storage, and marks the run running with one more attempt.
func (h *Handler) start(ctx context.Context, id int64, log *slog.Logger) (*run, error) {
	var rn *run
	var failed string
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		r, err := q.SyncRunGetForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return errRunNotFound
		}
		if err != nil {
			return fmt.Errorf("lock sync run %d: %w", id, err)
		}
		switch r.Status {
		case db.SyncRunStatusCompleted, db.SyncRunStatusFailed, db.SyncRunStatusCancelled:
			log.InfoContext(ctx, "sync run already finished; nothing to do", slog.String("status", string(r.Status)))
			return nil
		}
		if r.CancelRequestedAt != nil {
			return h.finish(ctx, q, r, db.SyncRunStatusCancelled, nil)
		}
		fail := func(reason string) error {
			failed = reason
			return h.finish(ctx, q, r, db.SyncRunStatusFailed, &reason)
		}
		if int(r.Attempts) >= h.maxAttempts {
			return fail(fmt.Sprintf("gave up after %d attempts; the last one ended with: %s", r.Attempts, deref(r.Error, "no error recorded (the worker stopped)")))
		}
		st, err := q.StorageGetByID(ctx, r.StorageID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fail(fmt.Sprintf("storage %d no longer exists", r.StorageID))
		}
		if err != nil {
			return fmt.Errorf("read storage %d: %w", r.StorageID, err)
		}
		switch {
		case st.DeletedAt != nil:
			return fail(fmt.Sprintf("storage %d was deleted", st.ID))
		case !st.Enabled:
			return fail(fmt.Sprintf("storage %d is disabled; enable it and sync again", st.ID))
		case st.Kind != db.StorageKindImport:
			return fail(fmt.Sprintf("storage %d is an export storage; only import storages sync", st.ID))
		}
		plan, err := ingest.Compile(st)
		if err != nil {
			return fail(fmt.Sprintf("storage %d: %v", st.ID, err))
		}
		plan.Now = h.now
		started, err := q.SyncRunStart(ctx, db.SyncRunStartParams{ID: id, Now: h.now()})
		if err != nil {
			return fmt.Errorf("start sync run %d: %w", id, err)
		}
		rn = &run{SyncRun: started, attempt: started.Attempts, st: st, plan: plan,
			log: log.With(slog.Int64("storage_id", st.ID), slog.Int("attempt", int(started.Attempts)))}
		return nil
	})
	switch {
	case errors.Is(err, errRunNotFound):
		return nil, queue.Permanent(fmt.Errorf("sync run %d: %w", id, errRunNotFound))
	case err != nil:
		return nil, err
	case failed != "":
		return nil, queue.Permanent(fmt.Errorf("sync run %d: %s", id, failed))
	case rn == nil:
		return nil, nil
	}
	src, err := h.storages.Build(rn.st)
	if err != nil {
		// A storage whose endpoint is no longer allowed, or whose credentials
		// cannot be opened: no retry changes that.
		return nil, h.fail(ctx, rn, fmt.Sprintf("storage %d cannot be reached: %v", rn.st.ID, err))
	}
	rn.src = src
	return rn, nil
}

// walk lists the bucket after the checkpoint and commits it page by page.
func (h *Handler) walk(ctx context.Context, rn *run) error {
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	ls := h.list(lctx, rn)
	after := deref(rn.Checkpoint, "")
	for page := 1; ; page++ {
		objs, last, err := ls.next(h.pageSize)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("sync run %d interrupted after %q; it resumes from there: %w", rn.ID, after, ctx.Err())
			}
			return h.listFailed(ctx, rn, err)
		}
		done, err := h.commitPage(ctx, rn, page, after, objs, last)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("sync run %d interrupted after %q; it resumes from there: %w", rn.ID, after, ctx.Err())
			}
			return h.retry(ctx, rn, err)
		}
		if done {
			return nil
		}
		if h.afterPage != nil {
			h.afterPage(ctx, page)
		}
		if len(objs) > 0 {
			after = objs[len(objs)-1].Key
		}
	}
}

// commitPage registers one page in one transaction with the run's counts and
// checkpoint; done says the run stops here (completed with the last page,
// cancelled, or no longer this attempt's).
func (h *Handler) commitPage(ctx context.Context, rn *run, page int, after string, objs []ingest.Object, last bool) (done bool, err error) {
	var outcome string
	err = database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		r, err := q.SyncRunGetForUpdate(ctx, rn.ID)
		if err != nil {
			return fmt.Errorf("lock sync run %d: %w", rn.ID, err)
		}
		if r.Status != db.SyncRunStatusRunning || r.Attempts != rn.attempt {
			outcome = "overtaken"
			return nil
		}
		if r.CancelRequestedAt != nil {
			outcome = "cancelled"
			return h.finish(ctx, q, r, db.SyncRunStatusCancelled, nil)
		}
		c, err := ingest.Page(ctx, q, rn.st, rn.plan, after, objs, last)
		if err != nil {
			return err
		}
		total := counts(r)
		total.Add(c)
		skipped, err := json.Marshal(total.Skips)
		if err != nil {
			return fmt.Errorf("encode skipped keys: %w", err)
		}
		var checkpoint *string
		if len(objs) > 0 {
			checkpoint = &objs[len(objs)-1].Key
		}
		if err := q.SyncRunAddPage(ctx, db.SyncRunAddPageParams{
			ID: rn.ID, Attempt: rn.attempt, Checkpoint: checkpoint,
			Listed: c.Listed, New: c.New, Changed: c.Changed, Unchanged: c.Unchanged,
			Filtered: c.Filtered, Gone: c.Gone, SkippedCount: c.Skipped, Skipped: skipped,
		}); err != nil {
			return fmt.Errorf("record page %d of sync run %d: %w", page, rn.ID, err)
		}
		if h.beforeCommit != nil {
			h.beforeCommit(ctx, page)
		}
		if !last {
			return nil
		}
		outcome = "completed"
		r.Pages++
		setCounts(&r, total)
		return h.finish(ctx, q, r, db.SyncRunStatusCompleted, nil)
	})
	if err != nil {
		return false, err
	}
	switch outcome {
	case "overtaken":
		rn.log.InfoContext(ctx, "sync run taken over by a newer attempt or finished elsewhere; this one stops")
		return true, nil
	case "cancelled":
		rn.log.InfoContext(ctx, "sync run cancelled", slog.Int("pages", page-1))
		return true, nil
	case "completed":
		rn.log.InfoContext(ctx, "sync run completed", slog.Int("pages_this_attempt", page))
		return true, nil
	}
	return false, nil
}

// finish ends the run (under its row lock) and writes the event.
func (h *Handler) finish(ctx context.Context, q *db.Queries, r db.SyncRun, status db.SyncRunStatus, reason *string) error {
	done, err := q.SyncRunFinish(ctx, db.SyncRunFinishParams{ID: r.ID, Status: status, Error: reason, Now: h.now()})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // already finished
	}
	if err != nil {
		return fmt.Errorf("mark sync run %d %s: %w", r.ID, status, err)
	}
	typ := map[db.SyncRunStatus]string{
		db.SyncRunStatusCompleted: EventCompleted, db.SyncRunStatusFailed: EventFailed, db.SyncRunStatusCancelled: EventCancelled,
	}[status]
	meta := map[string]any{
		"storage_id": r.StorageID, "pages": r.Pages, "attempts": r.Attempts,
		"keys_listed": r.KeysListed, "keys_new": r.KeysNew, "keys_changed": r.KeysChanged,
		"keys_unchanged": r.KeysUnchanged, "keys_filtered": r.KeysFiltered, "keys_gone": r.KeysGone,
		"keys_skipped": r.KeysSkipped,
	}
	if status == db.SyncRunStatusCompleted {
		meta["checkpoint"] = done.Checkpoint
	}
	if reason != nil {
		meta["error"] = *reason
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", typ, err)
	}
	dedup := fmt.Sprintf("sync_run:%d:%s", r.ID, typ)
	if err := q.EventLogInsert(ctx, db.EventLogInsertParams{
		OrgID: r.OrgID, EntityType: db.EntityTypeSyncRun, EntityID: r.ID, EventType: typ, DedupKey: &dedup, Metadata: b,
	}); err != nil {
		return fmt.Errorf("write %s event: %w", typ, err)
	}
	return notify(ctx, q, done, dedup)
}

// webhookTypes are the webhook event types of a run's ends; a cancelled run has
// none.
var webhookTypes = map[db.SyncRunStatus]string{
	db.SyncRunStatusCompleted: webhook.StorageSyncCompleted,
	db.SyncRunStatusFailed:    webhook.StorageSyncFailed,
}

// notify writes the storage_sync.* webhook event of a run that has just ended, in
// the transaction that ended it, with its counts as committed. For an
// organization with no endpoint that is one statement that writes nothing.
func notify(ctx context.Context, q *db.Queries, r db.SyncRun, dedup string) error {
	typ, ok := webhookTypes[r.Status]
	if !ok {
		return nil
	}
	_, err := webhook.Emit(ctx, q, webhook.Event{
		OrgID: r.OrgID, ProjectID: &r.ProjectID, Type: typ, EntityType: db.EntityTypeSyncRun, EntityID: r.ID,
		DedupKey: dedup, Data: webhook.StorageSyncData{
			SyncRunID: r.ID, StorageID: r.StorageID, ProjectID: r.ProjectID, Status: string(r.Status), Trigger: r.Trigger,
			Pages: r.Pages, KeysListed: r.KeysListed, KeysNew: r.KeysNew, KeysChanged: r.KeysChanged,
			KeysUnchanged: r.KeysUnchanged, KeysFiltered: r.KeysFiltered, KeysGone: r.KeysGone, KeysSkipped: r.KeysSkipped,
			Reason: r.Error,
		},
	})
	return err
}

// fail ends the run as failed for good with a reason a person can act on.
func (h *Handler) fail(ctx context.Context, rn *run, reason string) error {
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		r, err := q.SyncRunGetForUpdate(ctx, rn.ID)
		if err != nil {
			return fmt.Errorf("lock sync run %d: %w", rn.ID, err)
		}
		if r.Status != db.SyncRunStatusRunning || r.Attempts != rn.attempt {
			return nil
		}
		return h.finish(ctx, q, r, db.SyncRunStatusFailed, &reason)
	})
	if err != nil {
		return fmt.Errorf("record the failure of sync run %d (%s): %w", rn.ID, reason, err)
	}
	return queue.Permanent(fmt.Errorf("sync run %d: %s", rn.ID, reason))
}

// listFailed sorts a listing error into a permanent failure (credentials,
// permissions, bucket) or a retry (network, timeouts, 5xx).
func (h *Handler) listFailed(ctx context.Context, rn *run, err error) error {
	if reason, ok := permanentReason(rn, err); ok {
		return h.fail(ctx, rn, reason)
	}
	return h.retry(ctx, rn, fmt.Errorf("list %s: %w", where(rn), err))
}

// retry notes a transient error on the run and hands it to asynq, which runs
// it again with backoff, from the checkpoint. On the last attempt the run
// fails instead of staying running.
func (h *Handler) retry(ctx context.Context, rn *run, err error) error {
	msg := h.publicReason(rn, err)
	if lastAttempt(ctx) || int(rn.attempt) >= h.maxAttempts {
		return h.fail(ctx, rn, fmt.Sprintf("gave up after %d attempts; the last one ended with: %s", rn.attempt, msg))
	}
	note := fmt.Sprintf("attempt %d did not finish, retrying from the checkpoint: %s", rn.attempt, msg)
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, nerr := db.New(h.pool).SyncRunNoteError(nctx, db.SyncRunNoteErrorParams{ID: rn.ID, Attempt: rn.attempt, Error: note}); nerr != nil {
		rn.log.WarnContext(ctx, "could not note the error on the sync run", slog.String("error", nerr.Error()))
	}
	return fmt.Errorf("sync run %d: %w", rn.ID, err)
}

// publicReason is the text of a transient error the tenant may read on the run:
// the tenant's own endpoint may be named, labelq's own never is.
func (h *Handler) publicReason(rn *run, err error) string {
	if rn.src == nil || rn.src.Own {
		return publicerr.Reason(err, publicerr.Storage)
	}
	return fmt.Sprintf("listing %s failed (%s); labelq will try again", where(rn),
		publicerr.Reason(err, "the endpoint did not answer or refused the connection"))
}

// lastAttempt reports whether asynq will not retry this task after a failure.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	m, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= m
}

// where names the bucket for messages: `bucket "b" at host:port`.
func where(rn *run) string {
	if rn.src == nil || rn.src.Own {
		return fmt.Sprintf("prefix %q of labelq's bucket", rn.st.Prefix)
	}
	return fmt.Sprintf("bucket %q at %s", rn.st.Bucket, rn.st.Endpoint)
}

// permanentReason says, for a person, why listing can never work without a
// change to the storage or the key's permissions. No secret is in it: only
// the access key hint.
func permanentReason(rn *run, err error) (string, bool) {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		var ena *storage.ErrEndpointNotAllowed
		if errors.As(err, &ena) {
			return ena.Error(), true
		}
		return "", false
	}
	key := rn.st.AccessKeyHint
	if key == "" {
		key = "(none)"
	}
	prefix := ""
	if rn.st.Prefix != "" {
		prefix = fmt.Sprintf(" and prefix %q", rn.st.Prefix)
	}
	denied := fmt.Sprintf("access denied listing %s with access key %s", where(rn), key)
	switch er.Code {
	case "AccessDenied", "AllAccessDisabled":
		return fmt.Sprintf("%s: check the key's s3:ListBucket permission on the bucket%s", denied, prefix), true
	case "InvalidAccessKeyId":
		return fmt.Sprintf("%s: the endpoint does not know this access key (InvalidAccessKeyId); check the storage's access key id", denied), true
	case "SignatureDoesNotMatch":
		return fmt.Sprintf("%s: the secret key does not match the access key (SignatureDoesNotMatch); check the storage's secret access key", denied), true
	case "InvalidToken", "ExpiredToken", "TokenRefreshRequired":
		return fmt.Sprintf("%s: the session token is invalid or expired (%s); update the storage's credentials", denied, er.Code), true
	case "AuthorizationHeaderMalformed":
		return fmt.Sprintf("%s: the request was signed for the wrong region (%s); check the storage's region", denied, er.Message), true
	case "NoSuchBucket":
		return fmt.Sprintf("%s does not exist: check the storage's bucket name and endpoint", where(rn)), true
	case "InvalidBucketName":
		return fmt.Sprintf("%q is not a valid bucket name: check the storage's bucket", rn.st.Bucket), true
	}
	return "", false
}

// counts is a run's counts so far, with its skipped keys.
func counts(r db.SyncRun) ingest.Counts {
	c := ingest.Counts{
		Listed: r.KeysListed, New: r.KeysNew, Changed: r.KeysChanged, Unchanged: r.KeysUnchanged,
		Filtered: r.KeysFiltered, Gone: r.KeysGone, Skipped: r.KeysSkipped,
	}
	if len(r.Skipped) > 0 {
		_ = json.Unmarshal(r.Skipped, &c.Skips) // written by this package; a bad value only loses the list
	}
	return c
}

func setCounts(r *db.SyncRun, c ingest.Counts) {
	r.KeysListed, r.KeysNew, r.KeysChanged, r.KeysUnchanged = c.Listed, c.New, c.Changed, c.Unchanged
	r.KeysFiltered, r.KeysGone, r.KeysSkipped = c.Filtered, c.Gone, c.Skipped
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
