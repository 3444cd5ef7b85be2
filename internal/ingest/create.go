package ingest

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
)

// NewFile is a file to create.
type NewFile struct {
	Name     string
	FileType db.FileType
}

// CreateFiles creates the files fs of a project in one statement and returns
// their ids by name; the names must be distinct. A name a live file of the
// project already has is absent from the map (nothing is written for it); the
// caller decides what that means.
func CreateFiles(ctx context.Context, q *db.Queries, orgID, projectID int64, fs []NewFile) (map[string]int64, error) {
	if len(fs) == 0 {
		return map[string]int64{}, nil
	}
	names := make([]string, len(fs))
	types := make([]string, len(fs))
	for i, f := range fs {
		names[i], types[i] = f.Name, string(cmp.Or(f.FileType, db.FileTypeDataset))
	}
	rows, err := q.FilesCreateMany(ctx, db.FilesCreateManyParams{OrgID: orgID, ProjectID: projectID, Names: names, FileTypes: types})
	if err != nil {
		return nil, fmt.Errorf("create %d files in project %d: %w", len(fs), projectID, err)
	}
	ids := make(map[string]int64, len(rows))
	for _, r := range rows {
		ids[r.Name] = r.ID
	}
	return ids, nil
}

// NewVersion is a version to register: an object (in labelq's bucket, or in
// storage StorageID) as the next version of a file.
type NewVersion struct {
	OrgID, ProjectID int64
	FileID           int64
	StorageID        *int64
	StoragePath      string
	ExpectedSHA256   *string
	ExpectedMIME     *string
	ExpectedSize     *int64
	Job              JobAttrs
	UploadedBy       *int64
}

// Created is a version CreateVersions made.
type Created struct {
	ID            int64
	FileID        int64
	VersionNumber int32
	StoragePath   string
}

// CreateVersions registers vs in one statement, each as the next version of
// its file, and queues their validations (file:validate) in one more. All of
// vs belong to one project. The caller holds the row locks of files that
// already had versions (FilesLockMany), so the version numbers it reads
// stay its own. The result is in the order of vs.
func CreateVersions(ctx context.Context, q *db.Queries, vs []NewVersion) ([]Created, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	orgID, projectID := vs[0].OrgID, vs[0].ProjectID
	p := db.FileVersionsCreateManyParams{
		OrgID: orgID, ProjectID: projectID,
		FileIds:           make([]int64, len(vs)),
		StorageIds:        make([]int64, len(vs)),
		StoragePaths:      make([]string, len(vs)),
		ExpectedSha256s:   make([]string, len(vs)),
		ExpectedSizes:     make([]int64, len(vs)),
		ExpectedMimeTypes: make([]string, len(vs)),
		UploadedBys:       make([]int64, len(vs)),
		JobLanguages:      make([]string, len(vs)),
		JobPriorities:     make([]string, len(vs)),
		JobDueDates:       make([]string, len(vs)),
	}
	for i, v := range vs {
		if v.OrgID != orgID || v.ProjectID != projectID {
			return nil, fmt.Errorf("create versions: all versions of one call must be of one project (%d and %d)", projectID, v.ProjectID)
		}
		p.FileIds[i], p.StoragePaths[i] = v.FileID, v.StoragePath
		p.StorageIds[i] = deref(v.StorageID, 0)
		p.ExpectedSha256s[i] = deref(v.ExpectedSHA256, "")
		p.ExpectedSizes[i] = deref(v.ExpectedSize, -1)
		p.ExpectedMimeTypes[i] = deref(v.ExpectedMIME, "")
		p.UploadedBys[i] = deref(v.UploadedBy, 0)
		p.JobLanguages[i] = deref(v.Job.Language, "")
		if v.Job.Priority != nil {
			p.JobPriorities[i] = string(*v.Job.Priority)
		}
		if v.Job.DueDate != nil {
			p.JobDueDates[i] = v.Job.DueDate.UTC().Format(time.RFC3339Nano)
		}
	}
	rows, err := q.FileVersionsCreateMany(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("create %d versions in project %d: %w", len(vs), projectID, err)
	}
	if len(rows) != len(vs) {
		return nil, fmt.Errorf("create versions: %d of %d inserted", len(rows), len(vs))
	}
	out := make([]Created, len(rows))
	next := make([]tasks.Queued, len(rows))
	for i, r := range rows {
		if r.FileID != vs[i].FileID {
			return nil, fmt.Errorf("create versions: row %d came back for file %d, not %d", i, r.FileID, vs[i].FileID)
		}
		out[i] = Created{ID: r.ID, FileID: r.FileID, VersionNumber: r.VersionNumber, StoragePath: r.StoragePath}
		next[i] = tasks.Validate{VersionID: r.ID}
	}
	// Registrations by the thousand (sync pages, versions:batch, notifications,
	// imports) are bulk work: an organization's single uploads go first.
	if err := outbox.AddMany(ctx, q, orgID, next, outbox.As(outbox.PriorityBulk)); err != nil {
		return nil, err
	}
	return out, nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
