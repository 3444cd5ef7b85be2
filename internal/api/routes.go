package api

import (
	"net/http"

	"github.com/labelq/labelq/internal/admin"
)

// Routes is the whole API, one row per endpoint.
func (s *Server) Routes() []Route {
	const (
		ok        = http.StatusOK
		created   = http.StatusCreated
		accepted  = http.StatusAccepted
		noContent = http.StatusNoContent
	)
	// The scope a token needs: read for every GET, upload for bringing files in,
	// manage for everything else that changes state, and for every webhook route
	// (where an organization's events go and what its receivers answered is the
	// managers' business); ScopeStorageSecret for the routes a bucket calls,
	// which take no token.
	const (
		read   = admin.ScopeRead
		upload = admin.ScopeUpload
		manage = admin.ScopeManage
	)
	return []Route{
		{"POST", "/v1/projects", "Create a project", "projects", ProjectInput{}, Project{}, created, createProject, manage},
		{"GET", "/v1/projects", "List projects", "projects", nil, List[Project]{}, ok, listProjects, read},
		{"GET", "/v1/projects/{project_id}", "Read a project", "projects", nil, Project{}, ok, getProject, read},
		{"PATCH", "/v1/projects/{project_id}", "Update a project (LLM, schema and matching settings)", "projects", ProjectInput{}, Project{}, ok, updateProject, manage},
		{"GET", "/v1/projects/{project_id}/llm-usage", "LLM runs, cache hits, tokens and cost of a project", "projects", nil, LLMUsage{}, ok, llmUsage, read},
		{"PUT", "/v1/projects/{project_id}/label-config", "Set a project's label config: JSON, or a Label Studio XML label config (Content-Type: application/xml)", "projects", LabelConfigInput{}, LabelConfig{}, ok, putLabelConfig, manage},
		{"GET", "/v1/projects/{project_id}/label-config", "Read a project's label config (404 when none is set)", "projects", nil, LabelConfig{}, ok, getLabelConfig, read},

		{"POST", "/v1/users", "Create a person (annotator, reviewer, manager) with their matching inputs", "people", UserInput{}, User{}, created, createUser, manage},
		{"GET", "/v1/users", "List people", "people", nil, List[User]{}, ok, listUsers, read},
		{"GET", "/v1/users/{user_id}", "Read a person", "people", nil, User{}, ok, getUser, read},
		{"PATCH", "/v1/users/{user_id}", "Update a person's languages, skills, availability or capacity", "people", UserInput{}, User{}, ok, updateUser, manage},

		{"POST", "/v1/projects/{project_id}/files", "Create a file in a project", "files", FileInput{}, File{}, created, createFile, upload},
		{"GET", "/v1/projects/{project_id}/files", "List a project's files", "files", nil, List[File]{}, ok, listFiles, read},
		{"GET", "/v1/files/{file_id}", "Read a file", "files", nil, File{}, ok, getFile, read},
		{"POST", "/v1/files/{file_id}/upload-url", "Get a presigned PUT URL and key for a new version", "files", nil, UploadURL{}, ok, uploadURL, upload},
		{"POST", "/v1/files/{file_id}/versions", "Register an uploaded version; starts the pipeline (validate → pre-annotate → match)", "files", VersionInput{}, Enqueued{}, accepted, registerVersion, upload},
		{"POST", "/v1/projects/{project_id}/versions:batch", "Register up to 1,000 uploaded versions in one transaction, with a result per item (created, duplicate or invalid)", "files", BatchInput{}, BatchResult{}, accepted, registerBatch, upload},
		{"POST", "/v1/projects/{project_id}/imports", "Import a Label Studio JSON export (up to 10,000 tasks, ?approve=false to leave annotated jobs for review) in one transaction: files, versions, jobs with their results, predictions; a result per task (created or invalid)", "files", ImportInput{}, ImportResult{}, accepted, importTasks, manage},
		{"GET", "/v1/files/{file_id}/versions", "List a file's versions", "files", nil, List[Version]{}, ok, listVersions, read},
		{"GET", "/v1/versions/{version_id}", "Read a version with its validation status and error", "files", nil, Version{}, ok, getVersion, read},
		{"POST", "/v1/versions/{version_id}/revalidate", "Validate a version again", "files", nil, Enqueued{}, accepted, revalidateVersion, upload},
		{"POST", "/v1/versions/{version_id}/preannotate", "Pre-annotate a valid version now", "files", nil, Enqueued{}, accepted, preannotateVersion, upload},
		{"GET", "/v1/versions/{version_id}/llm-runs", "List a version's pre-annotation runs, newest first: status, tokens, cost, attempts, error, and the raw reply (8 KiB at most) of a failed one", "files", nil, List[LLMRun]{}, ok, listVersionLLMRuns, read},

		{"GET", "/v1/projects/{project_id}/jobs", "List a project's annotation jobs", "matching", nil, List[Job]{}, ok, listJobs, read},
		{"PATCH", "/v1/jobs/{job_id}", "Update a job's status, review status or approved result", "matching", JobInput{}, Job{}, ok, updateJob, manage},
		{"POST", "/v1/projects/{project_id}/match", "Run assignment matching for a project now", "matching", nil, Enqueued{}, accepted, runMatch, manage},
		{"GET", "/v1/projects/{project_id}/assignments", "List a project's assignments with their scores", "matching", nil, List[Assignment]{}, ok, listAssignments, read},
		{"PUT", "/v1/jobs/{job_id}/gold", "Set (or replace) a job's gold answer, a Label Studio result checked against the label config; write-only: no route, export, event, webhook or log returns it", "quality", GoldInput{}, Job{}, ok, putGold, manage},
		{"DELETE", "/v1/jobs/{job_id}/gold", "Remove a job's gold answer", "quality", nil, Job{}, ok, deleteGold, manage},
		{"POST", "/v1/assignments/{assignment_id}/submit", "Submit an annotator's copy of a job with its result: scored against the job's gold answer, and against the other copies once every copy is in", "quality", SubmitInput{}, Submitted{}, accepted, submitAssignment, manage},
		{"GET", "/v1/submissions/{submission_id}", "Read a submission: status (queued, processing, completed, failed), score, metric, detail per control, rank, reason", "quality", nil, Submission{}, ok, getSubmission, read},
		{"GET", "/v1/projects/{project_id}/quality", "A project's quality per annotator: gold seen and passed, mean gold score, agreement with the other annotators, current QA rate and skill score", "quality", nil, QualityReport{}, ok, projectQuality, read},
		{"POST", "/v1/projects/{project_id}/consensus", "Measure the project's agreement and write each job's consensus (majority vote and Dawid-Skene) as a version exports pack with include_consensus", "quality", nil, Enqueued{}, accepted, runConsensus, manage},
		{"GET", "/v1/projects/{project_id}/agreement", "The project's latest agreement: Cohen's and Fleiss' kappa, Krippendorff's alpha and the annotator x annotator matrix per choices control, mean scores between annotators", "quality", nil, AgreementReport{}, ok, projectAgreement, read},
		{"GET", "/v1/projects/{project_id}/consensus", "Each job's consensus: its result version, copies, agreement, majority and Dawid-Skene labels", "quality", nil, List[Consensus]{}, ok, listConsensus, read},
		{"GET", "/v1/projects/{project_id}/leaderboard", "A project's annotators ranked by mean score over their scored submissions", "quality", nil, List[LeaderboardEntry]{}, ok, projectLeaderboard, read},
		{"POST", "/v1/assignments/{assignment_id}/revoke", "Revoke an assignment; its job is matched again without that person", "matching", nil, Enqueued{}, accepted, revokeAssignment, manage},

		{"POST", "/v1/projects/{project_id}/exports", "Request a ZIP export", "exports", ExportInput{}, Enqueued{}, accepted, createExport, manage},
		{"GET", "/v1/projects/{project_id}/exports", "List a project's exports, newest first", "exports", nil, List[Export]{}, ok, listExports, read},
		{"GET", "/v1/exports/{export_id}", "Read an export: status, progress, checksum, size", "exports", nil, Export{}, ok, getExport, read},
		{"POST", "/v1/exports/{export_id}/cancel", "Cancel a pending or running export", "exports", nil, Export{}, accepted, cancelExport, manage},
		{"GET", "/v1/exports/{export_id}/download", "Get a short-lived download URL for a completed export", "exports", nil, Download{}, ok, downloadExport, read},

		{"POST", "/v1/projects/{project_id}/export-schedules", "Create an export schedule (cron spec and time zone)", "exports", ScheduleInput{}, Schedule{}, created, createSchedule, manage},
		{"GET", "/v1/projects/{project_id}/export-schedules", "List a project's export schedules", "exports", nil, List[Schedule]{}, ok, listSchedules, read},
		{"PATCH", "/v1/export-schedules/{schedule_id}", "Update an export schedule", "exports", ScheduleInput{}, Schedule{}, ok, updateSchedule, manage},
		{"DELETE", "/v1/export-schedules/{schedule_id}", "Delete an export schedule", "exports", nil, map[string]any{}, ok, deleteSchedule, manage},

		// A bucket calls these with the storage's notification secret, not a token.
		{"POST", "/v1/storages/{storage_id}/notifications", "Receive a bucket notification (S3 event JSON, as MinIO's webhook target or an S3 forwarder posts it): registers or retires its keys", "storages", NotificationInput{}, NotificationResult{}, ok, receiveNotification, ScopeStorageSecret},
		{"HEAD", "/v1/storages/{storage_id}/notifications", "Check a storage's notification secret (MinIO's webhook target sends HEAD when it starts)", "storages", nil, NotificationResult{}, ok, checkNotifications, ScopeStorageSecret},

		{"POST", "/v1/projects/{project_id}/storages", "Create a storage: a bucket and prefix the project imports from or exports to (answers the notification secret once)", "storages", StorageInput{}, Storage{}, created, createStorage, manage},
		{"GET", "/v1/projects/{project_id}/storages", "List a project's storages", "storages", nil, List[Storage]{}, ok, listStorages, read},
		{"GET", "/v1/storages/{storage_id}", "Read a storage (never its credentials)", "storages", nil, Storage{}, ok, getStorage, read},
		{"PATCH", "/v1/storages/{storage_id}", "Update a storage: endpoint, prefix, credentials, filter, rules, schedule", "storages", StorageInput{}, Storage{}, ok, updateStorage, manage},
		{"DELETE", "/v1/storages/{storage_id}", "Delete a storage; its live sync run is cancelled", "storages", nil, map[string]any{}, ok, deleteStorage, manage},
		{"POST", "/v1/storages/{storage_id}/notify-secret", "Replace a storage's bucket-notification secret (answered once)", "storages", nil, NotifySecret{}, ok, rotateNotifySecret, manage},
		{"POST", "/v1/storages/{storage_id}/sync", "Sync an import storage now; joins the run already live", "storages", nil, SyncStarted{}, accepted, syncStorage, manage},
		{"GET", "/v1/storages/{storage_id}/syncs", "List a storage's sync runs, newest first (?before=)", "storages", nil, List[SyncRun]{}, ok, listSyncRuns, read},
		{"GET", "/v1/sync-runs/{run_id}", "Read a sync run: status, checkpoint, counts, skipped keys, error", "storages", nil, SyncRun{}, ok, getSyncRun, read},
		{"POST", "/v1/sync-runs/{run_id}/cancel", "Cancel a sync run: a pending one at once, a running one after its current page", "storages", nil, SyncRun{}, accepted, cancelSyncRun, manage},

		{"POST", "/v1/webhooks", "Create a webhook endpoint: URL, event types and projects it receives (answers its signing secret once)", "webhooks", WebhookInput{}, Webhook{}, created, createWebhook, manage},
		{"GET", "/v1/webhooks", "List webhook endpoints", "webhooks", nil, List[Webhook]{}, ok, listWebhooks, manage},
		{"GET", "/v1/webhooks/{webhook_id}", "Read a webhook endpoint: its subscriptions and health (never its secret)", "webhooks", nil, Webhook{}, ok, getWebhook, manage},
		{"PATCH", "/v1/webhooks/{webhook_id}", "Update a webhook endpoint: URL, description, event types, projects, enabled", "webhooks", WebhookInput{}, Webhook{}, ok, updateWebhook, manage},
		{"POST", "/v1/webhooks/{webhook_id}/rotate-secret", "Replace a webhook's signing secret (answered once); the old one signs too until the overlap ends", "webhooks", nil, WebhookSecret{}, ok, rotateWebhookSecret, manage},
		{"POST", "/v1/webhooks/{webhook_id}/test", "Send a webhook.test event to this endpoint only", "webhooks", nil, WebhookPing{}, accepted, testWebhook, manage},
		{"GET", "/v1/webhooks/{webhook_id}/deliveries", "List a webhook's deliveries, newest first, each with its attempts (?before=, ?status=pending|succeeded|failed)", "webhooks", nil, List[WebhookDelivery]{}, ok, listWebhookDeliveries, manage},
		{"POST", "/v1/webhook-deliveries/{delivery_id}/redeliver", "Deliver a finished delivery again: the same event id, a new round of retries", "webhooks", nil, WebhookDelivery{}, accepted, redeliverWebhook, manage},
		{"DELETE", "/v1/webhooks/{webhook_id}", "Delete a webhook endpoint; its pending deliveries are not attempted", "webhooks", nil, nil, noContent, deleteWebhook, manage},

		{"GET", "/v1/tasks/{task_id}", "Read a task's state by id", "tasks", nil, TaskState{}, ok, getTask, read},
		{"GET", "/v1/admission", "The organization's work per task type waiting for admission (LABELQ_ADMIT_PER_ORG): waiting, scheduled, admitted and not finished, and its limit (0: not held back)", "tasks", nil, List[AdmissionBacklog]{}, ok, getAdmission, read},
		{"GET", "/v1/events", "List the events of an entity (?entity_type=&entity_id=)", "tasks", nil, List[Event]{}, ok, listEvents, read},
	}
}
