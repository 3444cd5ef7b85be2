package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/matching"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
)

// JobInput updates an annotation job (the platform reports progress and approvals).
type JobInput struct {
	Language        *string    `json:"language"`
	Priority        *string    `json:"priority"`
	Status          *string    `json:"status"`
	ReviewStatus    *string    `json:"review_status"`
	ResultVersionID *int64     `json:"result_version_id"`
	DueDate         *time.Time `json:"due_date"`
}

func listJobs(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	js, err := c.Q.AnnotationJobListByProject(c.R.Context(), db.AnnotationJobListByProjectParams{ProjectID: pid, OrgID: c.OrgID, AfterID: after, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(js, jobFromRow), nil
}

func updateJob(c *Call) (int, any, error) {
	id, err := pathID(c.R, "job_id")
	if err != nil {
		return 0, nil, err
	}
	var in JobInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	var v Validation
	if in.Language != nil {
		v.Check(languageCode.MatchString(*in.Language), "language", "is not a language code such as en, zh or pt-BR")
	}
	v.Check(in.Priority == nil || db.JobPriority(deref(in.Priority)).Valid(), "priority", "must be low, medium or high")
	v.Check(in.Status == nil || db.JobStatus(deref(in.Status)).Valid(), "status", "must be not_started, in_progress, submitted or reviewed")
	v.Check(in.ReviewStatus == nil || db.ReviewStatus(deref(in.ReviewStatus)).Valid(), "review_status", "must be pending, approved or rejected")
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	if in.ResultVersionID != nil {
		if _, err := c.Q.FileVersionGet(ctx, db.FileVersionGetParams{ID: *in.ResultVersionID, OrgID: c.OrgID}); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return 0, nil, invalid("result_version_id", "no such version in your organization")
			}
			return 0, nil, err
		}
	}
	old, err := c.Q.AnnotationJobGetForUpdate(ctx, db.AnnotationJobGetForUpdateParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "job")
	}
	if in.ResultVersionID != nil {
		// With a label config, the result must fit it (labelconfig.go).
		if err := c.checkJobResult(ctx, old, *in.ResultVersionID); err != nil {
			return 0, nil, err
		}
	}
	recheck := in.changesAttributes(old)
	if recheck {
		// Wait for a project:match run of the project that is writing
		// assignments now: it read the job's old attributes, so its
		// assignments must be committed before the re-check below reads the
		// live ones, and a run after this one must read the new attributes.
		if err := c.Q.AssignmentSetLockTimeout(ctx, matchLockTimeout.String()); err != nil {
			return 0, nil, err
		}
		err := c.Q.AssignmentLockProjectForMatching(ctx, old.ProjectID)
		if isLockTimeout(err) {
			return 0, nil, problem(http.StatusServiceUnavailable, "Matching busy",
				fmt.Sprintf("project %d is being matched right now; retry the update of job %d in a few seconds", old.ProjectID, id))
		}
		if err != nil {
			return 0, nil, err
		}
	}
	arg := db.AnnotationJobUpdateParams{ID: id, OrgID: c.OrgID, Language: in.Language, ResultVersionID: in.ResultVersionID, DueDate: in.DueDate}
	if in.Priority != nil {
		p := db.JobPriority(*in.Priority)
		arg.Priority = &p
	}
	if in.Status != nil {
		s := db.JobStatus(*in.Status)
		arg.Status = &s
	}
	if in.ReviewStatus != nil {
		r := db.ReviewStatus(*in.ReviewStatus)
		arg.ReviewStatus = &r
	}
	j, err := c.Q.AnnotationJobUpdate(ctx, arg)
	if err != nil {
		return 0, nil, orNotFound(err, "job")
	}
	if err := event(ctx, c, db.EntityTypeAnnotationJob, j.ID, "status_changed", map[string]any{
		"status": j.Status, "review_status": j.ReviewStatus,
	}); err != nil {
		return 0, nil, err
	}
	// A submitted result is its annotator's submission, scored against the
	// job's gold answer (quality.go).
	if err := scoreJobResult(ctx, c, old, j); err != nil {
		return 0, nil, err
	}
	if recheck {
		err := recheckAssignments(ctx, c, old, j)
		if isLockTimeout(err) {
			return 0, nil, problem(http.StatusServiceUnavailable, "Job busy",
				fmt.Sprintf("an assignment of job %d is being updated right now; retry the update in a few seconds", id))
		}
		if err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, jobFromRow(j), nil
}

// matchLockTimeout bounds how long a PATCH that changes a job's attributes
// waits for a project:match run of its project to finish.
const matchLockTimeout = 5 * time.Second

// changesAttributes says whether the update changes an attribute matching reads
// (language, priority, due date) from what the job has.
func (in *JobInput) changesAttributes(j db.AnnotationJob) bool {
	return (in.Language != nil && (j.Language == nil || *j.Language != *in.Language)) ||
		(in.Priority != nil && *in.Priority != string(j.Priority)) ||
		(in.DueDate != nil && (j.DueDate == nil || !j.DueDate.Equal(*in.DueDate)))
}

// recheckAssignments holds the job's live assignments against the hard rules
// on its new attributes after an update changed them, and revokes each whose
// holder now breaks one, with a "revoked" event on the assignment saying why.
// The rules are matching.JobRuleBreach, the solver's own (today: the minimum
// proficiency in the job's language; priority and due date enter no rule), so
// after a change the job keeps exactly the people project:match would still
// give it on its attributes. Checking here rather than in the next
// project:match run takes the job away in the same commit as the change (the
// job the response shows has nobody on it who may not be), and spares the
// matcher a sweep of every live assignment on every run.
//
// Such a revoke bars nobody from the job: the holder is not recorded as a
// previous annotator (and a reviewer's revoke carries revoked_rule, which the
// reviewer side does not exclude), so they may be matched to it again once the
// rule allows (the language changes back).
//
// The job is then matched again: at once (tasks.Match) when someone was revoked,
// or with the pipeline's aggregated trigger when a side of it that matching
// fills has nobody (no annotator on an open job, no reviewer where the project
// wants one), since its new attributes may make it assignable or change its
// rank. A job whose people all stay queues nothing.
func recheckAssignments(ctx context.Context, c *Call, old, j db.AnnotationJob) error {
	pr, err := c.Q.ProjectGet(ctx, db.ProjectGetParams{ID: j.ProjectID, OrgID: c.OrgID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // a deleted project matches nobody
	}
	if err != nil {
		return fmt.Errorf("read project %d: %w", j.ProjectID, err)
	}
	live, err := c.Q.AssignmentListLiveForRules(ctx, db.AssignmentListLiveForRulesParams{JobID: j.ID, OrgID: c.OrgID})
	if err != nil {
		return fmt.Errorf("read live assignments of job %d: %w", j.ID, err)
	}
	mj := matching.Job{ID: j.ID, Language: deref(j.Language), Priority: matching.Priority(j.Priority), DueDate: j.DueDate}
	opts := matching.ProjectOptions(pr.MinLanguageProficiency)
	revoked, annotated, reviewed := 0, false, false
	for _, a := range live {
		prof, err := matching.ParseProficiency(a.LanguageExpertise)
		if err != nil {
			return fmt.Errorf("re-check assignment %d of job %d: user %d: %w", a.ID, j.ID, a.UserID, err)
		}
		b, broken, err := matching.JobRuleBreach(mj, matching.Candidate{ID: a.UserID, Proficiency: prof}, opts)
		if err != nil {
			return fmt.Errorf("re-check assignment %d of job %d: %w", a.ID, j.ID, err)
		}
		if !broken {
			annotated = annotated || a.Role == db.AssignmentRoleAnnotator
			reviewed = reviewed || a.Role != db.AssignmentRoleAnnotator
			continue
		}
		r, err := c.Q.AssignmentRevokeForRule(ctx, db.AssignmentRevokeForRuleParams{ID: a.ID, OrgID: c.OrgID, Rule: &b.Rule})
		if err != nil {
			return fmt.Errorf("revoke assignment %d of job %d: %w", a.ID, j.ID, err)
		}
		reason := languageChange(old.Language, b.Language) + ": " + b.Reason(string(a.Role))
		if err := event(ctx, c, db.EntityTypeAssignment, a.ID, "revoked", map[string]any{
			"job_id": j.ID, "user_id": a.UserID, "role": a.Role, "rule": b.Rule, "reason": reason,
		}); err != nil {
			return err
		}
		if err := emitRevoked(ctx, c, r, j.FileID, reason, &b.Rule); err != nil {
			return err
		}
		revoked++
	}
	open := j.Status == db.JobStatusNotStarted || j.Status == db.JobStatusInProgress
	switch {
	case revoked > 0:
		return outbox.Add(ctx, c.Q, c.OrgID, tasks.Match{ProjectID: j.ProjectID, Run: "job" + newRequestID()})
	case open && !annotated,
		pr.AssignReviewers && !reviewed && (open || j.Status == db.JobStatusSubmitted):
		return outbox.Add(ctx, c.Q, c.OrgID, tasks.MatchTrigger{ProjectID: j.ProjectID, Run: fmt.Sprintf("job%d:%s", j.ID, newRequestID())})
	}
	return nil
}

// languageChange is the first half of a revoke's reason.
func languageChange(from *string, to string) string {
	if from == nil {
		return "language set to " + to
	}
	return "language changed from " + *from + " to " + to
}

func runMatch(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	next := tasks.Match{ProjectID: pid, Run: newRequestID()}
	if err := outbox.Add(ctx, c.Q, c.OrgID, next); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, enqueued("project", pid, "queued", next.TaskID(), fmt.Sprintf("/v1/projects/%d/assignments", pid)), nil
}

func listAssignments(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	as, err := c.Q.AssignmentListByProject(c.R.Context(), db.AssignmentListByProjectParams{ProjectID: pid, OrgID: c.OrgID, AfterID: after, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(as, assignmentFromRow), nil
}

func revokeAssignment(c *Call) (int, any, error) {
	id, err := pathID(c.R, "assignment_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	a, err := c.Q.AssignmentGetForUpdate(ctx, db.AssignmentGetForUpdateParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "assignment")
	}
	if a.Status == db.AssignmentStatusRevoked || a.Status == db.AssignmentStatusCompleted {
		return 0, nil, conflict(fmt.Sprintf("assignment %d is already %s", a.ID, a.Status))
	}
	a, err = c.Q.AssignmentRevoke(ctx, db.AssignmentRevokeParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	if a.Role == db.AssignmentRoleAnnotator {
		if err := c.Q.JobPreviousAnnotatorAdd(ctx, db.JobPreviousAnnotatorAddParams{JobID: a.JobID, UserID: a.UserID, OrgID: c.OrgID}); err != nil {
			return 0, nil, err
		}
	}
	if err := event(ctx, c, db.EntityTypeAssignment, a.ID, "revoked", map[string]any{"job_id": a.JobID, "user_id": a.UserID}); err != nil {
		return 0, nil, err
	}
	fileID, err := c.Q.AnnotationJobFileID(ctx, db.AnnotationJobFileIDParams{ID: a.JobID, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, fmt.Errorf("read job %d of assignment %d: %w", a.JobID, a.ID, err)
	}
	if err := emitRevoked(ctx, c, a, fileID, "revoked through the API", nil); err != nil {
		return 0, nil, err
	}
	next := tasks.Match{ProjectID: a.ProjectID, Run: "revoke" + newRequestID()}
	if err := outbox.Add(ctx, c.Q, c.OrgID, next); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, enqueued("assignment", a.ID, string(a.Status), next.TaskID(),
		fmt.Sprintf("/v1/projects/%d/assignments", a.ProjectID)), nil
}

// emitRevoked tells the webhooks an assignment was revoked, in the revoke's
// transaction. An assignment is revoked once, so its id makes the event's key.
func emitRevoked(ctx context.Context, c *Call, a db.Assignment, fileID int64, reason string, rule *string) error {
	_, err := webhook.Emit(ctx, c.Q, webhook.Event{
		OrgID: c.OrgID, ProjectID: &a.ProjectID, Type: webhook.AssignmentRevoked, EntityType: db.EntityTypeAssignment, EntityID: a.ID,
		DedupKey: fmt.Sprintf("assignment:%d:revoked", a.ID),
		Data: webhook.AssignmentData{
			AssignmentID: a.ID, JobID: a.JobID, ProjectID: a.ProjectID, UserID: a.UserID, Role: string(a.Role), FileID: &fileID,
			Status: string(a.Status), Score: &a.Score, Reason: &reason, Rule: rule,
		},
	})
	return err
}

// ExportOptions choose what an export packs (the contract the export worker
// reads). The default is approved results with their raw files.
type ExportOptions = tasks.ExportOptions

// ExportInput requests an export.
type ExportInput struct {
	// Format is the archive's layout: labelq (the default: files, approved
	// results and model outputs as stored), or a format the approved Label
	// Studio results are converted to: label_studio, json_min, csv, coco,
	// yolo, voc, conll2003. A converted format needs the project's label config
	// and must fit it (coco, yolo and voc need boxes on images, conll2003 spans
	// on texts), else 422. Its options default to include_files=false (the
	// images under images/, where the converted files point, only when asked),
	// include_annotations=true and, for label_studio, include_llm=true (the
	// pre-annotations as predictions). include_consensus (default false) packs
	// each job's consensus result (project:consensus) under consensus/, with
	// the raw versions it describes under files/ when include_files is set; it
	// is for format labelq only, else 422.
	Format  *string       `json:"format,omitempty"`
	Options ExportOptions `json:"options"`
	// StorageID sends the archive to an export storage of the project (kind
	// "export") instead of labelq's bucket; the download link and checksum work
	// the same.
	StorageID *int64 `json:"storage_id,omitempty"`
}

func createExport(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	var in ExportInput
	if len(c.Body) > 0 {
		if err := decodeJSON(c.Body, &in); err != nil {
			return 0, nil, err
		}
	}
	format, o, err := c.exportFormat(pid, in.Format, in.Options)
	if err != nil {
		return 0, nil, err
	}
	target, err := c.exportTarget(pid, in.StorageID)
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	opts, _ := json.Marshal(o)
	e, err := c.Q.ExportLogCreate(ctx, db.ExportLogCreateParams{OrgID: c.OrgID, ProjectID: pid, Options: opts, StorageID: target, Format: &format})
	if err != nil {
		return 0, nil, err
	}
	next := tasks.Export{ExportID: e.ID}
	if err := outbox.Add(ctx, c.Q, c.OrgID, next); err != nil {
		return 0, nil, err
	}
	meta := map[string]any{"project_id": pid, "format": format}
	if target != nil {
		meta["storage_id"] = *target
	}
	if err := event(ctx, c, db.EntityTypeExport, e.ID, "export_requested", meta); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, enqueued("export", e.ID, string(e.Status), next.TaskID(), fmt.Sprintf("/v1/exports/%d", e.ID)), nil
}

func getExport(c *Call) (int, any, error) {
	return getByID(c, "export_id", "export", func(ctx context.Context, id int64) (any, error) {
		e, err := c.Q.ExportLogGet(ctx, db.ExportLogGetParams{ID: id, OrgID: c.OrgID})
		return c.S.export(e), err
	})
}

func listExports(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	_, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	var before *int64
	if s := c.R.URL.Query().Get("before"); s != "" {
		var b int64
		if _, err := fmt.Sscan(s, &b); err != nil || b <= 0 {
			return 0, nil, invalid("before", "must be a positive id")
		}
		before = &b
	}
	es, err := c.Q.ExportLogListByProject(c.R.Context(), db.ExportLogListByProjectParams{ProjectID: pid, OrgID: c.OrgID, BeforeID: before, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(es, c.S.export), nil
}

func cancelExport(c *Call) (int, any, error) {
	id, err := pathID(c.R, "export_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	// A worker holds the row only for a few statements, never across a call to
	// the bucket; still, a cancel waits for it a bounded time, not forever.
	e, err := cancelRow(c, "export", id, "Export busy", "is being updated by its worker",
		func() (db.ExportLog, error) {
			return c.Q.ExportLogCancel(ctx, db.ExportLogCancelParams{ID: id, OrgID: c.OrgID})
		},
		func() (string, error) {
			cur, err := c.Q.ExportLogGet(ctx, db.ExportLogGetParams{ID: id, OrgID: c.OrgID})
			return string(cur.Status), err
		})
	if err != nil {
		return 0, nil, err
	}
	if err := event(ctx, c, db.EntityTypeExport, e.ID, "cancelled", nil); err != nil {
		return 0, nil, err
	}
	// The cancel ends the export here (a running export's worker stops when it
	// sees the status), so the cancel tells the webhooks.
	if _, err := webhook.Emit(ctx, c.Q, webhook.Event{
		OrgID: c.OrgID, ProjectID: &e.ProjectID, Type: webhook.ExportCancelled, EntityType: db.EntityTypeExport, EntityID: e.ID,
		DedupKey: fmt.Sprintf("export:%d:cancelled", e.ID),
		Data: webhook.ExportData{
			ExportID: e.ID, ProjectID: e.ProjectID, Status: string(e.Status), Trigger: exportTrigger(e), Format: e.Format,
			StorageID: e.StorageID,
		},
	}); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, exportFromRow(e), nil
}

// cancelRow runs a cancel (an UPDATE that returns no row once the row has ended)
// waiting at most cancelLockTimeout for the row: a row its worker holds answers
// 503 to retry, a missing or foreign one 404, an ended one 409 with its status.
func cancelRow[T any](c *Call, what string, id int64, busyTitle, busyWhy string, cancel func() (T, error), status func() (string, error)) (T, error) {
	var zero T
	ctx := c.R.Context()
	if err := c.Q.ExportLogSetLockTimeout(ctx, cancelLockTimeout.String()); err != nil {
		return zero, err
	}
	r, err := cancel()
	if isLockTimeout(err) {
		return zero, problem(http.StatusServiceUnavailable, busyTitle,
			fmt.Sprintf("%s %d %s; retry the cancel in a few seconds", what, id, busyWhy))
	}
	if errors.Is(err, pgx.ErrNoRows) {
		st, gerr := status()
		if gerr != nil {
			return zero, orNotFound(gerr, what)
		}
		return zero, conflict(fmt.Sprintf("%s %d is already %s", what, id, st))
	}
	return r, err
}

// cancelLockTimeout bounds how long a cancel waits for the export row.
const cancelLockTimeout = 2 * time.Second

// isLockTimeout reports a lock_timeout (or NOWAIT) refusal.
func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// Download is a short-lived link to a finished export.
type Download struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	SHA256    string    `json:"sha256"`
	SizeBytes int64     `json:"size_bytes"`
}

func downloadExport(c *Call) (int, any, error) {
	id, err := pathID(c.R, "export_id")
	if err != nil {
		return 0, nil, err
	}
	e, err := c.Q.ExportLogGet(c.R.Context(), db.ExportLogGetParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "export")
	}
	if e.Status != db.ExportStatusCompleted || e.StoragePath == nil {
		return 0, nil, conflict(fmt.Sprintf("export %d is %s; a download link exists once it is completed", e.ID, e.Status))
	}
	if e.PurgedAt != nil {
		return 0, nil, problem(http.StatusGone, "Archive deleted", fmt.Sprintf("export %d's archive was removed by the retention policy; request a new export", e.ID))
	}
	ttl := cmp.Or(c.S.ExportURLTTL, DefaultExportURLTTL)
	st, err := c.exportStore(c.R.Context(), e)
	if err != nil {
		return 0, nil, err
	}
	u, err := st.PresignGet(c.R.Context(), *e.StoragePath, fmt.Sprintf("export-%d.zip", e.ID), ttl)
	if err != nil {
		return 0, nil, fmt.Errorf("presign download: %w", err)
	}
	return http.StatusOK, Download{URL: u.String(), ExpiresAt: c.S.now().Add(ttl), SHA256: deref(e.ArchiveSha256), SizeBytes: deref(e.SizeBytes)}, nil
}

// ScheduleInput creates or updates an export schedule.
type ScheduleInput struct {
	CronSpec *string `json:"cron_spec"`
	Timezone *string `json:"timezone"`
	// Format is the layout of the schedule's exports, as an export's format
	// (default labelq), checked against the project's label config when the
	// schedule is created or changed, and again by each export. On update, a
	// format given without options resets the options to that format's
	// defaults.
	Format  *string        `json:"format,omitempty"`
	Options *ExportOptions `json:"options"`
	Enabled *bool          `json:"enabled"`
	// StorageID sends the schedule's exports to an export storage of the
	// project; on update, 0 sends them back to labelq's bucket.
	StorageID *int64 `json:"storage_id,omitempty"`
}

func (in *ScheduleInput) validate(create bool) error {
	var v Validation
	if create && in.CronSpec == nil {
		v.Add("cron_spec", "is required, such as \"0 2 * * *\" (02:00 every day)")
	}
	if in.CronSpec != nil {
		checkCron(&v, "cron_spec", *in.CronSpec)
	}
	if in.Timezone != nil {
		checkTimezone(&v, "timezone", *in.Timezone)
	}
	return v.Err()
}

func createSchedule(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	var in ScheduleInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	if err := in.validate(true); err != nil {
		return 0, nil, err
	}
	if err := c.checkScheduleInterval(*in.CronSpec, cmp.Or(deref(in.Timezone), "UTC")); err != nil {
		return 0, nil, err
	}
	if err := c.checkScheduleCount(pid); err != nil {
		return 0, nil, err
	}
	target, err := c.exportTarget(pid, in.StorageID)
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	opts := ExportOptions{}
	if in.Options != nil {
		opts = *in.Options
	}
	format, opts, err := c.exportFormat(pid, in.Format, opts)
	if err != nil {
		return 0, nil, err
	}
	ob, _ := json.Marshal(opts)
	tz := "UTC"
	if in.Timezone != nil {
		tz = *in.Timezone
	}
	enabled := true
	if in.Enabled != nil {
		enabled = *in.Enabled
	}
	s, err := c.Q.ExportScheduleCreate(ctx, db.ExportScheduleCreateParams{
		OrgID: c.OrgID, ProjectID: pid, CronSpec: *in.CronSpec, Timezone: tz, Options: ob, Enabled: enabled, StorageID: target,
		Format: &format,
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, scheduleFromRow(s), nil
}

func listSchedules(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	ss, err := c.Q.ExportScheduleListByProject(c.R.Context(), db.ExportScheduleListByProjectParams{ProjectID: pid, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(ss, scheduleFromRow), nil
}

func updateSchedule(c *Call) (int, any, error) {
	id, err := pathID(c.R, "schedule_id")
	if err != nil {
		return 0, nil, err
	}
	var in ScheduleInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	if err := in.validate(false); err != nil {
		return 0, nil, err
	}
	arg := db.ExportScheduleUpdateParams{ID: id, OrgID: c.OrgID, CronSpec: in.CronSpec, Timezone: in.Timezone, Enabled: in.Enabled, Format: in.Format}
	if in.Options != nil || in.Format != nil {
		// Format and options are checked together against the project's
		// label config, and the options stored with the defaults of their
		// format: the new one, else the schedule's. A new format without
		// options takes its defaults.
		cur, err := c.Q.ExportScheduleGetByID(c.R.Context(), id)
		if err == nil && cur.OrgID != c.OrgID {
			err = pgx.ErrNoRows
		}
		if err != nil {
			return 0, nil, orNotFound(err, "export schedule")
		}
		format := cmp.Or(in.Format, &cur.Format)
		o := ExportOptions{}
		if in.Options != nil {
			o = *in.Options
		}
		f, resolved, err := c.exportFormat(cur.ProjectID, format, o)
		if err != nil {
			return 0, nil, err
		}
		arg.Format = &f
		arg.Options, _ = json.Marshal(resolved)
	}
	if in.StorageID != nil {
		arg.SetStorage = true
		if *in.StorageID != 0 {
			arg.StorageID = in.StorageID
		}
	}
	s, err := c.Q.ExportScheduleUpdate(c.R.Context(), arg)
	if err != nil {
		return 0, nil, orNotFound(err, "export schedule")
	}
	// Checked on the updated row, whose project is known only now; an error
	// rolls the update back.
	if arg.StorageID != nil {
		if _, err := c.exportTarget(s.ProjectID, arg.StorageID); err != nil {
			return 0, nil, err
		}
	}
	// Checked on the updated row, whose spec and zone may come half from the
	// request and half from before; an error rolls the update back.
	if in.CronSpec != nil || in.Timezone != nil || deref(in.Enabled) {
		if err := c.checkScheduleInterval(s.CronSpec, s.Timezone); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, scheduleFromRow(s), nil
}

func deleteSchedule(c *Call) (int, any, error) {
	id, err := pathID(c.R, "schedule_id")
	if err != nil {
		return 0, nil, err
	}
	n, err := c.Q.ExportScheduleDelete(c.R.Context(), db.ExportScheduleDeleteParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		return 0, nil, notFound("the export schedule")
	}
	return http.StatusOK, map[string]any{"id": id, "deleted": true}, nil
}

// TaskState is a task as the caller may see it: asynq's view when Redis still has it,
// the outbox's otherwise.
type TaskState struct {
	TaskID        string     `json:"task_id"`
	Type          string     `json:"type"`
	Queue         string     `json:"queue"`
	State         string     `json:"state"`
	Retried       int        `json:"retried"`
	MaxRetry      int        `json:"max_retry"`
	LastError     string     `json:"last_error,omitempty"`
	NextProcessAt *time.Time `json:"next_process_at,omitempty"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`
	EnqueuedAt    *time.Time `json:"enqueued_at,omitempty"`
}

func getTask(c *Call) (int, any, error) {
	taskID := c.R.PathValue("task_id")
	if taskID == "" || len(taskID) > 200 {
		return 0, nil, notFound("the task")
	}
	row, err := c.Q.OutboxGetByTaskID(c.R.Context(), db.OutboxGetByTaskIDParams{TaskID: taskID, OrgID: &c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "task")
	}
	st := TaskState{TaskID: taskID, Type: row.TaskType, Queue: row.Queue, EnqueuedAt: row.EnqueuedAt}
	if row.EnqueuedAt == nil {
		st.State = "waiting_in_outbox"
		if row.LastError != nil {
			st.LastError = *row.LastError
		}
		return http.StatusOK, st, nil
	}
	info, err := c.S.Inspector.GetTaskInfo(row.Queue, taskID)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		st.State = "gone"
		st.LastError = "no longer in Redis: finished and past retention, or lost with Redis (the reconciler requeues unfinished work)"
		return http.StatusOK, st, nil
	case err != nil:
		return 0, nil, fmt.Errorf("inspect task: %w", err)
	}
	st.State, st.Retried, st.MaxRetry, st.LastError = info.State.String(), info.Retried, info.MaxRetry, info.LastErr
	if !info.NextProcessAt.IsZero() {
		st.NextProcessAt = &info.NextProcessAt
	}
	if !info.CompletedAt.IsZero() {
		st.CompletedAt = &info.CompletedAt
	}
	return http.StatusOK, st, nil
}

func listEvents(c *Call) (int, any, error) {
	q := c.R.URL.Query()
	et := db.EntityType(q.Get("entity_type"))
	var v Validation
	v.Check(et.Valid(), "entity_type", "must be one of %v", db.AllEntityTypeValues())
	var id int64
	if _, err := fmt.Sscan(q.Get("entity_id"), &id); err != nil || id <= 0 {
		v.Add("entity_id", "must be a positive id")
	}
	if err := v.Err(); err != nil {
		return 0, nil, err
	}
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	// Another organization's entity is a 404, like every foreign resource, not an
	// empty list; so is an entity that does not exist.
	found, err := c.Q.EventLogEntityExists(c.R.Context(), db.EventLogEntityExistsParams{EntityType: et, EntityID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	if !found {
		return 0, nil, notFound("the " + string(et))
	}
	es, err := c.Q.EventLogListByEntity(c.R.Context(), db.EventLogListByEntityParams{
		OrgID: c.OrgID, EntityType: et, EntityID: id, AfterID: after, MaxRows: limit,
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(es, eventFromRow), nil
}
