package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/heartbeat"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/publicerr"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/zipstream"
)

// Event types this package writes to event_log, on the export.
const (
	// EventStarted is written once per run (attempt) that takes the export.
	EventStarted = "export_started"
	// EventExported is written once, when the archive is recorded as completed.
	EventExported = "exported"
	// EventFailed is written once, when the export fails for good.
	EventFailed = "export_failed"
	// EventPurged is written once, when retention deletes the archive.
	EventPurged = "export_purged"
)

// Defaults for [Options].
const (
	DefaultProgressEvery = time.Second
	// DefaultPartSize is the multipart part size for exports up to about
	// 78 GiB; larger ones get larger parts (see partSize). The upload holds
	// one part in memory, and the garbage collector lets the heap grow to
	// about twice what is live, so every MiB here costs two of RSS.
	DefaultPartSize = 8 << 20
	// DefaultMaxBuffered bounds the compressed entries waiting for their turn
	// in the archive (zipstream's default is 64 MiB). 16 MiB keeps the four
	// default workers busy while a part uploads, and the process under about
	// 90 MiB of RSS (BenchmarkExport2000x512KiB).
	DefaultMaxBuffered = 16 << 20
	// DefaultMaxAttempts is how many runs an export gets before it is failed
	// for good. Each crash or transient error costs one; the reconciler keeps
	// requeueing a stuck export, so without a cap one that always kills its
	// worker would run forever.
	DefaultMaxAttempts = 10
)

// Options tune the handler. The zero value is usable.
type Options struct {
	// ReadConcurrency is how many task objects (results, predictions,
	// texts) a converted export reads at once. Default
	// DefaultReadConcurrency.
	ReadConcurrency int
	// Concurrency is how many files are fetched, hashed and compressed at
	// once. Default zipstream.DefaultConcurrency.
	Concurrency int
	// ProgressEvery is how often the row's progress is written, which is
	// also how often the run checks whether it was cancelled. Default 1s.
	ProgressEvery time.Duration
	// PartSize is the smallest multipart part size; an export too large for
	// S3's 10,000 parts of this size uses larger parts. Default
	// DefaultPartSize; S3 refuses parts under 5 MiB.
	PartSize uint64
	// MaxBuffered is zipstream's bound on buffered entry data. Default
	// DefaultMaxBuffered.
	MaxBuffered int64
	// Level is the deflate level, 1-9. Default zipstream.DefaultLevel.
	Level int
	// MaxAttempts is how many runs an export gets. Default DefaultMaxAttempts.
	MaxAttempts int
	// SpillAfter is how many deflated bytes of the archive's central
	// directory and of a converted export's manifest are held in memory
	// before they move to the bucket beside the archive. Default
	// DefaultSpillAfter.
	SpillAfter int64
}

// Deps are the handler's dependencies.
type Deps struct {
	Pool *pgxpool.Pool
	// Store is labelq's own bucket: where archives go by default, and where a
	// version with no storage_id is read from.
	Store *storage.Store
	// Storages reaches the storages versions' and exports' storage_id name.
	// Nil: only Store is known, and an export that needs a storage is retried
	// until the worker is wired with a resolver.
	Storages *storage.Resolver
	Log      *slog.Logger
	// Metrics is optional: without it nothing is reported to Prometheus.
	Metrics *metrics.Metrics
	// Now stamps started_at and completed_at; nil means time.Now.
	Now func() time.Time
	// Version is labelq's version, written in manifest.json. Default "dev".
	Version string
	// Heartbeat is how often a running export writes its heartbeat_at
	// (LABELQ_HEARTBEAT_INTERVAL); 0 is heartbeat.DefaultInterval.
	Heartbeat time.Duration
	Options   Options
}

// Handler is the project:export handler.
//
// A run of an export goes: take the row (start), stream the archive into a
// multipart upload at the run's own key (pack), then finish the upload and
// record it (complete). No row lock is held during any call to the bucket: a
// cancel never waits on S3. Any run may be redelivered, cut off or overtaken,
// so:
//   - each run is identified by the attempts count it set, and every later
//     write is conditional on it: a run that a newer one overtook can change
//     nothing, and notices within ProgressEvery that it should stop;
//   - each run uploads to a key of its own (objectKey), and the row records
//     only the key of the run that completed it, so the object the row names
//     is always the one it describes; a run whose record is refused (the
//     export was cancelled or overtaken meanwhile) deletes its own object;
//   - failed and cancelled exports delete every object of the export, and
//     each run first deletes what earlier runs left (objects and multipart
//     uploads a killed worker could not abort).
type Handler struct {
	pool     *pgxpool.Pool
	storages *storage.Resolver
	open     func(it item) zipstream.Opener
	log      *slog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	version  string
	beat     time.Duration
	opts     Options

	// onProgress, set by tests only, runs after each progress snapshot on the
	// goroutine writing the archive, with the pack's context.
	onProgress func(ctx context.Context, p zipstream.Progress)
	// beforeFinish, set by tests only, runs just before the upload is
	// completed in the bucket: a slow S3 step a test can hold.
	beforeFinish func(ctx context.Context)
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler {
	h := &Handler{
		pool: d.Pool, storages: d.Storages, log: d.Log, metrics: d.Metrics, now: d.Now, version: d.Version, opts: d.Options,
		beat: d.Heartbeat,
	}
	if h.storages == nil {
		h.storages = storage.OwnOnly(d.Store)
	}
	h.open = h.openItem
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.version == "" {
		h.version = "dev"
	}
	if h.opts.ProgressEvery <= 0 {
		h.opts.ProgressEvery = DefaultProgressEvery
	}
	if h.opts.PartSize == 0 {
		h.opts.PartSize = DefaultPartSize
	}
	if h.opts.MaxBuffered <= 0 {
		h.opts.MaxBuffered = DefaultMaxBuffered
	}
	if h.opts.MaxAttempts <= 0 {
		h.opts.MaxAttempts = DefaultMaxAttempts
	}
	if h.opts.ReadConcurrency <= 0 {
		h.opts.ReadConcurrency = DefaultReadConcurrency
	}
	if h.opts.SpillAfter <= 0 {
		h.opts.SpillAfter = DefaultSpillAfter
	}
	return h
}

var (
	errExportNotFound = errors.New("export not found")
	// errInterrupted is the cause a pack is stopped with when its row says
	// the run is no longer wanted: cancelled, or taken over by a newer run.
	errInterrupted = errors.New("export cancelled or taken over by a newer run")
	// errNotOwner aborts an upload whose run found, at the end, that the row
	// had moved on without it.
	errNotOwner = errors.New("export no longer owned by this run")
)

// Work runs the task's export. An export that does not exist is permanent: asynq
// archives the task instead of retrying it. Mount it with tasks.Register.
func (h *Handler) Work(ctx context.Context, args tasks.Export) error {
	return h.Run(ctx, args.ExportID)
}

// run is one attempt at one export.
type run struct {
	id, orgID, projectID int64
	// attempt is export_logs.attempts as this run set it: every later write
	// of the run is conditional on it, so a run that a newer one overtook
	// (a redelivery while it still ran) can no longer change the row.
	attempt int32
	// dst is where the archive goes: labelq's bucket, or the export's
	// storage. Nil when that storage cannot be used (nothing is uploaded, and
	// nothing can be cleaned up there).
	dst      *storage.Source
	key      string
	modified time.Time
	// plan is what a labelq-layout run packs; format what a converted run
	// reads (formatName is the export's format, labelq or a converted one).
	// Exactly one of plan and format is set.
	plan       *plan
	format     *formatPlan
	formatName string
	// note is what the completed row says beside the archive: why it packs
	// no file (emptyReason), or what a conversion left out; "" when there is
	// nothing to say.
	note    string
	started time.Time
	log     *slog.Logger
}

// Run produces one export: it takes the row, streams the archive into the
// bucket and records it. A finished export (completed, failed or cancelled) is
// left as it is, so a redelivered task is a no-op. Every run starts from
// scratch; its object key is the export's, so a retry overwrites what an
// interrupted run may have left rather than adding to it.
func (h *Handler) Run(ctx context.Context, exportID int64) error {
	log := logging.From(ctx, h.log).With(slog.Int64("export_id", exportID))
	rn, err := h.start(ctx, exportID, log)
	if err != nil || rn == nil {
		return err
	}
	// The run beats until it returns, whatever it is doing (cleaning up
	// earlier runs, packing, completing the upload), so a worker that is gone
	// shows as stalled within a few beats.
	q := db.New(h.pool)
	stop := heartbeat.Start(ctx, h.beat, rn.log, func(ctx context.Context) (bool, error) {
		n, err := q.ExportLogHeartbeat(ctx, db.ExportLogHeartbeatParams{ID: rn.id, Attempt: rn.attempt})
		return n > 0, err
	})
	defer stop()
	return h.pack(ctx, rn)
}

// start takes the export in one transaction: under the row lock it checks the
// status, selects the content, and sets running, the attempt and the totals.
func (h *Handler) start(ctx context.Context, id int64, log *slog.Logger) (*run, error) {
	dst, unusable, err := h.target(ctx, id)
	if err != nil {
		return nil, err
	}
	var rn, leftover *run
	var failed string // a reason the export can never succeed, written on the row
	err = database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		e, err := q.ExportLogGetForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return errExportNotFound
		}
		if err != nil {
			return fmt.Errorf("lock export %d: %w", id, err)
		}
		switch e.Status {
		case db.ExportStatusFailed, db.ExportStatusCancelled:
			// A run may have completed its upload and died, or been cut off,
			// before it could delete it: no archive may outlive the export.
			leftover = &run{id: id, orgID: e.OrgID, projectID: e.ProjectID, attempt: e.Attempts, dst: dst, log: log}
			fallthrough
		case db.ExportStatusCompleted:
			log.InfoContext(ctx, "export already finished; nothing to do", slog.String("status", string(e.Status)))
			return nil
		}
		fail := func(reason string) error {
			failed = reason
			leftover = &run{id: id, orgID: e.OrgID, projectID: e.ProjectID, attempt: e.Attempts, dst: dst, log: log}
			return recordFailure(ctx, q, e, e.Attempts, reason, h.now())
		}
		if unusable != nil {
			return fail(fmt.Sprintf("the export storage cannot be used: %s; fix it, or request the export again without storage_id", unusable.Error()))
		}
		if int(e.Attempts) >= h.opts.MaxAttempts {
			return fail(fmt.Sprintf("gave up after %d attempts; the last one ended with: %s", e.Attempts, deref(e.Error)))
		}
		project := func() (db.Project, error) {
			pr, err := q.ProjectGetByID(ctx, e.ProjectID)
			if errors.Is(err, pgx.ErrNoRows) || err == nil && pr.OrgID != e.OrgID {
				return pr, fail(fmt.Sprintf("project %d no longer exists", e.ProjectID))
			}
			if err != nil {
				return pr, fmt.Errorf("read project %d: %w", e.ProjectID, err)
			}
			return pr, nil
		}
		empty := func(why func(emptyFacts) string) (string, error) {
			facts, err := q.ExportLogEmptyFacts(ctx, db.ExportLogEmptyFactsParams{ProjectID: e.ProjectID, OrgID: e.OrgID})
			if err != nil {
				return "", fmt.Errorf("count what export %d could have packed: %w", id, err)
			}
			return why(facts), nil
		}
		var (
			pl         *plan
			fp         *formatPlan
			note       string
			filesTotal int32
			bytesTotal int64
			skipped    int
		)
		if e.Format == labelconfig.FormatLabelq {
			sel, err := parseSelection(e.Options)
			if err != nil {
				return fail(err.Error())
			}
			pr, err := project()
			if err != nil || failed != "" {
				return err
			}
			rows, err := q.FileVersionListForExport(ctx, db.FileVersionListForExportParams{
				ProjectID: e.ProjectID, OrgID: e.OrgID,
				IncludeFiles: *sel.IncludeFiles, IncludeAnnotations: *sel.IncludeAnnotations, IncludeLlm: *sel.IncludeLLM,
				IncludeConsensus: *sel.IncludeConsensus,
			})
			if err != nil {
				return fmt.Errorf("select the versions of project %d: %w", e.ProjectID, err)
			}
			if pl, err = buildPlan(e, pr, sel, rows, h.version); err != nil {
				return fmt.Errorf("plan export %d: %w", id, err)
			}
			if len(pl.items) > math.MaxInt32-2 {
				return fail(fmt.Sprintf("%d files are more than one archive can hold", len(pl.items)))
			}
			if len(pl.items) == 0 {
				// Whether the project has a consensus result at all, read only
				// when consensus results were asked for and none was packed.
				consensus := false
				if *sel.IncludeConsensus {
					cr, err := q.ConsensusResultList(ctx, db.ConsensusResultListParams{ProjectID: e.ProjectID, OrgID: e.OrgID, MaxRows: 1})
					if err != nil {
						return fmt.Errorf("look for the consensus results of project %d: %w", e.ProjectID, err)
					}
					consensus = len(cr) > 0
				}
				if note, err = empty(func(f emptyFacts) string { return emptyReason(sel, f, consensus, pl.skipped) }); err != nil {
					return err
				}
			}
			filesTotal, bytesTotal, skipped = int32(len(pl.items)), pl.bytes, len(pl.skipped)
		} else {
			pr, err := project()
			if err != nil || failed != "" {
				return err
			}
			var reason string
			if fp, reason, err = planFormat(ctx, q, e, pr, h.version); err != nil {
				return err
			}
			if reason != "" {
				return fail(reason)
			}
			if fp.totals.Tasks == 0 {
				if note, err = empty(fp.emptyReason); err != nil {
					return err
				}
			}
			filesTotal, bytesTotal, skipped = int32(fp.totals.Tasks), fp.bytes, int(fp.totals.Skipped)
		}
		now := h.now()
		st, err := q.ExportLogStart(ctx, db.ExportLogStartParams{
			ID: id, StartedAt: &now, FilesTotal: filesTotal, BytesTotal: bytesTotal,
		})
		if err != nil {
			return fmt.Errorf("start export %d: %w", id, err)
		}
		rn = &run{
			id: id, orgID: e.OrgID, projectID: e.ProjectID, attempt: st.Attempts, dst: dst,
			key: objectKey(dst, e.OrgID, e.ProjectID, id, st.Attempts), modified: e.RequestedAt, plan: pl, format: fp,
			formatName: e.Format, note: note, started: now,
		}
		rn.log = log.With(slog.Int64("project_id", e.ProjectID), slog.Int("attempt", int(st.Attempts)))
		if pl != nil && len(pl.skipped) > 0 {
			ids := make([]int64, 0, min(len(pl.skipped), 100))
			for _, s := range pl.skipped[:cap(ids)] {
				ids = append(ids, s.versionID)
			}
			rn.log.WarnContext(ctx, "versions left out of the export: not valid or never measured",
				slog.Int("count", len(pl.skipped)), slog.Any("version_ids", ids))
		}
		return event(ctx, q, e.OrgID, id, EventStarted, fmt.Sprintf("export:%d:started:%d", id, st.Attempts), map[string]any{
			"attempt": st.Attempts, "files_total": filesTotal, "bytes_total": bytesTotal, "skipped": skipped, "format": e.Format,
		})
	})
	switch {
	case errors.Is(err, errExportNotFound):
		return nil, queue.Permanent(fmt.Errorf("export %d: %w", id, errExportNotFound))
	case err != nil:
		return nil, err
	case failed != "":
		// Failed before this run uploaded anything; earlier runs may have.
		h.removeArchives(ctx, leftover, "")
		return nil, queue.Permanent(fmt.Errorf("export %d: %s", id, failed))
	case leftover != nil:
		h.removeArchives(ctx, leftover, "")
		return nil, nil
	}
	return rn, nil
}

// target finds where export id's archive goes: labelq's bucket, or the export
// storage its storage_id names. The storage is looked up before the row is
// locked (storage_id never changes once the export exists), so no lock is held
// across that read. A storage that cannot be used as it is (deleted, endpoint
// no longer allowed, credentials not opening) comes back as unusable, and the
// export fails with that reason; failing to read the storage's row is an
// error, and the export is retried.
func (h *Handler) target(ctx context.Context, id int64) (dst *storage.Source, unusable *storage.UnusableError, err error) {
	storageID, err := db.New(h.pool).ExportLogGetStorage(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, queue.Permanent(fmt.Errorf("export %d: %w", id, errExportNotFound))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read export %d: %w", id, err)
	}
	dst, err = h.storages.Resolve(ctx, storageID)
	if errors.As(err, &unusable) {
		return nil, unusable, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("find the export storage of export %d: %w", id, err)
	}
	return dst, nil, nil
}

// pack streams the archive into the bucket and, when it is whole, records it.
func (h *Handler) pack(ctx context.Context, rn *run) error {
	// A worker killed mid-upload never aborts its multipart upload, and one
	// killed after completing it never records or deletes the object; either
	// would sit in the bucket, unseen and billed. This run has just taken the
	// export over, so what earlier runs left is no one's any more.
	h.removeArchives(ctx, rn, rn.key)

	pctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	up := h.startUpload(ctx, rn.dst.Store, rn.key, rn.partSize(h.opts.PartSize))
	hw := zipstream.NewHashingWriter(up.pw)
	mon := h.startMonitor(ctx, rn, func(cause error) {
		stop(cause)
		// The writer may be blocked on the pipe while a part uploads; closing
		// it makes that write fail now instead of after the part.
		up.interrupt(cause)
	})
	// The central directory and the manifest, which grow with the entries,
	// go to the bucket past SpillAfter bytes each.
	spill := newSpillStore(pctx, rn.dst.Store, rn.key)
	defer spill.removeAll(ctx, rn.log)
	zopts := zipstream.Options{
		Modified: rn.modified, Concurrency: h.opts.Concurrency, MaxBuffered: h.opts.MaxBuffered, Level: h.opts.Level,
		Spiller: spill, SpillAfter: h.opts.SpillAfter,
		Progress: func(p zipstream.Progress) {
			mon.observe(p)
			if h.onProgress != nil {
				h.onProgress(pctx, p)
			}
		},
	}
	var conv *conversion
	if rn.format != nil {
		// The manifest is written entry by entry (OnEntry), so the writer
		// keeps no results of its own: a label file per task would add up.
		conv = h.newConversion(rn)
		zopts.OnEntry, zopts.DiscardResults = conv.onEntry, true
	}
	zw := zipstream.NewWriter(hw, zopts)
	var err error
	if conv != nil {
		err = conv.run(pctx, zw)
	} else {
		_, err = zw.Pack(pctx, rn.plan.entries(h.open))
	}
	if err == nil {
		err = zw.Close()
	}
	mon.stop(hw.Size())
	if err != nil {
		up.abort(err)
		return h.packFailed(ctx, rn, err, context.Cause(pctx), up.ownErr())
	}
	return h.complete(ctx, rn, up, hw)
}

// packFailed sorts out why a pack stopped. Nothing of the archive is left in
// the bucket at this point: the upload was aborted before this is called.
func (h *Handler) packFailed(ctx context.Context, rn *run, err, cause, uploadErr error) error {
	switch {
	case errors.Is(cause, errInterrupted):
		return h.interrupted(ctx, rn)
	case ctx.Err() != nil:
		// Shutdown, the task's timeout or a lost lease. The row stays running
		// and the next delivery (asynq's, or the reconciler's) starts over.
		return fmt.Errorf("export %d interrupted before it finished; it will run again from the start: %w", rn.id, err)
	}
	if reason, ok := permanentReason(err); ok {
		h.revalidateChanged(ctx, rn, err)
		return h.fail(ctx, rn, reason, err)
	}
	if uploadErr != nil {
		// An export storage refusing the archive (credentials, permissions, a
		// bucket gone) is its owner's to fix: retrying cannot help.
		if reason := rn.dst.Refusal("write", rn.key, uploadErr); reason != "" {
			return h.fail(ctx, rn, reason, uploadErr)
		}
		err = fmt.Errorf("upload archive: %w", uploadErr)
	}
	return h.retry(ctx, rn, err)
}

// permanentReason says, for a person, why an error can never go away by
// retrying: the stored bytes are not the ones validation vouched for.
func permanentReason(err error) (string, bool) {
	const fix = "re-upload or re-validate the file"
	var cm *zipstream.ChecksumMismatchError
	var sm *zipstream.SizeMismatchError
	var ee *zipstream.EntryError
	var ue *storage.UnusableError
	var re *refusedError
	var fe *formatError
	switch {
	case errors.As(err, &fe):
		return fe.reason, true
	case errors.As(err, &ee) && errors.As(ee.Err, &ue):
		// The version's storage cannot be used as it is (deleted, endpoint no
		// longer allowed, credentials not opening): not a passing outage.
		return fmt.Sprintf("%s (version %d): %s; fix the storage or leave the file out, then request the export again",
			ee.Path, ee.VersionID, ue.Error()), true
	case errors.As(err, &ee) && errors.As(ee.Err, &re):
		return fmt.Sprintf("%s (version %d): %s; then request the export again", ee.Path, ee.VersionID, re.reason), true
	case errors.As(err, &cm):
		return fmt.Sprintf("%s (version %d): stored bytes no longer match the recorded SHA-256 (recorded %s, read %s); %s",
			cm.Path, cm.VersionID, cm.Expected, cm.Got, fix), true
	case errors.As(err, &sm) && sm.Got > sm.Expected:
		return fmt.Sprintf("%s (version %d): the stored object is longer than the recorded %d bytes; %s",
			sm.Path, sm.VersionID, sm.Expected, fix), true
	case errors.As(err, &sm):
		return fmt.Sprintf("%s (version %d): the stored object has %d bytes, the recorded size is %d; %s",
			sm.Path, sm.VersionID, sm.Got, sm.Expected, fix), true
	case errors.As(err, &ee) && noSuchKey(ee.Err):
		// Validated objects do not come back by themselves; retrying only
		// delays the message. (A missing bucket is a configuration error
		// and stays transient.)
		return fmt.Sprintf("%s (version %d): the stored object is missing from the bucket; re-upload the file",
			ee.Path, ee.VersionID), true
	case errors.Is(err, zipstream.ErrInvalidEntry):
		return "internal error, please report it: " + err.Error(), true
	}
	return "", false
}

func noSuchKey(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && er.Code == "NoSuchKey"
}

// fail records a permanent failure, unless the row moved on meanwhile, and
// then deletes every archive of the export: an earlier attempt may have
// finished its upload and died before recording it, and no archive may
// outlive a failed export. The bucket is called after the commit, never under
// the row lock.
func (h *Handler) fail(ctx context.Context, rn *run, reason string, cause error) error {
	recorded := false
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		e, err := q.ExportLogGetForUpdate(ctx, rn.id)
		if err != nil {
			return fmt.Errorf("lock export %d: %w", rn.id, err)
		}
		if e.Status != db.ExportStatusRunning || e.Attempts != rn.attempt {
			return nil
		}
		recorded = true
		return recordFailure(ctx, q, e, rn.attempt, reason, h.now())
	})
	if err != nil {
		// The row is still running: the retry meets the same bytes and fails
		// then.
		return fmt.Errorf("record the failure of export %d (%s): %w", rn.id, reason, err)
	}
	if !recorded {
		return h.interrupted(ctx, rn)
	}
	h.removeArchives(ctx, rn, "")
	return queue.Permanent(fmt.Errorf("export %d: %s: %w", rn.id, reason, cause))
}

// retry notes a transient error on the row and hands it to asynq, which runs
// the export again with backoff.
func (h *Handler) retry(ctx context.Context, rn *run, err error) error {
	// The row is read by the tenant: a transport error's addresses stay in the log.
	msg := fmt.Sprintf("attempt %d did not finish, retrying: %s", rn.attempt, publicerr.Reason(err, publicerr.Storage))
	rn.log.WarnContext(ctx, "export attempt did not finish; retrying", slog.Int("attempt", int(rn.attempt)), slog.String("error", err.Error()))
	n, nerr := db.New(h.pool).ExportLogNoteError(ctx, db.ExportLogNoteErrorParams{ID: rn.id, Attempt: rn.attempt, Error: &msg})
	if nerr == nil && n == 0 {
		// Cancelled or taken over while this run failed: not this run's
		// business any more.
		return h.interrupted(ctx, rn)
	}
	if nerr != nil {
		rn.log.WarnContext(ctx, "could not note the error on the export", slog.String("error", nerr.Error()))
	}
	return fmt.Errorf("export %d: %w", rn.id, err)
}

// interrupted ends a run whose row no longer wants it. A cancelled or failed
// export keeps its status, and no archive of it may stay in the bucket; an
// export a newer run took over (or completed) is that run's to finish, and
// only this run's own object, if it made one, is deleted.
func (h *Handler) interrupted(ctx context.Context, rn *run) error {
	e, err := db.New(h.pool).ExportLogGet(ctx, db.ExportLogGetParams{ID: rn.id, OrgID: rn.orgID})
	if err != nil {
		return fmt.Errorf("read export %d: %w", rn.id, err)
	}
	status, attempts := e.Status, e.Attempts
	switch {
	case status == db.ExportStatusCancelled || status == db.ExportStatusFailed:
		h.removeArchives(ctx, rn, "")
	case attempts != rn.attempt || status == db.ExportStatusCompleted:
		h.removeObject(ctx, rn, rn.key)
	}
	switch {
	case status == db.ExportStatusCancelled:
		rn.log.InfoContext(ctx, "export cancelled; upload aborted and no archive kept")
		return nil
	case attempts != rn.attempt:
		rn.log.InfoContext(ctx, "export taken over by a newer run; this one stops", slog.Int("newer_attempt", int(attempts)))
		return nil
	case status == db.ExportStatusRunning:
		return fmt.Errorf("export %d stopped although its row still says running; retrying", rn.id)
	}
	rn.log.InfoContext(ctx, "export finished elsewhere; this run stops", slog.String("status", string(status)))
	return nil
}

// complete finishes the upload and records the export, claim, release, act:
// it checks the row is still this run's (no lock), completes the upload at the
// run's own key with no transaction open, and then records it in one short
// transaction conditional on the run's attempt. A cancel is never kept waiting
// on S3: one that arrives before the record makes it fail, and the run deletes
// its object (the export stays cancelled, with no archive); one that arrives
// after finds the export completed. A newer run uploads to a key of its own, so
// the object the row names is always the one it describes.
func (h *Handler) complete(ctx context.Context, rn *run, up *upload, hw *zipstream.HashingWriter) error {
	q := db.New(h.pool)
	e, err := q.ExportLogGet(ctx, db.ExportLogGetParams{ID: rn.id, OrgID: rn.orgID})
	if err != nil {
		up.abort(err)
		return h.retry(ctx, rn, fmt.Errorf("read export %d: %w", rn.id, err))
	}
	if e.Status != db.ExportStatusRunning || e.Attempts != rn.attempt {
		up.abort(errNotOwner)
		return h.interrupted(ctx, rn)
	}
	if h.beforeFinish != nil {
		h.beforeFinish(ctx)
	}
	info, err := up.finish()
	if err != nil {
		if reason := rn.dst.Refusal("write", rn.key, err); reason != "" {
			return h.fail(ctx, rn, reason, err)
		}
		return h.retry(ctx, rn, fmt.Errorf("upload archive: %w", err))
	}
	if info.Size != hw.Size() {
		h.removeObject(ctx, rn, rn.key)
		return h.retry(ctx, rn, fmt.Errorf("upload archive: the bucket took %d bytes of %d", info.Size, hw.Size()))
	}
	var done db.ExportLog
	stale := false
	err = database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		now := h.now()
		sum, size, count := hw.SHA256(), hw.Size(), rn.fileCount()
		var err error
		var note *string
		if rn.note != "" {
			note = &rn.note
		}
		done, err = q.ExportLogComplete(ctx, db.ExportLogCompleteParams{
			ID: rn.id, Attempt: rn.attempt, StoragePath: &rn.key, ArchiveSha256: &sum, SizeBytes: &size,
			FileCount: &count, Note: note, CompletedAt: &now,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			stale = true // cancelled, failed or overtaken while the upload completed
			return nil
		}
		if err != nil {
			return fmt.Errorf("complete export %d: %w", rn.id, err)
		}
		ids, paths := rn.exportedFiles()
		if err := q.ExportedFileInsertBatch(ctx, db.ExportedFileInsertBatchParams{
			ExportID: rn.id, OrgID: rn.orgID, FileVersionIds: ids, ArchivePaths: paths,
		}); err != nil {
			return fmt.Errorf("record the files of export %d: %w", rn.id, err)
		}
		meta := map[string]any{
			"attempt": rn.attempt, "files": count, "bytes": rn.bytes(), "size_bytes": size, "sha256": sum,
			"storage_path": rn.key, "skipped": rn.skipped(), "duration_ms": now.Sub(rn.started).Milliseconds(),
			"format": rn.formatName,
		}
		if fp := rn.format; fp != nil {
			meta["tasks"], meta["unparsed_results"], meta["dropped_predictions"] = fp.tasks, fp.unparsed.n, fp.dropped.n
		}
		if rn.dst.StorageID != 0 {
			meta["storage_id"] = rn.dst.StorageID
		}
		if note != nil {
			meta["note"] = *note
		}
		key := fmt.Sprintf("export:%d:exported", rn.id)
		if err := event(ctx, q, rn.orgID, rn.id, EventExported, key, meta); err != nil {
			return err
		}
		files, path := int64(count), downloadPath(rn.id)
		data := webhook.ExportData{
			ExportID: rn.id, ProjectID: rn.projectID, Status: string(db.ExportStatusCompleted), Trigger: trigger(done),
			Format: rn.formatName, DownloadPath: &path, SizeBytes: &size, ChecksumSHA256: &sum, Files: &files,
		}
		if rn.dst.StorageID != 0 {
			// The tenant's own bucket: where the archive is is theirs to know.
			data.StorageID, data.StorageKey = &rn.dst.StorageID, &rn.key
		}
		return notify(ctx, q, rn.orgID, rn.id, webhook.ExportCompleted, key, data)
	})
	if err != nil {
		// The commit's outcome is unknown, so the object stays: if the row
		// says completed it is the export's archive, and if it says running
		// the retry (a newer attempt, at a key of its own) deletes it.
		return h.retry(ctx, rn, err)
	}
	if stale {
		return h.interrupted(ctx, rn)
	}
	elapsed := h.now().Sub(rn.started)
	attrs := []any{
		slog.Int("files", int(deref(done.FileCount))), slog.Int64("bytes", rn.bytes()), slog.String("format", rn.formatName),
		slog.Int64("size_bytes", deref(done.SizeBytes)), slog.String("sha256", deref(done.ArchiveSha256)),
		slog.Duration("elapsed", elapsed),
	}
	if rn.note != "" {
		attrs = append(attrs, slog.String("note", rn.note))
	}
	rn.log.InfoContext(ctx, "export completed", attrs...)
	return nil
}

// removeArchives deletes the objects and aborts the multipart uploads of every
// run of the export up to rn.attempt except the one at keep (none when keep is empty), and the
// archive at the key exports used before runs had keys of their own. Call it
// only when no run other than keep's may still record a completion: the export
// is cancelled or failed, or keep's run has just taken it over. Like every
// bucket call here it runs with no row lock held.
func (h *Handler) removeArchives(ctx context.Context, rn *run, keep string) {
	if rn.dst == nil {
		// The export storage cannot be used: nothing was uploaded to it by
		// this run, and what earlier runs left there cannot be reached.
		rn.log.WarnContext(ctx, "the export storage cannot be used; archives earlier runs may have left there are not cleaned up")
		return
	}
	st := rn.dst.Store
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// Multipart uploads are listed per key (MinIO lists none by prefix); the
	// runs of an export are numbered up to rn.attempt.
	for a := int32(1); a <= rn.attempt; a++ {
		if k := objectKey(rn.dst, rn.orgID, rn.projectID, rn.id, a); k != keep {
			if err := st.Client.RemoveIncompleteUpload(rctx, st.Bucket, k); err != nil && !storage.IsNotFound(err) {
				rn.log.WarnContext(ctx, "could not abort the multipart upload of an earlier run",
					slog.String("key", k), slog.String("error", err.Error()))
			}
		}
	}
	prefix := exportPrefix(rn.dst, rn.orgID, rn.projectID, rn.id)
	var keys []string
	if rn.dst.StorageID == 0 {
		keys = append(keys, legacyObjectKey(rn.orgID, rn.projectID, rn.id))
	}
	for o := range st.Client.ListObjects(rctx, st.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			rn.log.WarnContext(ctx, "could not list the archives of the export; retention's orphan sweep deletes them",
				slog.String("error", o.Err.Error()))
			break
		}
		if o.Key != keep {
			keys = append(keys, o.Key)
		}
	}
	for _, k := range keys {
		h.removeObject(rctx, rn, k)
	}
}

// removeObject deletes one object, if it exists. It runs detached from the
// task's context so that a cancel's clean-up is not itself cancelled; failing
// is logged, not returned, because the row's outcome does not depend on it
// (and retention's orphan sweep deletes it later).
func (h *Handler) removeObject(ctx context.Context, rn *run, key string) {
	if rn.dst == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := rn.dst.Client.RemoveObject(rctx, rn.dst.Bucket, key, minio.RemoveObjectOptions{}); err != nil && !storage.IsNotFound(err) {
		rn.log.ErrorContext(ctx, "could not delete the archive of an export run that did not complete; retention's orphan sweep retries",
			slog.String("key", key), slog.String("error", err.Error()))
	}
}

// recordFailure marks the export failed with reason and writes the event and its
// export.failed webhook event.
func recordFailure(ctx context.Context, q *db.Queries, e db.ExportLog, attempt int32, reason string, now time.Time) error {
	n, err := q.ExportLogFail(ctx, db.ExportLogFailParams{ID: e.ID, Attempt: attempt, Error: &reason, CompletedAt: &now})
	if err != nil {
		return fmt.Errorf("fail export %d: %w", e.ID, err)
	}
	key := fmt.Sprintf("export:%d:failed", e.ID)
	if err := event(ctx, q, e.OrgID, e.ID, EventFailed, key, map[string]any{
		"attempt": attempt, "error": reason,
	}); err != nil {
		return err
	}
	if n == 0 {
		return nil // the row was not this run's to fail: nothing to tell
	}
	return notify(ctx, q, e.OrgID, e.ID, webhook.ExportFailed, key, webhook.ExportData{
		ExportID: e.ID, ProjectID: e.ProjectID, Status: string(db.ExportStatusFailed), Trigger: trigger(e), Format: e.Format,
		StorageID: e.StorageID, Reason: &reason,
	})
}

// notify writes an export.* webhook event in the caller's transaction. For an
// organization with no endpoint that is one statement that writes nothing.
func notify(ctx context.Context, q *db.Queries, orgID, exportID int64, typ, dedup string, data webhook.ExportData) error {
	_, err := webhook.Emit(ctx, q, webhook.Event{
		OrgID: orgID, ProjectID: &data.ProjectID, Type: typ, EntityType: db.EntityTypeExport, EntityID: exportID,
		DedupKey: dedup, Data: data,
	})
	return err
}

// trigger says who asked for an export: a schedule's tick, or an API request.
func trigger(e db.ExportLog) string {
	if e.ScheduleID != nil {
		return "schedule"
	}
	return "api"
}

// downloadPath is the API route that answers a completed export's download URL
// (GET /v1/exports/{export_id}/download): the webhook names the route, never a
// presigned URL, which expires and is a credential while it lasts.
func downloadPath(exportID int64) string {
	return fmt.Sprintf("/v1/exports/%d/download", exportID)
}

// event writes one event_log entry on an export; the dedup key makes a
// repeated write (a redelivered task) a no-op.
func event(ctx context.Context, q *db.Queries, orgID, exportID int64, typ, dedup string, meta map[string]any) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", typ, err)
	}
	if err := q.EventLogInsert(ctx, db.EventLogInsertParams{
		OrgID: orgID, EntityType: db.EntityTypeExport, EntityID: exportID, EventType: typ, DedupKey: &dedup, Metadata: b,
	}); err != nil {
		return fmt.Errorf("write %s event: %w", typ, err)
	}
	return nil
}
