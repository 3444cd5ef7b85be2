// Package webhook is labelq's side of the webhooks a platform receives: the event
// types and their payloads (one Go type per type, which is also the schema the
// OpenAPI document publishes), Emit (which a state change calls in its own
// transaction to write the event and one delivery intent per subscribed endpoint),
// the Standard Webhooks signature, the retry schedule and the rules for which URLs
// and addresses a delivery may reach. The webhook:deliver worker (worker/webhook)
// and the API's /v1/webhooks routes build on it.
package webhook

import (
	"reflect"
	"slices"
	"time"
)

// Event types. A type is never renamed once shipped: endpoints subscribe to them.
const (
	FileVersionValidated = "file_version.validated"
	FileVersionCorrupt   = "file_version.corrupt"
	FileVersionRejected  = "file_version.rejected"
	FileVersionMissing   = "file_version.missing"

	PreannotationSucceeded = "preannotation.succeeded"
	PreannotationFailed    = "preannotation.failed"
	PreannotationSkipped   = "preannotation.skipped"

	AssignmentCreated = "assignment.created"
	AssignmentRevoked = "assignment.revoked"
	MatchCompleted    = "match.completed"

	ExportCompleted = "export.completed"
	ExportFailed    = "export.failed"
	ExportCancelled = "export.cancelled"

	StorageSyncCompleted = "storage_sync.completed"
	StorageSyncFailed    = "storage_sync.failed"

	SubmissionScored = "submission.scored"
	SubmissionFailed = "submission.failed"

	WebhookTest     = "webhook.test"
	WebhookDisabled = "webhook.disabled"
)

// Envelope is the JSON every delivery posts: the Standard Webhooks shape (type,
// timestamp, data) with the event id and the organization beside them. ID is also
// the webhook-id header.
type Envelope struct {
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	Timestamp      time.Time `json:"timestamp"`
	OrganizationID int64     `json:"organization_id"`
	Data           any       `json:"data"`
}

// FileVersionData is the data of file_version.* events: a version's validation
// ended. Status is the event's last word (valid, corrupt, rejected, missing).
type FileVersionData struct {
	FileVersionID  int64   `json:"file_version_id"`
	FileID         int64   `json:"file_id"`
	ProjectID      int64   `json:"project_id"`
	VersionNumber  int32   `json:"version_number"`
	FileType       string  `json:"file_type"`
	Filename       string  `json:"filename"`
	StorageKey     string  `json:"storage_key"`
	StorageID      *int64  `json:"storage_id,omitempty"`
	Status         string  `json:"status"`
	SizeBytes      *int64  `json:"size_bytes,omitempty"`
	ChecksumSHA256 *string `json:"checksum_sha256,omitempty"`
	ContentType    *string `json:"content_type,omitempty"`
	// Reason says why a version is not valid, for a person.
	Reason *string `json:"reason,omitempty"`
	// Codes are the machine-readable findings (truncated, bad_magic, ...).
	Codes []string `json:"codes,omitempty"`
	// JobID is the annotation job a valid dataset version created or updated.
	JobID *int64 `json:"job_id,omitempty"`
}

// PreannotationData is the data of preannotation.* events.
type PreannotationData struct {
	FileVersionID int64  `json:"file_version_id"`
	FileID        int64  `json:"file_id"`
	ProjectID     int64  `json:"project_id"`
	LLMRunID      *int64 `json:"llm_run_id,omitempty"`
	// OutputVersionID is the llm_output version holding the model's answer.
	OutputVersionID  *int64   `json:"output_version_id,omitempty"`
	Model            string   `json:"model,omitempty"`
	Status           string   `json:"status"`
	Reason           *string  `json:"reason,omitempty"`
	PromptTokens     *int32   `json:"prompt_tokens,omitempty"`
	CompletionTokens *int32   `json:"completion_tokens,omitempty"`
	CostUSD          *float64 `json:"cost_usd,omitempty"`
	// RegionsRepaired and RegionsDropped are set when the output is a Label
	// Studio prediction built from the project's label config: the spans
	// whose offsets were repaired from their quoted text, and the items left
	// out (a quote not in the text, a box past the image's edge).
	RegionsRepaired *int `json:"regions_repaired,omitempty"`
	RegionsDropped  *int `json:"regions_dropped,omitempty"`
}

// AssignmentData is the data of assignment.created and assignment.revoked.
type AssignmentData struct {
	AssignmentID int64    `json:"assignment_id"`
	JobID        int64    `json:"job_id"`
	ProjectID    int64    `json:"project_id"`
	UserID       int64    `json:"user_id"`
	Role         string   `json:"role"` // annotator, reviewer or qc
	FileID       *int64   `json:"file_id,omitempty"`
	Status       string   `json:"status"`
	Score        *float64 `json:"score,omitempty"`
	// Reason and Rule say why an assignment was revoked.
	Reason *string `json:"reason,omitempty"`
	Rule   *string `json:"rule,omitempty"`
}

// MatchData is the data of match.completed: one matching run of a project.
type MatchData struct {
	ProjectID  int64   `json:"project_id"`
	Assigned   int     `json:"assigned"`
	Unassigned int     `json:"unassigned"`
	Objective  float64 `json:"objective"`
	// AssignmentIDs are the assignments this run created (at most 1,000; the
	// assignment.created events carry each).
	AssignmentIDs []int64 `json:"assignment_ids"`
}

// ExportData is the data of export.* events.
type ExportData struct {
	ExportID  int64  `json:"export_id"`
	ProjectID int64  `json:"project_id"`
	Status    string `json:"status"`
	Trigger   string `json:"trigger"`
	// Format is the archive's layout: labelq, or the format it was converted
	// to (coco, yolo, ...).
	Format string `json:"format,omitempty"`
	// DownloadPath is the API route that answers a fresh download URL (GET with a
	// read token); the archive's own URL expires, so none is sent.
	DownloadPath   *string `json:"download_path,omitempty"`
	StorageID      *int64  `json:"storage_id,omitempty"`
	StorageKey     *string `json:"storage_key,omitempty"`
	SizeBytes      *int64  `json:"size_bytes,omitempty"`
	ChecksumSHA256 *string `json:"checksum_sha256,omitempty"`
	Files          *int64  `json:"files,omitempty"`
	Reason         *string `json:"reason,omitempty"`
}

// StorageSyncData is the data of storage_sync.* events: a sync run ended.
type StorageSyncData struct {
	SyncRunID     int64   `json:"sync_run_id"`
	StorageID     int64   `json:"storage_id"`
	ProjectID     int64   `json:"project_id"`
	Status        string  `json:"status"`
	Trigger       string  `json:"trigger"`
	Pages         int32   `json:"pages"`
	KeysListed    int64   `json:"keys_listed"`
	KeysNew       int64   `json:"keys_new"`
	KeysChanged   int64   `json:"keys_changed"`
	KeysUnchanged int64   `json:"keys_unchanged"`
	KeysFiltered  int64   `json:"keys_filtered"`
	KeysGone      int64   `json:"keys_gone"`
	KeysSkipped   int64   `json:"keys_skipped"`
	Reason        *string `json:"reason,omitempty"`
}

// WebhookTestData is the data of webhook.test, the ping POST /v1/webhooks/{id}/test sends.
type WebhookTestData struct {
	WebhookID int64  `json:"webhook_id"`
	Message   string `json:"message"`
}

// WebhookDisabledData is the data of webhook.disabled: labelq disabled an endpoint
// (410 Gone, or every attempt failing for LABELQ_WEBHOOK_DISABLE_AFTER). It goes
// to the organization's other endpoints that subscribe to it.
type WebhookDisabledData struct {
	WebhookID    int64      `json:"webhook_id"`
	URL          string     `json:"url"`
	Reason       string     `json:"reason"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
}

// SubmissionData is the data of submission.* events: one scoring of one
// annotator's result for a job. It never carries the gold answer.
type SubmissionData struct {
	SubmissionID    int64    `json:"submission_id"`
	ProjectID       int64    `json:"project_id"`
	JobID           int64    `json:"job_id"`
	UserID          int64    `json:"user_id"`
	ResultVersionID int64    `json:"result_version_id"`
	Kind            string   `json:"kind"`   // gold or peer
	Status          string   `json:"status"` // completed or failed
	Score           *float64 `json:"score"`
	Passed          *bool    `json:"passed"` // gold only: score ≥ the project's pass threshold
	Metric          *string  `json:"metric"`
	Rank            *int32   `json:"rank"` // the annotator's place on the project's leaderboard
	Reason          *string  `json:"reason"`
	// QAApprovalRate and SkillScore are the annotator's values after a scored
	// gold submission updated them (nil otherwise).
	QAApprovalRate *float64 `json:"qa_approval_rate"`
	SkillScore     *float64 `json:"skill_score"`
}

// TypeInfo is one event type: its name, what it means, and its data's Go type
// (the OpenAPI schema).
type TypeInfo struct {
	Type        string
	Description string
	Data        reflect.Type
}

// Types lists every event type, in a stable order.
func Types() []TypeInfo {
	fv := reflect.TypeFor[FileVersionData]()
	pa := reflect.TypeFor[PreannotationData]()
	as := reflect.TypeFor[AssignmentData]()
	ex := reflect.TypeFor[ExportData]()
	ss := reflect.TypeFor[StorageSyncData]()
	sb := reflect.TypeFor[SubmissionData]()
	return []TypeInfo{
		{FileVersionValidated, "A version passed validation (status valid); a dataset version's job_id is its annotation job.", fv},
		{FileVersionCorrupt, "A version's bytes do not match its checksum or cannot be read as its type (status corrupt, with the reason and codes).", fv},
		{FileVersionRejected, "A version was refused by a rule: size, type, archive limits (status rejected, with the reason).", fv},
		{FileVersionMissing, "A version's object never arrived in storage (status missing).", fv},
		{PreannotationSucceeded, "The model answered; output_version_id holds its llm_output version.", pa},
		{PreannotationFailed, "Pre-annotation failed for good (the reason says why).", pa},
		{PreannotationSkipped, "Pre-annotation was not needed or not possible (the reason says why).", pa},
		{AssignmentCreated, "Matching assigned a job to an annotator.", as},
		{AssignmentRevoked, "An assignment was revoked (by a person, or by a rule the job no longer meets).", as},
		{MatchCompleted, "A matching run of a project committed.", reflect.TypeFor[MatchData]()},
		{ExportCompleted, "An export archive is in storage; download_path answers its URL.", ex},
		{ExportFailed, "An export failed for good (the reason says why).", ex},
		{ExportCancelled, "An export was cancelled.", ex},
		{StorageSyncCompleted, "A storage sync run finished, with its counts.", ss},
		{StorageSyncFailed, "A storage sync run failed (the reason says why).", ss},
		{SubmissionScored, "A submitted result was scored (against the job's gold answer, or the other annotators' results); a gold one also updates the annotator's qa_approval_rate and skill_score.", sb},
		{SubmissionFailed, "A submitted result could not be scored (the reason says why); it is not retried.", sb},
		{WebhookTest, "A test ping (POST /v1/webhooks/{id}/test), sent to that endpoint only.", reflect.TypeFor[WebhookTestData]()},
		{WebhookDisabled, "labelq disabled an endpoint (410 Gone, or failing for days); sent to the organization's other endpoints.", reflect.TypeFor[WebhookDisabledData]()},
	}
}

// Known says whether typ is an event type.
func Known(typ string) bool {
	return slices.ContainsFunc(Types(), func(t TypeInfo) bool { return t.Type == typ })
}
