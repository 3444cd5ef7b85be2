package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
)

// FileInput creates a file in a project.
type FileInput struct {
	Name        string  `json:"name"`
	Description *string `json:"description"`
	FileType    *string `json:"file_type"`
}

func createFile(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	var in FileInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	var v Validation
	v.Check(in.Name != "", "name", "is required")
	v.Check(len(in.Name) <= 1024, "name", "must be at most 1024 bytes")
	v.Check(in.FileType == nil || db.FileType(*in.FileType).Valid(), "file_type", "must be one of dataset, requirement, annotation_results, llm_output")
	for _, r := range in.Name {
		if r < 0x20 || r == 0x7f {
			v.Add("name", "must not contain control characters")
			break
		}
	}
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	ft := db.FileTypeDataset
	if in.FileType != nil {
		ft = db.FileType(*in.FileType)
	}
	f, err := c.Q.FileCreate(c.R.Context(), db.FileCreateParams{
		OrgID: c.OrgID, ProjectID: pid, Name: in.Name, Description: deref(in.Description), FileType: ft,
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, fileFromRow(f), nil
}

func getFile(c *Call) (int, any, error) {
	return getByID(c, "file_id", "file", func(ctx context.Context, id int64) (any, error) {
		f, err := c.Q.FileGet(ctx, db.FileGetParams{ID: id, OrgID: c.OrgID})
		return fileFromRow(f), err
	})
}

func listFiles(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	fs, err := c.Q.FileListByProject(c.R.Context(), db.FileListByProjectParams{ProjectID: pid, OrgID: c.OrgID, AfterID: after, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(fs, fileFromRow), nil
}

// UploadURL is where a client PUTs the bytes of a new version before registering it.
type UploadURL struct {
	StoragePath string    `json:"storage_path"`
	Method      string    `json:"method"`
	URL         string    `json:"url"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func uploadURL(c *Call) (int, any, error) {
	id, err := pathID(c.R, "file_id")
	if err != nil {
		return 0, nil, err
	}
	f, err := c.Q.FileGet(c.R.Context(), db.FileGetParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "file")
	}
	key := fmt.Sprintf("orgs/%d/projects/%d/files/%d/%s", c.OrgID, f.ProjectID, f.ID, newRequestID())
	ttl := cmp.Or(c.S.UploadURLTTL, DefaultUploadURLTTL)
	u, err := c.S.Store.PresignPut(c.R.Context(), key, ttl)
	if err != nil {
		return 0, nil, fmt.Errorf("presign upload: %w", err)
	}
	return http.StatusOK, UploadURL{StoragePath: key, Method: http.MethodPut, URL: u.String(), ExpiresAt: c.S.now().Add(ttl)}, nil
}

// VersionInput registers an object already in the bucket as a file's next version.
// Language, Priority and DueDate are the attributes of the annotation job the
// version gets once valid: the job is born with them, so matching never sees it
// without its language. Omitted, the job has no language, priority medium and no
// due date, as before.
type VersionInput struct {
	StoragePath string  `json:"storage_path"`
	SHA256      *string `json:"sha256"`
	Size        *int64  `json:"size"`
	MIMEType    *string `json:"mime_type"`
	// Language is a code such as en, zh or pt-BR.
	Language *string `json:"language"`
	// Priority is low, medium or high.
	Priority *string `json:"priority"`
	// DueDate is an RFC 3339 time. One already past is accepted, as PATCH
	// /v1/jobs/{id} accepts it: the job is overdue and matching serves it first.
	DueDate *string `json:"due_date"`
}

// jobAttrs are the job attributes a registration carries, checked.
type jobAttrs struct {
	language *string
	priority *db.JobPriority
	dueDate  *time.Time
}

// checkJobAttrs checks a registration's language, priority and due date (the
// same rules as PATCH /v1/jobs/{id}), naming the fields with field.
func checkJobAttrs(v *Validation, field func(string) string, lang, prio, due *string) jobAttrs {
	var a jobAttrs
	if lang != nil {
		if languageCode.MatchString(*lang) {
			a.language = lang
		} else {
			v.Add(field("language"), "is not a language code such as en, zh or pt-BR")
		}
	}
	if prio != nil {
		if p := db.JobPriority(*prio); p.Valid() {
			a.priority = &p
		} else {
			v.Add(field("priority"), "must be low, medium or high")
		}
	}
	if due != nil {
		if d, err := time.Parse(time.RFC3339, *due); err == nil {
			a.dueDate = &d
		} else {
			v.Add(field("due_date"), "%q is not an RFC 3339 time such as 2026-12-31T18:00:00Z", *due)
		}
	}
	return a
}

// Enqueued answers every enqueueing call: the ids to poll.
type Enqueued struct {
	ID        int64  `json:"id"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	TaskID    string `json:"task_id"`
	StatusURL string `json:"status_url"`
	TaskURL   string `json:"task_url"`
}

func enqueued(kind string, id int64, status, taskID, statusURL string) Enqueued {
	return Enqueued{ID: id, Kind: kind, Status: status, TaskID: taskID, StatusURL: statusURL, TaskURL: "/v1/tasks/" + taskID}
}

func registerVersion(c *Call) (int, any, error) {
	id, err := pathID(c.R, "file_id")
	if err != nil {
		return 0, nil, err
	}
	var in VersionInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	var v Validation
	checkStorageKey(&v, "storage_path", in.StoragePath, c.OrgID)
	sum := normalizeSHA256(&v, "sha256", in.SHA256)
	mt := normalizeMIME(&v, "mime_type", in.MIMEType)
	if in.Size != nil {
		v.Check(*in.Size >= 0, "size", "must not be negative")
	}
	job := checkJobAttrs(&v, func(f string) string { return f }, in.Language, in.Priority, in.DueDate)
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	f, err := c.Q.FileGetForUpdateInOrg(ctx, db.FileGetForUpdateInOrgParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "file")
	}
	ver, err := c.Q.FileVersionCreate(ctx, db.FileVersionCreateParams{
		OrgID: c.OrgID, ProjectID: f.ProjectID, FileID: f.ID, StoragePath: in.StoragePath,
		ExpectedSha256: sum, ExpectedSize: in.Size, ExpectedMimeType: mt,
		JobLanguage: job.language, JobPriority: job.priority, JobDueDate: job.dueDate,
	})
	if err != nil {
		return 0, nil, err
	}
	next := tasks.Validate{VersionID: ver.ID}
	if err := outbox.Add(ctx, c.Q, c.OrgID, next); err != nil {
		return 0, nil, err
	}
	if err := event(ctx, c, db.EntityTypeFileVersion, ver.ID, "uploaded", map[string]any{
		"file_id": f.ID, "version_number": ver.VersionNumber, "storage_path": ver.StoragePath,
	}); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, enqueued("file_version", ver.ID, string(ver.ValidationStatus), next.TaskID(),
		fmt.Sprintf("/v1/versions/%d", ver.ID)), nil
}

func getVersion(c *Call) (int, any, error) {
	return getByID(c, "version_id", "version", func(ctx context.Context, id int64) (any, error) {
		v, err := c.Q.FileVersionGet(ctx, db.FileVersionGetParams{ID: id, OrgID: c.OrgID})
		return versionFromRow(v), err
	})
}

func listVersions(c *Call) (int, any, error) {
	id, err := pathID(c.R, "file_id")
	if err != nil {
		return 0, nil, err
	}
	if _, err := c.Q.FileGet(c.R.Context(), db.FileGetParams{ID: id, OrgID: c.OrgID}); err != nil {
		return 0, nil, orNotFound(err, "file")
	}
	vs, err := c.Q.FileVersionListByFile(c.R.Context(), db.FileVersionListByFileParams{FileID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(vs, versionFromRow), nil
}

func revalidateVersion(c *Call) (int, any, error) {
	id, err := pathID(c.R, "version_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	v, err := c.Q.FileVersionResetForRevalidation(ctx, db.FileVersionResetForRevalidationParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "version")
	}
	next := tasks.Validate{VersionID: v.ID, Run: "re" + newRequestID()}
	if err := outbox.Add(ctx, c.Q, c.OrgID, next); err != nil {
		return 0, nil, err
	}
	if err := event(ctx, c, db.EntityTypeFileVersion, v.ID, "revalidation_requested", nil); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, enqueued("file_version", v.ID, string(v.ValidationStatus), next.TaskID(),
		fmt.Sprintf("/v1/versions/%d", v.ID)), nil
}

func preannotateVersion(c *Call) (int, any, error) {
	id, err := pathID(c.R, "version_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	v, err := c.Q.FileVersionGet(ctx, db.FileVersionGetParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "version")
	}
	if v.ValidationStatus != db.ValidationStatusValid {
		return 0, nil, conflict(fmt.Sprintf("version %d is %s; only valid versions are pre-annotated", v.ID, v.ValidationStatus))
	}
	p, err := c.Q.ProjectGet(ctx, db.ProjectGetParams{ID: v.ProjectID, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	if p.LlmModel == "" {
		return 0, nil, conflict("the project has no llm_model; set one with PATCH /v1/projects/{project_id}")
	}
	next := tasks.Preannotate{VersionID: v.ID, Run: "now" + newRequestID()}
	if err := outbox.Add(ctx, c.Q, c.OrgID, next); err != nil {
		return 0, nil, err
	}
	if err := event(ctx, c, db.EntityTypeFileVersion, v.ID, "preannotation_requested", nil); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, enqueued("file_version", v.ID, string(v.ValidationStatus), next.TaskID(),
		fmt.Sprintf("/v1/versions/%d", v.ID)), nil
}

func event(ctx context.Context, c *Call, et db.EntityType, id int64, typ string, meta map[string]any) error {
	if meta == nil {
		meta = map[string]any{}
	}
	meta["token_id"] = c.TokenID
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	return c.Q.EventLogInsert(ctx, db.EventLogInsertParams{OrgID: c.OrgID, EntityType: et, EntityID: id, EventType: typ, Metadata: b})
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
