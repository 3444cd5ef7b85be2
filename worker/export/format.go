package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/zipstream"
)

// A converted export (any format but labelq) turns the project's tasks into
// the files of a training format while the archive streams into the bucket
// (internal/formats). It reads the tasks a page at a time, in job id order
// (keyset pagination), inside one read-only REPEATABLE READ transaction, so
// every pass sees the same tasks and memory stays flat however many there are:
//
//  1. the annotation pass: each page's results, predictions and texts are read
//     from the bucket (ReadConcurrency at once, checked against their recorded
//     SHA-256 and size like every packed byte) while the previous page is
//     converted; the converter's entries go into the archive as it writes them
//     (zipstream.Writer.Create), hashed on the way;
//  2. for coco, the image pass: the same tasks again, reading only their file
//     name and image facts;
//  3. with include_files, the images under formats.ImagePath, packed page by
//     page as labelq's own layout packs files (fetched, hashed and compressed
//     in parallel). They come after the converter has closed, since a
//     single-document format keeps its entry open from its first task to its
//     last;
//  4. manifest.json, last: every entry's path and SHA-256, written entry by
//     entry as the archive is (zipstream.ManifestWriter into a spool held
//     deflated in memory), since the converted files' checksums are only known
//     once written.
//
// What the archive holds per entry is the only memory that grows with the
// tasks: its manifest line and central directory record, both kept deflated,
// and a hash of its name (about 80 bytes an entry in all, see
// zipstream.TestArchiveMemoryPerEntry), plus for yolo and voc the converter's
// 16 bytes per label file. A task whose result is not Label Studio result JSON is left
// out, and a prediction that is not a Label Studio prediction is dropped; both
// are counted on the export's note.

// Defaults of the conversion.
const (
	// DefaultReadConcurrency is how many task objects (results, predictions,
	// texts) a converted export reads at once: small objects, so the
	// bucket's latency, not its bandwidth, sets the pace.
	DefaultReadConcurrency = 16
	// pageSize is how many tasks are read per query and per batch of reads.
	pageSize = 500
	// maxTaskObject bounds each result, prediction and text a converted
	// export reads into memory.
	maxTaskObject = 32 << 20
	// leftOutIDs is how many ids of left-out tasks and predictions the note
	// names.
	leftOutIDs = 5
)

// formatPlan is what a converted export's run reads, decided when it starts.
type formatPlan struct {
	format string
	cfg    labelconfig.Config
	sel    Selection
	// annotations: the tasks are the approved jobs with their results;
	// predictions: label_studio carries them; images: include_files; texts:
	// the config shows a text, read from each task's file.
	annotations, predictions, images, texts bool
	totals                                  db.ExportFormatTotalsRow
	bytes                                   int64 // what the run reads from the bucket
	header                                  zipstream.Manifest

	// Set while the run converts. The monitor's goroutine reads the done
	// counters.
	filesDone atomic.Int32
	bytesDone atomic.Int64
	tasks     int64 // converted
	unparsed  leftOut
	dropped   leftOut
	// The images packed, for exported_files.
	imageIDs   []int64
	imagePaths []string
}

// leftOut counts what a conversion left out and keeps the first ids.
type leftOut struct {
	n   int64
	ids []int64
}

func (l *leftOut) add(id int64) {
	l.n++
	if len(l.ids) < leftOutIDs {
		l.ids = append(l.ids, id)
	}
}

func (l leftOut) idList() string {
	parts := make([]string, len(l.ids))
	for i, id := range l.ids {
		parts[i] = fmt.Sprint(id)
	}
	s := strings.Join(parts, ", ")
	if l.n > int64(len(l.ids)) {
		s += ", …"
	}
	return s
}

// planFormat checks that the export can be converted as it asks (the label
// config may have changed since the API accepted it) and reads its totals.
// A reason is why it never can, for the row.
func planFormat(ctx context.Context, q *db.Queries, e db.ExportLog, pr db.Project, labelqVersion string) (fp *formatPlan, reason string, err error) {
	var o Selection
	if len(bytes.TrimSpace(e.Options)) > 0 {
		if err := json.Unmarshal(e.Options, &o); err != nil {
			return nil, fmt.Sprintf("options are not a JSON object of include_files, include_annotations, include_llm, include_consensus: %v", err), nil
		}
	}
	files, annotations, llm := formats.Defaults(e.Format, o.IncludeFiles, o.IncludeAnnotations, o.IncludeLLM)
	// include_consensus is labelq's alone: a row that asks a converted format
	// for it (written by hand, or by a version before the API refused it)
	// fails with the API's reason.
	cfg, err := formats.FitOptions(e.Format, pr.LabelConfig, files, annotations, llm, deref(o.IncludeConsensus))
	var fe *formats.FitError
	if errors.As(err, &fe) {
		return nil, fmt.Sprintf("%s: %s (checked again when the export started: the label config may have changed since it was requested)", fe.Field, fe.Reason), nil
	}
	if err != nil {
		return nil, err.Error(), nil
	}
	fp = &formatPlan{
		format: e.Format, cfg: cfg, sel: Selection{IncludeFiles: &files, IncludeAnnotations: &annotations, IncludeLLM: &llm},
		annotations: annotations, predictions: llm, images: files, texts: formats.HasText(cfg),
	}
	fp.totals, err = q.ExportFormatTotals(ctx, db.ExportFormatTotalsParams{
		Annotations: annotations, Predictions: llm, ProjectID: e.ProjectID, OrgID: e.OrgID,
	})
	if err != nil {
		return nil, "", fmt.Errorf("count the tasks of project %d: %w", e.ProjectID, err)
	}
	if fp.totals.Tasks > math.MaxInt32 {
		return nil, fmt.Sprintf("%d tasks are more than one export can hold", fp.totals.Tasks), nil
	}
	fp.bytes = fp.totals.ResultBytes + fp.totals.PredictionBytes
	if fp.texts || fp.images {
		fp.bytes += fp.totals.RawBytes
	}
	opts, err := json.Marshal(fp.sel)
	if err != nil {
		return nil, "", fmt.Errorf("encode options: %w", err)
	}
	fp.header = zipstream.Manifest{
		ExportID: e.ID, ProjectID: pr.ID, ProjectName: pr.Name, Options: opts, Format: e.Format,
		CreatedAt: e.RequestedAt, LabelqVersion: labelqVersion,
	}
	return fp, "", nil
}

// emptyReason says why a converted export has no task, from the project's
// counts (ExportLogEmptyFacts).
func (fp *formatPlan) emptyReason(f emptyFacts) string {
	if fp.totals.Skipped > 0 {
		return fmt.Sprintf("%s selected but none is valid (a dataset version or result not valid, or never measured): only valid versions are exported; wait for validation to finish, or upload the files again and revalidate them",
			plural(int(fp.totals.Skipped), "job was", "jobs were"))
	}
	if !fp.annotations {
		if f.Jobs == 0 {
			return "the project has no jobs: a job is made when a dataset file's version is validated; " + datasetContext(f)
		}
		return fmt.Sprintf("the files of the project's %s were deleted; nothing is left to export", plural(int(f.Jobs), "job", "jobs"))
	}
	if f.ApprovedJobs == 0 {
		return fmt.Sprintf("0 approved jobs: format %s converts the approved results; approve jobs first (%s)", fp.format, jobsContext(f))
	}
	return fmt.Sprintf("the files of the project's %s were deleted; nothing is left to export",
		plural(int(f.ApprovedJobs), "approved job", "approved jobs"))
}

// note says what the conversion left out; "" when nothing.
func (fp *formatPlan) note() string {
	var parts []string
	if fp.totals.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%s left out: a dataset version or result is not valid, or was never measured",
			plural(int(fp.totals.Skipped), "job", "jobs")))
	}
	if fp.unparsed.n > 0 {
		parts = append(parts, fmt.Sprintf("%s left out: the result is not Label Studio result JSON (result versions %s); convert those results, or export with format labelq",
			plural(int(fp.unparsed.n), "task", "tasks"), fp.unparsed.idList()))
	}
	if fp.dropped.n > 0 {
		parts = append(parts, fmt.Sprintf(`%s left out: not a Label Studio prediction ({"model_version", "score", "result"}) or result list (model output versions %s)`,
			plural(int(fp.dropped.n), "prediction", "predictions"), fp.dropped.idList()))
	}
	return strings.Join(parts, "; ")
}

// partSize bounds the archive for the multipart part size (see partSize):
// converted files can outgrow what they were made from (JSON of pixel
// coordinates), so twice the bytes read, plus the images and per-entry
// overhead.
func (fp *formatPlan) archiveBound() uint64 {
	b := uint64(2*(fp.totals.ResultBytes+fp.totals.PredictionBytes)) + 1<<20
	if fp.texts {
		b += 2 * uint64(fp.totals.RawBytes)
	}
	if fp.images {
		b += uint64(fp.totals.RawBytes) + uint64(fp.totals.RawBytes)/8192
	}
	// Per task: label files (yolo, voc) and images, their headers and paths.
	return b + uint64(fp.totals.Tasks)*2*(256+3*1024)
}

// formatError is a conversion that can never succeed as the data stands (a
// region without a pixel size, two files needing one label file): the
// export fails with its reason.
type formatError struct{ reason string }

func (e *formatError) Error() string { return e.reason }

// conversion is one run's conversion in progress.
type conversion struct {
	h  *Handler
	rn *run
	fp *formatPlan
	zw *zipstream.Writer
	ew entryWriter
	// The manifest, entry by entry as the archive is written (onEntry).
	spool *zipstream.Spool
	mw    *zipstream.ManifestWriter
	err   error
	// images are the image entries of the Pack under way, by version id,
	// for their manifest entries.
	images map[int64]imageEntry
}

type imageEntry struct {
	fileID        int64
	versionNumber int32
	mime          string
}

func (h *Handler) newConversion(rn *run) *conversion {
	return &conversion{h: h, rn: rn, fp: rn.format}
}

// onEntry is zipstream's OnEntry: each entry's manifest line, as it lands.
func (c *conversion) onEntry(r zipstream.EntryResult) {
	if c.mw == nil || c.err != nil || r.Path == zipstream.ManifestPath {
		return
	}
	me := zipstream.ManifestEntry{Path: r.Path, VersionID: r.VersionID, SHA256: r.SHA256, Size: r.Size, MIMEType: entryMIME(r.Path)}
	if im, ok := c.images[r.VersionID]; ok && r.VersionID != 0 {
		me.FileID, me.VersionNumber, me.MIMEType = im.fileID, im.versionNumber, im.mime
		c.fp.bytesDone.Add(r.Size)
	}
	c.err = c.mw.Add(me)
}

// run converts the export into zw.
func (c *conversion) run(ctx context.Context, zw *zipstream.Writer) (err error) {
	c.zw = zw
	c.ew.zw = zw
	if c.spool, err = zw.NewSpool(zipstream.ManifestPath, zipstream.ManifestMIME); err != nil {
		return err
	}
	defer c.spool.Release()
	if c.mw, err = zipstream.NewManifestWriter(c.spool, c.fp.header); err != nil {
		return err
	}
	// One snapshot for every pass: COCO's image pass must see the tasks the
	// annotation pass saw, and the archive describes one moment of the
	// project. Read-only, so holding it costs no lock.
	tx, err := c.h.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("open a snapshot of project %d: %w", c.rn.projectID, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := db.New(tx)

	conv, err := formats.New(c.fp.format, c.fp.cfg, &c.ew)
	if err != nil {
		return &formatError{reason: err.Error()}
	}
	if err := c.annotationPass(ctx, q, conv); err != nil {
		return err
	}
	if ip, ok := conv.(formats.ImagePass); ok {
		err := c.filePass(ctx, q, func(rows []db.ExportFormatFilePageRow) error {
			for i := range rows {
				if err := ip.AddImage(fileTask(&rows[i])); err != nil {
					return c.convErr(err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := conv.Close(); err != nil {
		return c.convErr(err)
	}
	if c.fp.images {
		if err := c.filePass(ctx, q, func(rows []db.ExportFormatFilePageRow) error { return c.packImages(ctx, rows) }); err != nil {
			return err
		}
	}
	// The last converted entry is still open: finished now, so that the
	// manifest lists it.
	if err := zw.FinishEntry(); err != nil {
		return err
	}
	if c.err != nil {
		return c.err
	}
	if err := c.mw.Close(); err != nil {
		return err
	}
	if _, err := zw.AddSpool(c.spool); err != nil {
		return err
	}
	if c.rn.note == "" { // else it says why there was no task at all
		c.rn.note = c.fp.note()
	}
	return nil
}

// convErr is what a converter's error means: the archive's own failure
// (the upload pipe closed, a cancel) as it is, or else the data's, which no
// retry changes.
func (c *conversion) convErr(err error) error {
	if c.ew.err != nil {
		return c.ew.err
	}
	return &formatError{reason: fmt.Sprintf("%v; fix the result, or export with format labelq", err)}
}

// loadedTask is a task as the annotation pass read it.
type loadedTask struct {
	task     formats.Task
	bytes    int64 // read from the bucket for it
	unparsed int64 // its result version, when that is not Label Studio result JSON: the task is left out
	dropped  []int64
}

type taskPage struct {
	tasks []loadedTask
	err   error
}

// annotationPass feeds every task to the converter, reading the next page
// while it converts this one.
func (c *conversion) annotationPass(ctx context.Context, q *db.Queries, conv formats.Converter) error {
	pctx, cancel := context.WithCancel(ctx)
	pages := make(chan taskPage, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(pages)
		c.readPages(pctx, q, pages)
	})
	defer func() {
		cancel()
		wg.Wait()
	}()
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		for i := range p.tasks {
			lt := &p.tasks[i]
			c.fp.bytesDone.Add(lt.bytes)
			for _, id := range lt.dropped {
				c.fp.dropped.add(id)
			}
			if lt.unparsed != 0 {
				c.fp.unparsed.add(lt.unparsed)
				c.fp.filesDone.Add(1)
				continue
			}
			if err := conv.Add(lt.task); err != nil {
				return c.convErr(err)
			}
			c.fp.tasks++
			c.fp.filesDone.Add(1)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// readPages sends the tasks page by page, then closes nothing: the caller
// does. It stops at the first error, which it sends.
func (c *conversion) readPages(ctx context.Context, q *db.Queries, pages chan<- taskPage) {
	send := func(p taskPage) bool {
		select {
		case pages <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var after int64
	for {
		rows, err := q.ExportFormatTaskPage(ctx, db.ExportFormatTaskPageParams{
			Annotations: c.fp.annotations, ProjectID: c.rn.projectID, OrgID: c.rn.orgID, AfterID: after, MaxRows: pageSize,
		})
		if err != nil {
			send(taskPage{err: fmt.Errorf("read the tasks of project %d after job %d: %w", c.rn.projectID, after, err)})
			return
		}
		if len(rows) == 0 {
			return
		}
		tasks, err := c.loadPage(ctx, q, rows)
		if !send(taskPage{tasks: tasks, err: err}) || err != nil || len(rows) < pageSize {
			return
		}
		after = rows[len(rows)-1].JobID
	}
}

// loadPage reads a page's objects from the bucket, ReadConcurrency at once.
func (c *conversion) loadPage(ctx context.Context, q *db.Queries, rows []db.ExportFormatTaskPageRow) ([]loadedTask, error) {
	var preds map[int64][]db.ExportFormatPredictionsRow
	if c.fp.predictions {
		ids := make([]int64, len(rows))
		for i := range rows {
			ids[i] = rows[i].VersionID
		}
		ps, err := q.ExportFormatPredictions(ctx, db.ExportFormatPredictionsParams{
			ProjectID: c.rn.projectID, OrgID: c.rn.orgID, SourceVersionIds: ids,
		})
		if err != nil {
			return nil, fmt.Errorf("read the predictions of project %d: %w", c.rn.projectID, err)
		}
		preds = make(map[int64][]db.ExportFormatPredictionsRow, len(ps))
		for _, p := range ps {
			preds[p.SourceVersionID] = append(preds[p.SourceVersionID], p)
		}
	}
	out := make([]loadedTask, len(rows))
	err := forEach(ctx, c.h.opts.ReadConcurrency, len(rows), func(ctx context.Context, i int) error {
		return c.loadTask(ctx, &rows[i], preds[rows[i].VersionID], &out[i])
	})
	return out, err
}

// loadTask reads one task's result, predictions and text.
func (c *conversion) loadTask(ctx context.Context, r *db.ExportFormatTaskPageRow, preds []db.ExportFormatPredictionsRow, lt *loadedTask) error {
	t := formats.Task{ID: r.JobID, FileID: r.FileID, VersionID: r.VersionID, Filename: r.FileName, StorageKey: r.StoragePath}
	t.Image = imageFacts(r.ImageWidth, r.ImageHeight, r.ImageOrientation)
	if c.fp.annotations {
		if r.ResultID == nil || r.ResultPath == nil || r.ResultChecksum == nil || r.ResultSize == nil {
			return fmt.Errorf("job %d: its result's row is incomplete", r.JobID)
		}
		b, err := c.h.readObject(ctx, object{
			name: "result " + deref(r.ResultFileName), versionID: *r.ResultID, storageID: r.ResultStorageID,
			key: *r.ResultPath, sha256: *r.ResultChecksum, size: *r.ResultSize,
		})
		if err != nil {
			return err
		}
		lt.bytes += int64(len(b))
		regions, err := labelconfig.ParseResult(b)
		if err != nil {
			lt.unparsed = *r.ResultID
			return nil
		}
		t.Annotations = []formats.Annotation{{
			ID: *r.ResultID, CompletedBy: r.AnnotatorID, Result: regions, CreatedAt: deref(r.ResultCreatedAt),
		}}
	}
	for _, p := range preds {
		b, err := c.h.readObject(ctx, object{
			name: "prediction " + p.FileName, versionID: p.ID, storageID: p.StorageID, key: p.StoragePath, sha256: p.Checksum, size: p.SizeBytes,
		})
		if err != nil {
			return err
		}
		lt.bytes += int64(len(b))
		pred, ok := parsePrediction(b, deref(p.LlmModel))
		if !ok {
			lt.dropped = append(lt.dropped, p.ID)
			continue
		}
		t.Predictions = append(t.Predictions, pred)
	}
	if c.fp.texts {
		b, err := c.h.readObject(ctx, object{
			name: r.FileName, versionID: r.VersionID, storageID: r.StorageID, key: r.StoragePath, sha256: r.Checksum, size: r.SizeBytes,
		})
		if err != nil {
			return err
		}
		lt.bytes += int64(len(b))
		t.Text = string(b)
	}
	lt.task = t
	return nil
}

// parsePrediction reads a pre-annotation output as a Label Studio prediction:
// {"model_version", "score", "result"} (what file:preannotate stores for a
// project with a label config), or a bare result list, whose model is the
// version's. Anything else is not one.
func parsePrediction(b []byte, model string) (formats.Prediction, bool) {
	t := bytes.TrimSpace(b)
	p := formats.Prediction{ModelVersion: model}
	if len(t) > 0 && t[0] == '{' {
		var w struct {
			ModelVersion *string         `json:"model_version"`
			Score        *float64        `json:"score"`
			Result       json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(t, &w); err != nil || len(w.Result) == 0 {
			return p, false
		}
		if w.ModelVersion != nil && *w.ModelVersion != "" {
			p.ModelVersion = *w.ModelVersion
		}
		p.Score, t = w.Score, bytes.TrimSpace(w.Result)
	}
	if len(t) == 0 || t[0] != '[' {
		return p, false
	}
	regions, err := labelconfig.ParseResult(t)
	if err != nil {
		return p, false
	}
	p.Result = regions
	return p, true
}

// filePass pages through the tasks again, reading their dataset versions
// only.
func (c *conversion) filePass(ctx context.Context, q *db.Queries, fn func([]db.ExportFormatFilePageRow) error) error {
	var after int64
	for {
		rows, err := q.ExportFormatFilePage(ctx, db.ExportFormatFilePageParams{
			Annotations: c.fp.annotations, ProjectID: c.rn.projectID, OrgID: c.rn.orgID, AfterID: after, MaxRows: pageSize,
		})
		if err != nil {
			return fmt.Errorf("read the files of project %d after job %d: %w", c.rn.projectID, after, err)
		}
		if len(rows) == 0 {
			return nil
		}
		if err := fn(rows); err != nil {
			return err
		}
		if len(rows) < pageSize {
			return nil
		}
		after = rows[len(rows)-1].JobID
	}
}

func fileTask(r *db.ExportFormatFilePageRow) formats.Task {
	return formats.Task{
		ID: r.JobID, FileID: r.FileID, VersionID: r.VersionID, Filename: r.FileName, StorageKey: r.StoragePath,
		Image: imageFacts(r.ImageWidth, r.ImageHeight, r.ImageOrientation),
	}
}

func imageFacts(w, h, orientation *int32) *formats.ImageFacts {
	if w == nil || h == nil {
		return nil
	}
	return &formats.ImageFacts{Width: int(*w), Height: int(*h), Orientation: int(deref(orientation))}
}

// packImages packs a page's images where the converted files name them, as
// labelq's layout packs files: fetched, hashed against the recorded SHA-256
// and compressed in parallel.
func (c *conversion) packImages(ctx context.Context, rows []db.ExportFormatFilePageRow) error {
	entries := make([]zipstream.Entry, len(rows))
	c.images = make(map[int64]imageEntry, len(rows))
	for i := range rows {
		r := &rows[i]
		p := formats.ImagePath(fileTask(r))
		it := item{
			kind: "files", path: p, fileID: r.FileID, fileName: r.FileName, versionID: r.VersionID, versionNumber: r.VersionNumber,
			storageID: r.StorageID, key: r.StoragePath, sha256: strings.ToLower(r.Checksum), size: r.SizeBytes, mime: deref(r.MimeType),
		}
		entries[i] = zipstream.Entry{
			Path: p, Size: it.size, SHA256: it.sha256, MIMEType: it.mime, VersionID: it.versionID, Open: c.h.open(it),
		}
		c.images[r.VersionID] = imageEntry{fileID: r.FileID, versionNumber: r.VersionNumber, mime: it.mime}
	}
	res, err := c.zw.Pack(ctx, entries)
	c.images = nil
	if errors.Is(err, zipstream.ErrInvalidEntry) {
		return &formatError{reason: fmt.Sprintf("cannot pack the images as the %s files name them: %v; rename the file (names are compared without case, as on Windows and macOS)", c.fp.format, err)}
	}
	if err != nil {
		return err
	}
	for _, r := range res {
		c.fp.imageIDs = append(c.fp.imageIDs, r.VersionID)
		c.fp.imagePaths = append(c.fp.imagePaths, r.Path)
	}
	return nil
}

// entryWriter is the converters' formats.Writer: each entry they create goes
// into the archive through zipstream's Create, hashed on the way. It keeps
// the archive's own write errors apart from the converter's.
type entryWriter struct {
	zw  *zipstream.Writer
	cur errWriter
	err error
}

func (e *entryWriter) Create(name string) (io.Writer, error) {
	w, err := e.zw.Create(name, entryMIME(name))
	if err != nil {
		e.err = err
		return nil, err
	}
	// A converter writes to an entry only until its next Create, so one
	// wrapper serves them all.
	e.cur = errWriter{w: w, e: e}
	return &e.cur, nil
}

type errWriter struct {
	w io.Writer
	e *entryWriter
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.e.err = err
	}
	return n, err
}

// entryMIME is the type of a converted file, by its extension.
func entryMIME(name string) string {
	switch path.Ext(name) {
	case ".json":
		return "application/json"
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".xml":
		return "application/xml"
	case ".yaml":
		return "application/yaml"
	}
	return "text/plain; charset=utf-8" // labels/*.txt, classes.txt, result.conll
}

// object is a version a conversion reads whole.
type object struct {
	name      string // for messages: "result photo.json"
	versionID int64
	storageID *int64
	key       string
	sha256    string
	size      int64
}

// readObject reads a version's bytes, checked against its recorded size and
// SHA-256 as every packed byte is: the errors are zipstream's, which the
// export's failure handling already explains (and a changed version is sent
// back to validation).
func (h *Handler) readObject(ctx context.Context, o object) ([]byte, error) {
	if o.size > maxTaskObject {
		return nil, &formatError{reason: fmt.Sprintf("%s (version %d) is %d bytes; a converted export reads each result, prediction and text into memory, up to %d MiB each; export it with format labelq",
			o.name, o.versionID, o.size, maxTaskObject>>20)}
	}
	rc, err := h.open(item{storageID: o.storageID, key: o.key, versionID: o.versionID, fileName: o.name})(ctx)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, &zipstream.EntryError{Path: o.name, VersionID: o.versionID, Op: "open", Err: err}
	}
	defer func() { _ = rc.Close() }()
	// One byte past the recorded size tells a longer object.
	buf := make([]byte, o.size+1)
	n, err := io.ReadFull(rc, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, &zipstream.EntryError{Path: o.name, VersionID: o.versionID, Op: "read", Err: err}
	}
	if int64(n) != o.size {
		return nil, &zipstream.SizeMismatchError{Path: o.name, VersionID: o.versionID, Expected: o.size, Got: int64(n)}
	}
	buf = buf[:n]
	if got := sha256Hex(buf); !strings.EqualFold(got, o.sha256) {
		return nil, &zipstream.ChecksumMismatchError{Path: o.name, VersionID: o.versionID, Expected: o.sha256, Got: got}
	}
	return buf, nil
}

// forEach runs fn(0..n-1) on up to limit goroutines and returns the first
// error, after which the others are cancelled.
func forEach(ctx context.Context, limit, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(max(limit, 1), n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err })
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// fileCount is what the completed row's file_count says: the file versions
// packed (labelq) or the tasks converted.
func (rn *run) fileCount() int32 {
	if rn.format != nil {
		return int32(rn.format.tasks)
	}
	return int32(len(rn.plan.items))
}

// exportedFiles are the versions the archive holds under their own path, for
// exported_files: every packed version (labelq), or the images packed with a
// converted export (the results are inside its converted files).
func (rn *run) exportedFiles() (ids []int64, paths []string) {
	if rn.format != nil {
		return rn.format.imageIDs, rn.format.imagePaths
	}
	ids = make([]int64, len(rn.plan.items))
	paths = make([]string, len(rn.plan.items))
	for i, it := range rn.plan.items {
		ids[i], paths[i] = it.versionID, it.path
	}
	return ids, paths
}

// bytes is the run's bytes_total.
func (rn *run) bytes() int64 {
	if rn.format != nil {
		return rn.format.bytes
	}
	return rn.plan.bytes
}

// skipped counts the versions (labelq) or jobs left out for not being valid.
func (rn *run) skipped() int {
	if rn.format != nil {
		return int(rn.format.totals.Skipped)
	}
	return len(rn.plan.skipped)
}

// done is the row's progress: files and bytes done, from zipstream's
// progress (labelq) or the conversion's counters.
func (rn *run) done(p zipstream.Progress) (int32, int64) {
	if fp := rn.format; fp != nil {
		return fp.filesDone.Load(), fp.bytesDone.Load()
	}
	return rn.plan.filesDone(p)
}

// partSize is the run's multipart part size.
func (rn *run) partSize(minSize uint64) uint64 {
	if rn.format != nil {
		return partSizeFor(rn.format.archiveBound(), minSize)
	}
	return partSize(rn.plan, minSize)
}
