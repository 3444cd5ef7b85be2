package api

import (
	"encoding/json"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/verify"
)

// The API's response types. Handlers never answer with a sqlc row: each row is
// mapped at the boundary by the …FromRow functions below, so a column added
// to or renamed in a table changes the API only when one of these types changes.
//
// What is left out on purpose, because it is how labelq runs itself rather than
// something a client can act on:
//   - org_id: the tenant key; every answer is of the caller's own organization;
//   - deleted_at: soft deletion; deleted rows are never answered, so it is always null;
//   - validation_attempts, attempts: the workers' retry counters (the task's own
//     retries are at GET /v1/tasks/{task_id});
//   - dedup_key: what makes a redelivered task's event a no-op;
//   - an export's storage_path: where labelq keeps the archive; clients fetch it
//     through GET /v1/exports/{export_id}/download;
//   - a storage's credentials, credentials_key_id and notify_secret_hash: secrets
//     are write-only (has_credentials and access_key_hint say what is stored);
//   - a webhook's sealed secrets (secret, secret_key_id, previous_secret,
//     previous_secret_key_id): its secret is answered in plain once, when made;
//   - a webhook delivery's event_id (the event row; event_id answers the event's
//     public id) and round_start (where the retry schedule's round began).
//
// Fields hold plain Go types (string for enums), never types of internal/db, so that
// generated code cannot leak into the API (TestResponseTypesAreNotRows).

// Project is a labelling project with its LLM, schema and matching settings.
type Project struct {
	ID                     int64           `json:"id"`
	Name                   string          `json:"name"`
	Description            string          `json:"description"`
	RequirementsText       string          `json:"requirements_text"`
	Status                 string          `json:"status"`
	ClientPMID             *int64          `json:"client_pm_id"`
	OurPMID                *int64          `json:"our_pm_id"`
	LLMEnabled             bool            `json:"llm_enabled"`
	LLMModel               string          `json:"llm_model"`
	LLMTemperature         float64         `json:"llm_temperature"`
	LLMMaxTokens           int32           `json:"llm_max_tokens"`
	LLMSystemPrompt        string          `json:"llm_system_prompt"`
	LLMDailyTokenBudget    *int64          `json:"llm_daily_token_budget"`
	AnnotationSchema       json.RawMessage `json:"annotation_schema"`
	MinLanguageProficiency float64         `json:"min_language_proficiency"`
	AssignReviewers        bool            `json:"assign_reviewers"`
	AllowedContentTypes    json.RawMessage `json:"allowed_content_types"`
	// Quality settings (see README "Quality"): each job to Overlap distinct
	// annotators; GoldRate of each annotator's assignments gold jobs; boxes match
	// at QualityIoUThreshold; a gold result passes at QualityPassThreshold; QA
	// rates start from Beta(QualityPriorAlpha, QualityPriorBeta).
	Overlap              int32   `json:"overlap"`
	GoldRate             float64 `json:"gold_rate"`
	QualityIoUThreshold  float64 `json:"quality_iou_threshold"`
	QualityPassThreshold float64 `json:"quality_pass_threshold"`
	QualityPriorAlpha    float64 `json:"quality_prior_alpha"`
	QualityPriorBeta     float64 `json:"quality_prior_beta"`
	// LabelConfig is what the project annotates and with which labels (see
	// GET /v1/projects/{id}/label-config); null when none is set.
	LabelConfig json.RawMessage `json:"label_config"`
	CompletedAt *time.Time      `json:"completed_at"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

func projectFromRow(r db.Project) Project {
	return Project{
		ID: r.ID, Name: r.Name, Description: r.Description, RequirementsText: r.RequirementsText,
		Status: string(r.Status), ClientPMID: r.ClientPmID, OurPMID: r.OurPmID,
		LLMEnabled: r.LlmEnabled, LLMModel: r.LlmModel, LLMTemperature: r.LlmTemperature, LLMMaxTokens: r.LlmMaxTokens,
		LLMSystemPrompt: r.LlmSystemPrompt, LLMDailyTokenBudget: r.LlmDailyTokenBudget,
		AnnotationSchema: r.AnnotationSchema, MinLanguageProficiency: r.MinLanguageProficiency,
		AssignReviewers: r.AssignReviewers, AllowedContentTypes: r.AllowedContentTypes, LabelConfig: r.LabelConfig,
		Overlap: r.Overlap, GoldRate: r.GoldRate, QualityIoUThreshold: r.QualityIouThreshold,
		QualityPassThreshold: r.QualityPassThreshold, QualityPriorAlpha: r.QualityPriorAlpha, QualityPriorBeta: r.QualityPriorBeta,
		CompletedAt: r.CompletedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// User is a person (annotator, reviewer, manager) with their matching inputs.
type User struct {
	ID                 int64           `json:"id"`
	Email              string          `json:"email"`
	Name               string          `json:"name"`
	Role               string          `json:"role"`
	Availability       json.RawMessage `json:"availability"`
	LanguageExpertise  json.RawMessage `json:"language_expertise"`
	SkillScore         *float64        `json:"skill_score"`
	QAApprovalRate     *float64        `json:"qa_approval_rate"`
	MaxActiveJobs      int32           `json:"max_active_jobs"`
	CompletedTaskCount int32           `json:"completed_task_count"`
	IsActive           bool            `json:"is_active"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
}

func userFromRow(r db.User) User {
	return User{
		ID: r.ID, Email: r.Email, Name: r.Name, Role: string(r.Role),
		Availability: r.Availability, LanguageExpertise: r.LanguageExpertise,
		SkillScore: r.SkillScore, QAApprovalRate: r.QaApprovalRate, MaxActiveJobs: r.MaxActiveJobs,
		CompletedTaskCount: r.CompletedTaskCount, IsActive: r.IsActive, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// File is a file of a project; its bytes are its versions.
type File struct {
	ID              int64     `json:"id"`
	ProjectID       int64     `json:"project_id"`
	Name            string    `json:"name"`
	Description     string    `json:"description"`
	FileType        string    `json:"file_type"`
	Status          string    `json:"status"`
	ActiveVersionID *int64    `json:"active_version_id"`
	UploadedBy      *int64    `json:"uploaded_by"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

func fileFromRow(r db.File) File {
	return File{
		ID: r.ID, ProjectID: r.ProjectID, Name: r.Name, Description: r.Description,
		FileType: string(r.FileType), Status: string(r.Status), ActiveVersionID: r.ActiveVersionID,
		UploadedBy: r.UploadedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// Version is one version of a file: what the uploader declared, what the validator
// measured, and its validation status and error.
type Version struct {
	ID            int64  `json:"id"`
	ProjectID     int64  `json:"project_id"`
	FileID        int64  `json:"file_id"`
	VersionNumber int32  `json:"version_number"`
	StoragePath   string `json:"storage_path"`
	// The storage that holds the bytes at storage_path (null: labelq's bucket).
	StorageID           *int64          `json:"storage_id"`
	ExpectedSHA256      *string         `json:"expected_sha256"`
	ExpectedSize        *int64          `json:"expected_size"`
	ExpectedMIMEType    *string         `json:"expected_mime_type"`
	Checksum            *string         `json:"checksum"`
	SizeBytes           *int64          `json:"size_bytes"`
	MIMEType            *string         `json:"mime_type"`
	ValidationStatus    string          `json:"validation_status"`
	ValidationError     *string         `json:"validation_error"`
	ValidatedAt         *time.Time      `json:"validated_at"`
	DuplicateOf         *int64          `json:"duplicate_of"`
	GenerationMethod    string          `json:"generation_method"`
	SourceFileVersionID *int64          `json:"source_file_version_id"`
	LLMModel            *string         `json:"llm_model"`
	LLMParams           json.RawMessage `json:"llm_params"`
	UploadedBy          *int64          `json:"uploaded_by"`
	// What file:validate read from an image's header (JPEG, PNG, GIF, WebP); null
	// for other content and until the version is valid. image_width and
	// image_height are the pixel grid as stored in the file, image_orientation its
	// EXIF orientation (1-8, 1 when it has none); display_width and display_height
	// are the size a viewer shows once the orientation is applied (swapped for
	// 5-8), which is what Label Studio's original_width/original_height are.
	ImageWidth       *int32 `json:"image_width"`
	ImageHeight      *int32 `json:"image_height"`
	ImageOrientation *int32 `json:"image_orientation"`
	DisplayWidth     *int32 `json:"display_width"`
	DisplayHeight    *int32 `json:"display_height"`
	// What happened to the version's pre-annotation: the status of its latest run
	// (pending, running, succeeded, failed, skipped) and why (the failure, the
	// skip, what a waiting run waits for), or skipped with the reason when no run
	// was made (the project's LLM is off); null when it was never asked.
	// GET /v1/versions/{version_id}/llm-runs lists the runs.
	PreannotationStatus *string `json:"preannotation_status"`
	PreannotationReason *string `json:"preannotation_reason"`
	// The attributes the version's annotation job is born with (registration);
	// null takes the defaults: no language, medium, no due date.
	JobLanguage *string    `json:"job_language"`
	JobPriority *string    `json:"job_priority"`
	JobDueDate  *time.Time `json:"job_due_date"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

func versionFromRow(r db.FileVersion) Version {
	dw, dh := displaySize(r.ImageWidth, r.ImageHeight, r.ImageOrientation)
	return Version{
		ImageWidth: r.ImageWidth, ImageHeight: r.ImageHeight, ImageOrientation: r.ImageOrientation,
		DisplayWidth: dw, DisplayHeight: dh,
		ID: r.ID, ProjectID: r.ProjectID, FileID: r.FileID, VersionNumber: r.VersionNumber, StoragePath: r.StoragePath,
		StorageID: r.StorageID, ExpectedSHA256: r.ExpectedSha256, ExpectedSize: r.ExpectedSize, ExpectedMIMEType: r.ExpectedMimeType,
		Checksum: r.Checksum, SizeBytes: r.SizeBytes, MIMEType: r.MimeType,
		ValidationStatus: string(r.ValidationStatus), ValidationError: r.ValidationError, ValidatedAt: r.ValidatedAt,
		DuplicateOf: r.DuplicateOf, GenerationMethod: string(r.GenerationMethod), SourceFileVersionID: r.SourceFileVersionID,
		LLMModel: r.LlmModel, LLMParams: r.LlmParams, UploadedBy: r.UploadedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		JobLanguage: r.JobLanguage, JobPriority: (*string)(r.JobPriority), JobDueDate: r.JobDueDate,
		PreannotationStatus: (*string)(r.PreannotationStatus), PreannotationReason: r.PreannotationReason,
	}
}

// displaySize is an image version's size as a viewer shows it: the stored one,
// width and height swapped for EXIF orientations 5-8 (verify.Image.Displayed).
func displaySize(w, h, orientation *int32) (*int32, *int32) {
	if w == nil || h == nil || orientation == nil {
		return nil, nil
	}
	if verify.Rotated(int(*orientation)) {
		return h, w
	}
	return w, h
}

// Job is the annotation job of a valid version.
type Job struct {
	ID              int64   `json:"id"`
	ProjectID       int64   `json:"project_id"`
	FileID          int64   `json:"file_id"`
	FileVersionID   int64   `json:"file_version_id"`
	Language        *string `json:"language"`
	Priority        string  `json:"priority"`
	Status          string  `json:"status"`
	ReviewStatus    string  `json:"review_status"`
	ResultVersionID *int64  `json:"result_version_id"`
	// Gold: the job has a gold answer (PUT /v1/jobs/{id}/gold), which no route
	// returns.
	Gold        bool       `json:"gold"`
	DueDate     *time.Time `json:"due_date"`
	CompletedAt *time.Time `json:"completed_at"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

func jobFromRow(r db.AnnotationJob) Job {
	return Job{
		ID: r.ID, ProjectID: r.ProjectID, FileID: r.FileID, FileVersionID: r.FileVersionID, Language: r.Language,
		Priority: string(r.Priority), Status: string(r.Status), ReviewStatus: string(r.ReviewStatus),
		ResultVersionID: r.ResultVersionID, Gold: r.Gold, DueDate: r.DueDate, CompletedAt: r.CompletedAt,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// Assignment is a person on a job in a role, with the matcher's score.
type Assignment struct {
	ID        int64      `json:"id"`
	ProjectID int64      `json:"project_id"`
	JobID     int64      `json:"job_id"`
	UserID    int64      `json:"user_id"`
	Role      string     `json:"role"`
	Status    string     `json:"status"`
	Score     float64    `json:"score"`
	RevokedAt *time.Time `json:"revoked_at"`
	// RevokedRule is the hard matching rule the holder broke when labelq
	// revoked the assignment after the job changed ("language"); null for a
	// person's revoke.
	RevokedRule *string `json:"revoked_rule"`
	// ResultVersionID and SubmittedAt: the copy's submitted result.
	ResultVersionID *int64     `json:"result_version_id"`
	SubmittedAt     *time.Time `json:"submitted_at"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

func assignmentFromRow(r db.Assignment) Assignment {
	return Assignment{
		ID: r.ID, ProjectID: r.ProjectID, JobID: r.JobID, UserID: r.UserID, Role: string(r.Role),
		Status: string(r.Status), Score: r.Score, RevokedAt: r.RevokedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		RevokedRule: r.RevokedRule, ResultVersionID: r.ResultVersionID, SubmittedAt: r.SubmittedAt,
	}
}

// Export is a ZIP export: status, progress, checksum and size. Status is
// pending, running, completed, failed or cancelled, or stalled (StatusStalled):
// running, but no heartbeat from its worker (heartbeat_at) for 3 heartbeat
// intervals.
type Export struct {
	ID           int64      `json:"id"`
	ProjectID    int64      `json:"project_id"`
	RequestedBy  *int64     `json:"requested_by"`
	ScheduleID   *int64     `json:"schedule_id"`
	ScheduledFor *time.Time `json:"scheduled_for"`
	// Format is the archive's layout: labelq, or the format the results were
	// converted to (label_studio, json_min, csv, coco, yolo, voc, conll2003).
	Format        string          `json:"format"`
	Options       json.RawMessage `json:"options"`
	Status        string          `json:"status"`
	ArchiveSHA256 *string         `json:"archive_sha256"`
	SizeBytes     *int64          `json:"size_bytes"`
	FileCount     *int32          `json:"file_count"`
	FilesDone     int32           `json:"files_done"`
	FilesTotal    int32           `json:"files_total"`
	BytesDone     int64           `json:"bytes_done"`
	BytesTotal    int64           `json:"bytes_total"`
	Error         *string         `json:"error"`
	// Note is what a person should know about a completed export: why it packed
	// no file (no approved job, every selected version invalid, ...) and what to
	// do; null when there is nothing to say.
	Note *string `json:"note"`
	// StorageID is the export storage the archive goes to (null: labelq's bucket).
	StorageID   *int64     `json:"storage_id"`
	RequestedAt time.Time  `json:"requested_at"`
	StartedAt   *time.Time `json:"started_at"`
	HeartbeatAt *time.Time `json:"heartbeat_at"`
	CompletedAt *time.Time `json:"completed_at"`
	PurgedAt    *time.Time `json:"purged_at"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

func exportFromRow(r db.ExportLog) Export {
	return Export{
		ID: r.ID, ProjectID: r.ProjectID, RequestedBy: r.RequestedBy, ScheduleID: r.ScheduleID, ScheduledFor: r.ScheduledFor,
		Format: r.Format, Options: r.Options, Status: string(r.Status), ArchiveSHA256: r.ArchiveSha256, SizeBytes: r.SizeBytes,
		FileCount: r.FileCount, FilesDone: r.FilesDone, FilesTotal: r.FilesTotal, BytesDone: r.BytesDone, BytesTotal: r.BytesTotal,
		Error: r.Error, Note: r.Note, StorageID: r.StorageID, RequestedAt: r.RequestedAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt, PurgedAt: r.PurgedAt,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, HeartbeatAt: r.HeartbeatAt,
	}
}

// Schedule is an export schedule: a cron spec in a time zone.
type Schedule struct {
	ID        int64  `json:"id"`
	ProjectID int64  `json:"project_id"`
	CronSpec  string `json:"cron_spec"`
	Timezone  string `json:"timezone"`
	// Format is the layout of the schedule's exports (see Export).
	Format      string          `json:"format"`
	Options     json.RawMessage `json:"options"`
	Enabled     bool            `json:"enabled"`
	StorageID   *int64          `json:"storage_id"`
	LastFiredAt *time.Time      `json:"last_fired_at"`
	CreatedBy   *int64          `json:"created_by"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

func scheduleFromRow(r db.ExportSchedule) Schedule {
	return Schedule{
		ID: r.ID, ProjectID: r.ProjectID, CronSpec: r.CronSpec, Timezone: r.Timezone, Format: r.Format, Options: r.Options,
		Enabled: r.Enabled, StorageID: r.StorageID, LastFiredAt: r.LastFiredAt, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// Event is one entry of an entity's history.
type Event struct {
	ID         int64           `json:"id"`
	EntityType string          `json:"entity_type"`
	EntityID   int64           `json:"entity_id"`
	EventType  string          `json:"event_type"`
	UserID     *int64          `json:"user_id"`
	Metadata   json.RawMessage `json:"metadata"`
	OccurredAt time.Time       `json:"occurred_at"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

func eventFromRow(r db.EventLog) Event {
	return Event{
		ID: r.ID, EntityType: string(r.EntityType), EntityID: r.EntityID, EventType: r.EventType, UserID: r.UserID,
		Metadata: r.Metadata, OccurredAt: r.OccurredAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// LLMUsage is a project's pre-annotation runs, cache hits, tokens and cost.
type LLMUsage struct {
	Runs      int64 `json:"runs"`
	PaidCalls int64 `json:"paid_calls"`
	CacheHits int64 `json:"cache_hits"`
	// Failed and Skipped count the runs that ended so (their tokens are in the
	// totals: a failed run was paid for); InProgress those pending or running;
	// Unwrapped the runs whose model wrapped its JSON in a code fence or prose.
	Failed           int64   `json:"failed"`
	Skipped          int64   `json:"skipped"`
	InProgress       int64   `json:"in_progress"`
	Unwrapped        int64   `json:"unwrapped"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CostUSD          float64 `json:"cost_usd"`
}

func llmUsageFromRow(r db.LLMUsageByProjectRow) LLMUsage {
	return LLMUsage{
		Runs: r.Runs, PaidCalls: r.PaidCalls, CacheHits: r.CacheHits,
		Failed: r.Failed, Skipped: r.Skipped, InProgress: r.InProgress, Unwrapped: r.Unwrapped,
		PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, CostUSD: r.CostUsd,
	}
}

// Storage is a bucket and prefix a project imports from or exports to. Its
// credentials are write-only: the answer says only whether it has some and the
// access key's first characters; the notification secret is answered once, by
// the create (and by POST /v1/storages/{storage_id}/notify-secret).
type Storage struct {
	ID        int64  `json:"id"`
	ProjectID int64  `json:"project_id"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	// Endpoint "" is labelq's own bucket; Prefix is then the full key prefix
	// (orgs/<org>/…).
	Endpoint       string          `json:"endpoint"`
	Bucket         string          `json:"bucket"`
	Prefix         string          `json:"prefix"`
	Region         string          `json:"region"`
	UseTLS         bool            `json:"use_tls"`
	HasCredentials bool            `json:"has_credentials"`
	AccessKeyHint  string          `json:"access_key_hint"`
	KeyFilter      string          `json:"key_filter"`
	KeyFilterKind  string          `json:"key_filter_kind"`
	FileType       string          `json:"file_type"`
	Rules          json.RawMessage `json:"rules"`
	ArchiveGone    bool            `json:"archive_gone"`
	SyncCron       *string         `json:"sync_cron"`
	SyncTimezone   string          `json:"sync_timezone"`
	Enabled        bool            `json:"enabled"`
	// NotificationURL receives the bucket's event notifications (import
	// storages); NotifySecret authenticates them and is only in the create answer.
	NotificationURL *string   `json:"notification_url"`
	NotifySecret    *string   `json:"notify_secret,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

func storageFromRow(r db.Storage) Storage {
	s := Storage{
		ID: r.ID, ProjectID: r.ProjectID, Kind: string(r.Kind), Name: r.Name, Endpoint: r.Endpoint, Bucket: r.Bucket,
		Prefix: r.Prefix, Region: r.Region, UseTLS: r.UseTls, HasCredentials: r.Credentials != nil, AccessKeyHint: r.AccessKeyHint,
		KeyFilter: r.KeyFilter, KeyFilterKind: r.KeyFilterKind, FileType: string(r.FileType), Rules: r.Rules,
		ArchiveGone: r.ArchiveGone, SyncCron: r.SyncCron, SyncTimezone: r.SyncTimezone, Enabled: r.Enabled,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.Kind == db.StorageKindImport {
		u := notificationPath(r.ID)
		s.NotificationURL = &u
	}
	return s
}

// forReplay is what an Idempotency-Key keeps of a create's answer: everything
// but the notification secret, which is shown once.
func (s Storage) forReplay() any {
	s.NotifySecret = nil
	return s
}

// SyncRun is one sync of an import storage: its status, the checkpoint it
// resumes from, its counts so far (live while it runs), the first keys it
// skipped with their reason, and why it failed. Its status is one of Export's.
type SyncRun struct {
	ID                int64           `json:"id"`
	ProjectID         int64           `json:"project_id"`
	StorageID         int64           `json:"storage_id"`
	Trigger           string          `json:"trigger"`
	ScheduledFor      *time.Time      `json:"scheduled_for"`
	Status            string          `json:"status"`
	Checkpoint        *string         `json:"checkpoint"`
	Pages             int32           `json:"pages"`
	KeysListed        int64           `json:"keys_listed"`
	KeysNew           int64           `json:"keys_new"`
	KeysChanged       int64           `json:"keys_changed"`
	KeysUnchanged     int64           `json:"keys_unchanged"`
	KeysFiltered      int64           `json:"keys_filtered"`
	KeysGone          int64           `json:"keys_gone"`
	KeysSkipped       int64           `json:"keys_skipped"`
	Skipped           json.RawMessage `json:"skipped"`
	Error             *string         `json:"error"`
	CancelRequestedAt *time.Time      `json:"cancel_requested_at"`
	RequestedAt       time.Time       `json:"requested_at"`
	StartedAt         *time.Time      `json:"started_at"`
	HeartbeatAt       *time.Time      `json:"heartbeat_at"`
	CompletedAt       *time.Time      `json:"completed_at"`
	CreatedAt         time.Time       `json:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
}

func syncRunFromRow(r db.SyncRun) SyncRun {
	return SyncRun{
		ID: r.ID, ProjectID: r.ProjectID, StorageID: r.StorageID, Trigger: r.Trigger, ScheduledFor: r.ScheduledFor,
		Status: string(r.Status), Checkpoint: r.Checkpoint, Pages: r.Pages, KeysListed: r.KeysListed, KeysNew: r.KeysNew,
		KeysChanged: r.KeysChanged, KeysUnchanged: r.KeysUnchanged, KeysFiltered: r.KeysFiltered, KeysGone: r.KeysGone,
		KeysSkipped: r.KeysSkipped, Skipped: r.Skipped, Error: r.Error, CancelRequestedAt: r.CancelRequestedAt,
		RequestedAt: r.RequestedAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		HeartbeatAt: r.HeartbeatAt,
	}
}

// Webhook is an endpoint that receives the organization's events, signed with
// its secret (Standard Webhooks). The secret is answered once, by the create
// (and POST /v1/webhooks/{webhook_id}/rotate-secret answers a new one).
type Webhook struct {
	ID          int64  `json:"id"`
	URL         string `json:"url"`
	Description string `json:"description"`
	// EventTypes empty: every type; ProjectIDs empty: every project.
	EventTypes []string `json:"event_types"`
	ProjectIDs []int64  `json:"project_ids"`
	Enabled    bool     `json:"enabled"`
	// DisabledReason says why labelq disabled the endpoint (410 Gone, failing
	// for days); null when a person did, or while it is enabled.
	DisabledReason *string    `json:"disabled_reason"`
	DisabledAt     *time.Time `json:"disabled_at"`
	// FailingSince is the first failed attempt since the last success.
	FailingSince  *time.Time `json:"failing_since"`
	LastSuccessAt *time.Time `json:"last_success_at"`
	// SecretRotationExpiresAt is, after a rotation, when the previous secret
	// stops signing (null once it has).
	SecretRotationExpiresAt *time.Time `json:"secret_rotation_expires_at"`
	Secret                  *string    `json:"secret,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

func webhookFromRow(r db.WebhookEndpoint) Webhook {
	return Webhook{
		ID: r.ID, URL: r.Url, Description: r.Description, EventTypes: r.EventTypes, ProjectIDs: r.ProjectIds,
		Enabled: r.Enabled, DisabledReason: r.DisabledReason, DisabledAt: r.DisabledAt, FailingSince: r.FailingSince,
		LastSuccessAt: r.LastSuccessAt, SecretRotationExpiresAt: r.PreviousSecretExpiresAt,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// forReplay is what an Idempotency-Key keeps of a create's answer: everything
// but the signing secret, which is shown once.
func (w Webhook) forReplay() any {
	w.Secret = nil
	return w
}

// WebhookDelivery is one event's delivery to one endpoint: pending until an
// attempt succeeds or the retry schedule is spent, with every attempt.
type WebhookDelivery struct {
	ID        int64 `json:"id"`
	WebhookID int64 `json:"webhook_id"`
	// EventID is the event's id: the webhook-id header and the body's id, the
	// same on every attempt and redelivery.
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	Status    string `json:"status"`
	// Attempts are the attempts made, every round; Round counts redeliveries.
	Attempts int32 `json:"attempts"`
	Round    int32 `json:"round"`
	// NextAttemptAt is when a pending delivery is attempted next (null once it
	// has finished).
	NextAttemptAt  *time.Time       `json:"next_attempt_at"`
	LastStatusCode *int32           `json:"last_status_code"`
	LastError      *string          `json:"last_error"`
	FinishedAt     *time.Time       `json:"finished_at"`
	AttemptLog     []WebhookAttempt `json:"attempt_log"`
	CreatedAt      time.Time        `json:"created_at"`
	UpdatedAt      time.Time        `json:"updated_at"`
}

func webhookDeliveryFromRow(r db.WebhookDeliveryGetRow) WebhookDelivery {
	d := WebhookDelivery{
		ID: r.ID, WebhookID: r.EndpointID, EventID: r.PublicID, EventType: r.EventType, Status: string(r.Status),
		Attempts: r.Attempts, Round: r.Round, LastStatusCode: r.LastStatusCode, LastError: r.LastError,
		FinishedAt: r.FinishedAt, AttemptLog: []WebhookAttempt{}, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.Status == db.WebhookDeliveryStatusPending {
		d.NextAttemptAt = &r.NextAttemptAt
	}
	return d
}

// WebhookAttempt is one HTTP attempt of a delivery: what the receiver answered
// (the first 1 KiB of its body), how long it took, and what came of it
// (succeeded, retry, failed, or gone: 410 disabled the endpoint).
type WebhookAttempt struct {
	Attempt      int32     `json:"attempt"`
	StartedAt    time.Time `json:"started_at"`
	LatencyMs    int32     `json:"latency_ms"`
	StatusCode   *int32    `json:"status_code"`
	ResponseBody string    `json:"response_body"`
	Error        *string   `json:"error"`
	Outcome      string    `json:"outcome"`
	CreatedAt    time.Time `json:"created_at"`
}

func webhookAttemptFromRow(r db.WebhookAttempt) WebhookAttempt {
	return WebhookAttempt{
		Attempt: r.Attempt, StartedAt: r.StartedAt, LatencyMs: r.LatencyMs, StatusCode: r.StatusCode,
		ResponseBody: r.ResponseBody, Error: r.Error, Outcome: r.Outcome, CreatedAt: r.CreatedAt,
	}
}

// listOf maps rows to the list envelope; no rows is an empty list, never null.
func listOf[R, T any](rows []R, from func(R) T) List[T] {
	items := make([]T, len(rows))
	for i, r := range rows {
		items[i] = from(r)
	}
	return List[T]{Items: items}
}
