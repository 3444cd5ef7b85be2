package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/tasks"
)

// MaxBatchItems is the most items one batch registration takes.
const MaxBatchItems = 1000

// batchBodyFactor is how many times LABELQ_MAX_BODY_BYTES a batch's body may be:
// 1,000 items with long file names and keys do not fit in the default 1 MiB.
const batchBodyFactor = 4

// BatchInput registers up to MaxBatchItems objects already in labelq's bucket as
// versions of a project's files, in one transaction.
type BatchInput struct {
	Items []BatchItem `json:"items"`
}

func (BatchInput) maxBodyBytes(def int64) int64 { return batchBodyFactor * def }

// BatchItem is one registration of a batch: an existing file (file_id) or a file
// found or created by name (file_name, with file_type when it is created), and
// what POST /v1/files/{file_id}/versions takes, plus the job's attributes.
type BatchItem struct {
	FileID      *int64  `json:"file_id"`
	FileName    *string `json:"file_name"`
	FileType    *string `json:"file_type"`
	StoragePath string  `json:"storage_path"`
	SHA256      *string `json:"sha256"`
	Size        *int64  `json:"size"`
	MIMEType    *string `json:"mime_type"`
	// The job's attributes: a language code, low/medium/high, an RFC 3339 time.
	Language *string `json:"language"`
	Priority *string `json:"priority"`
	DueDate  *string `json:"due_date"`
}

// Batch item statuses.
const (
	BatchCreated   = "created"
	BatchDuplicate = "duplicate"
	BatchInvalid   = "invalid"
)

// BatchResult answers a batch: one result per item, in request order, and the
// totals.
type BatchResult struct {
	Items     []BatchItemResult `json:"items"`
	Created   int               `json:"created"`
	Duplicate int               `json:"duplicate"`
	Invalid   int               `json:"invalid"`
}

// BatchItemResult is what became of one item: created (a new version, validation
// queued as task_id), duplicate (the file already has a version with this
// storage_path: its id), or invalid (the fields at fault; nothing written for it).
type BatchItemResult struct {
	Index     int          `json:"index"`
	Status    string       `json:"status"`
	VersionID int64        `json:"version_id,omitempty"`
	FileID    int64        `json:"file_id,omitempty"`
	TaskID    string       `json:"task_id,omitempty"`
	StatusURL string       `json:"status_url,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// batchItem is an item being registered: what it asks, normalised, and what it
// became.
type batchItem struct {
	in     BatchItem
	v      Validation
	sha    *string
	mime   *string
	job    ingest.JobAttrs
	fileID int64
	res    BatchItemResult
}

func (it *batchItem) field(name string) string {
	return fmt.Sprintf("items[%d].%s", it.res.Index, name)
}

// registerBatch registers a batch of versions in one transaction: every item is
// checked as a single registration is, invalid items are reported and skipped,
// files named by file_name are found or created, versions already registered
// (same file, same storage_path) are reported as duplicates, and the rest become
// versions with their validation queued, all in multi-row statements.
func registerBatch(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case len(in.Items) == 0:
		return 0, nil, invalid("items", fmt.Sprintf("is required: 1 to %d items", MaxBatchItems))
	case len(in.Items) > MaxBatchItems:
		return 0, nil, invalid("items", fmt.Sprintf("at most %d items per batch; this one has %d: split it", MaxBatchItems, len(in.Items)))
	}
	items := make([]*batchItem, len(in.Items))
	for i, raw := range in.Items {
		items[i] = checkBatchItem(i, raw, c.OrgID)
	}
	// The lookups below take arrays of up to a thousand ids, names and paths:
	// planned for their values, not by a plan cached while the project was small.
	if err := c.Q.UseCustomPlans(c.R.Context()); err != nil {
		return 0, nil, fmt.Errorf("plan the batch's lookups: %w", err)
	}
	if err := resolveBatchFiles(c, pid, items); err != nil {
		return 0, nil, err
	}
	if err := createBatchVersions(c, pid, items); err != nil {
		return 0, nil, err
	}

	out := BatchResult{Items: make([]BatchItemResult, len(items))}
	var all []FieldError
	for i, it := range items {
		if len(it.v.fields) > 0 {
			it.res.Status, it.res.Errors, it.res.FileID = BatchInvalid, it.v.fields, 0
			all = append(all, it.v.fields...)
		}
		switch it.res.Status {
		case BatchCreated:
			out.Created++
		case BatchDuplicate:
			out.Duplicate++
		case BatchInvalid:
			out.Invalid++
		}
		out.Items[i] = it.res
	}
	if out.Invalid == len(items) {
		detail := fmt.Sprintf("every item of the batch is invalid; the first: %s: %s", all[0].Field, all[0].Message)
		return 0, nil, problem(http.StatusUnprocessableEntity, "Invalid request", detail, all...)
	}
	return http.StatusAccepted, out, nil
}

// checkBatchItem decodes and checks one item without the database: the checks
// of a single registration, each error named items[i].field.
func checkBatchItem(i int, raw json.RawMessage, orgID int64) *batchItem {
	it := &batchItem{res: BatchItemResult{Index: i}}
	if err := decodeJSON(raw, &it.in); err != nil {
		p, _ := asProblem(err)
		if p == nil || len(p.Errors) == 0 {
			it.v.Add(fmt.Sprintf("items[%d]", i), "must be an object with storage_path and file_id or file_name")
			return it
		}
		for _, f := range p.Errors {
			it.v.Add(it.field(f.Field), "%s", f.Message)
		}
		return it
	}
	in := &it.in
	switch {
	case in.FileID != nil && in.FileName != nil:
		it.v.Add(it.field("file_id"), "give file_id or file_name, not both")
	case in.FileID == nil && in.FileName == nil:
		it.v.Add(it.field("file_id"), "file_id (an existing file) or file_name (found or created by name) is required")
	case in.FileID != nil:
		it.v.Check(*in.FileID > 0, it.field("file_id"), "must be a positive id")
		it.v.Check(in.FileType == nil, it.field("file_type"), "is only for a file created by file_name; an existing file keeps its type")
	default:
		name := *in.FileName
		it.v.Check(name != "", it.field("file_name"), "must not be empty")
		it.v.Check(len(name) <= 1024, it.field("file_name"), "must be at most 1024 bytes")
		it.v.Check(!strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }), it.field("file_name"), "must not contain control characters")
		it.v.Check(in.FileType == nil || db.FileType(*in.FileType).Valid(), it.field("file_type"),
			"must be one of dataset, requirement, annotation_results, llm_output")
	}
	checkStorageKey(&it.v, it.field("storage_path"), in.StoragePath, orgID)
	it.sha = normalizeSHA256(&it.v, it.field("sha256"), in.SHA256)
	it.mime = normalizeMIME(&it.v, it.field("mime_type"), in.MIMEType)
	if in.Size != nil {
		it.v.Check(*in.Size >= 0, it.field("size"), "must not be negative")
	}
	a := checkJobAttrs(&it.v, it.field, in.Language, in.Priority, in.DueDate)
	it.job = ingest.JobAttrs{Language: a.language, Priority: a.priority, DueDate: a.dueDate}
	return it
}

// resolveBatchFiles sets each valid item's file: the project's file of that id
// (another project's or organization's is "not found", like a missing one), or
// the file of that name, created when there is none. It locks the files for the
// rest of the transaction.
func resolveBatchFiles(c *Call, projectID int64, items []*batchItem) error {
	ctx := c.R.Context()
	var ids []int64
	var names []string
	for _, it := range items {
		switch {
		case len(it.v.fields) > 0:
		case it.in.FileID != nil:
			ids = append(ids, *it.in.FileID)
		default:
			names = append(names, *it.in.FileName)
		}
	}
	if len(ids) == 0 && len(names) == 0 {
		return nil
	}
	rows, err := c.Q.FileListForBatch(ctx, db.FileListForBatchParams{OrgID: c.OrgID, ProjectID: projectID, Ids: ids, Names: names})
	if err != nil {
		return fmt.Errorf("read the batch's files: %w", err)
	}
	byID := map[int64]db.FileListForBatchRow{}
	byName := map[string]db.FileListForBatchRow{}
	for _, r := range rows {
		byID[r.ID], byName[r.Name] = r, r
	}
	// New files, once per name; the first item naming one sets its type.
	var fresh []ingest.NewFile
	freshType := map[string]db.FileType{}
	for _, it := range items {
		if len(it.v.fields) > 0 || it.in.FileName == nil {
			continue
		}
		name := *it.in.FileName
		if _, ok := byName[name]; ok {
			continue
		}
		if _, ok := freshType[name]; ok {
			continue
		}
		ft := db.FileTypeDataset
		if it.in.FileType != nil {
			ft = db.FileType(*it.in.FileType)
		}
		freshType[name] = ft
		fresh = append(fresh, ingest.NewFile{Name: name, FileType: ft})
	}
	if len(fresh) > 0 {
		made, err := ingest.CreateFiles(ctx, c.Q, c.OrgID, projectID, fresh)
		if err != nil {
			return fmt.Errorf("create the batch's %d new files: %w", len(fresh), err)
		}
		var taken []string
		for _, f := range fresh {
			if id, ok := made[f.Name]; ok {
				byName[f.Name] = db.FileListForBatchRow{ID: id, Name: f.Name, FileType: f.FileType}
			} else {
				taken = append(taken, f.Name)
			}
		}
		if len(taken) > 0 {
			// Created by a concurrent request since we looked: use them.
			rows, err := c.Q.FileListForBatch(ctx, db.FileListForBatchParams{OrgID: c.OrgID, ProjectID: projectID, Names: taken})
			if err != nil {
				return fmt.Errorf("read the batch's files: %w", err)
			}
			for _, r := range rows {
				byName[r.Name] = r
			}
		}
	}
	for _, it := range items {
		switch {
		case len(it.v.fields) > 0:
		case it.in.FileID != nil:
			f, ok := byID[*it.in.FileID]
			if !ok {
				it.v.Add(it.field("file_id"), "file %d does not exist in this project or belongs to another organization", *it.in.FileID)
				continue
			}
			it.fileID = f.ID
		default:
			f, ok := byName[*it.in.FileName]
			if !ok {
				it.v.Add(it.field("file_name"), "the file could not be created; retry the batch")
				continue
			}
			if it.in.FileType != nil && db.FileType(*it.in.FileType) != f.FileType {
				it.v.Add(it.field("file_type"), "the project's file %q is a %s file, not %s", f.Name, f.FileType, *it.in.FileType)
				continue
			}
			it.fileID = f.ID
		}
	}
	return nil
}

type fileKey struct {
	fileID int64
	path   string
}

// createBatchVersions reports the items whose file already has a version with
// their storage_path (and the second of two items registering the same one) as
// duplicates, creates the others' versions with their validation outbox rows,
// and writes their "uploaded" events.
func createBatchVersions(c *Call, projectID int64, items []*batchItem) error {
	ctx := c.R.Context()
	var fids []int64
	var paths []string
	for _, it := range items {
		if len(it.v.fields) == 0 {
			fids, paths = append(fids, it.fileID), append(paths, it.in.StoragePath)
		}
	}
	if len(fids) == 0 {
		return nil
	}
	prev, err := c.Q.FileVersionListByFilePaths(ctx, db.FileVersionListByFilePathsParams{OrgID: c.OrgID, FileIds: fids, StoragePaths: paths})
	if err != nil {
		return fmt.Errorf("find earlier registrations: %w", err)
	}
	registered := map[fileKey]int64{}
	for _, p := range prev {
		k := fileKey{p.FileID, p.StoragePath}
		if _, ok := registered[k]; !ok {
			registered[k] = p.ID
		}
	}
	var vs []ingest.NewVersion
	var creating []*batchItem
	first := map[fileKey]*batchItem{}
	var repeats []*batchItem
	for _, it := range items {
		if len(it.v.fields) > 0 {
			continue
		}
		k := fileKey{it.fileID, it.in.StoragePath}
		it.res.FileID = it.fileID
		if id, ok := registered[k]; ok {
			it.res.Status, it.res.VersionID, it.res.StatusURL = BatchDuplicate, id, fmt.Sprintf("/v1/versions/%d", id)
			continue
		}
		if _, ok := first[k]; ok {
			repeats = append(repeats, it)
			continue
		}
		first[k] = it
		creating = append(creating, it)
		vs = append(vs, ingest.NewVersion{
			OrgID: c.OrgID, ProjectID: projectID, FileID: it.fileID, StoragePath: it.in.StoragePath,
			ExpectedSHA256: it.sha, ExpectedMIME: it.mime, ExpectedSize: it.in.Size, Job: it.job,
		})
	}
	if len(vs) > 0 {
		made, err := ingest.CreateVersions(ctx, c.Q, vs)
		if err != nil {
			return fmt.Errorf("create %d versions: %w", len(vs), err)
		}
		if len(made) != len(vs) {
			return fmt.Errorf("create %d versions: %d were created", len(vs), len(made))
		}
		byKey := map[fileKey]ingest.Created{}
		for _, m := range made {
			byKey[fileKey{m.FileID, m.StoragePath}] = m
		}
		ev := db.EventLogInsertBatchParams{
			OrgID: c.OrgID, EntityType: db.EntityTypeFileVersion, EventType: "uploaded",
			EntityIds: make([]int64, 0, len(made)), DedupKeys: make([]string, 0, len(made)), Metadata: make([]json.RawMessage, 0, len(made)),
		}
		for _, it := range creating {
			m, ok := byKey[fileKey{it.fileID, it.in.StoragePath}]
			if !ok {
				return fmt.Errorf("create versions: none was created for file %d at %q", it.fileID, it.in.StoragePath)
			}
			it.res.Status, it.res.VersionID = BatchCreated, m.ID
			it.res.TaskID = tasks.Validate{VersionID: m.ID}.TaskID()
			it.res.StatusURL = fmt.Sprintf("/v1/versions/%d", m.ID)
			meta, err := json.Marshal(map[string]any{
				"file_id": m.FileID, "version_number": m.VersionNumber, "storage_path": m.StoragePath,
				"token_id": c.TokenID, "batch": true,
			})
			if err != nil {
				return err
			}
			ev.EntityIds = append(ev.EntityIds, m.ID)
			ev.DedupKeys = append(ev.DedupKeys, fmt.Sprintf("uploaded:file_version:%d", m.ID))
			ev.Metadata = append(ev.Metadata, meta)
		}
		if err := c.Q.EventLogInsertBatch(ctx, ev); err != nil {
			return fmt.Errorf("write %d upload events: %w", len(ev.EntityIds), err)
		}
	}
	for _, it := range repeats {
		f := first[fileKey{it.fileID, it.in.StoragePath}]
		it.res.Status, it.res.VersionID, it.res.StatusURL = BatchDuplicate, f.res.VersionID, f.res.StatusURL
	}
	return nil
}
