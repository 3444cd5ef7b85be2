package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
)

// SubmitInput submits one annotator's copy of a job with its result.
type SubmitInput struct {
	// ResultVersionID is an annotation_results version holding the copy's Label
	// Studio result, checked against the project's label config.
	ResultVersionID *int64 `json:"result_version_id"`
}

// Submitted answers a submitted copy: the assignment, now completed, and the
// submissions queued to score it (against gold, or against the other copies
// once every copy is in).
type Submitted struct {
	Assignment  Assignment `json:"assignment"`
	Submissions []Queued   `json:"submissions"`
}

// Queued is one submission job:score will score.
type Queued struct {
	ID        int64  `json:"id"`
	Kind      string `json:"kind"`
	UserID    int64  `json:"user_id"`
	TaskID    string `json:"task_id"`
	StatusURL string `json:"status_url"`
}

// Submission is one scoring of an annotator's result for a job.
type Submission struct {
	ID              int64           `json:"id"`
	ProjectID       int64           `json:"project_id"`
	JobID           int64           `json:"job_id"`
	UserID          int64           `json:"user_id"`
	AssignmentID    *int64          `json:"assignment_id"`
	ResultVersionID int64           `json:"result_version_id"`
	Kind            string          `json:"kind"`   // gold or peer
	Status          string          `json:"status"` // queued, processing, completed or failed
	Score           *float64        `json:"score"`  // 0..1
	Passed          *bool           `json:"passed"` // gold: score ≥ the project's pass threshold
	Metric          *string         `json:"metric"`
	Detail          json.RawMessage `json:"detail"` // per control; for peer, per other copy
	Rank            *int32          `json:"rank"`
	Reason          *string         `json:"reason"` // why a failed one could not be scored
	ScoredAt        *time.Time      `json:"scored_at"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
}

func submissionFromRow(r db.Submission) Submission {
	return Submission{
		ID: r.ID, ProjectID: r.ProjectID, JobID: r.JobID, UserID: r.UserID, AssignmentID: r.AssignmentID,
		ResultVersionID: r.ResultVersionID, Kind: string(r.Kind), Status: string(r.Status), Score: r.Score,
		Passed: r.Passed, Metric: r.Metric, Detail: r.Detail, Rank: r.Rank, Reason: r.Reason,
		ScoredAt: r.ScoredAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// QualityReport is a project's quality per annotator.
type QualityReport struct {
	ProjectID  int64              `json:"project_id"`
	Annotators []AnnotatorQuality `json:"annotators"`
}

// AnnotatorQuality is one annotator's line of the quality report.
type AnnotatorQuality struct {
	UserID        int64    `json:"user_id"`
	GoldSeen      int32    `json:"gold_seen"`
	GoldPassed    int32    `json:"gold_passed"`
	GoldMeanScore *float64 `json:"gold_mean_score"`
	// PeerScored and PeerAgreement: copies scored against the other
	// annotators' copies of the same jobs, and their mean score.
	PeerScored     int32    `json:"peer_scored"`
	PeerAgreement  *float64 `json:"peer_agreement"`
	Pending        int32    `json:"pending"`
	Failed         int32    `json:"failed"`
	QAApprovalRate *float64 `json:"qa_approval_rate"`
	SkillScore     *float64 `json:"skill_score"`
}

// LeaderboardEntry is one annotator's place in a project.
type LeaderboardEntry struct {
	Rank      int32   `json:"rank"`
	UserID    int64   `json:"user_id"`
	MeanScore float64 `json:"mean_score"`
	Scored    int32   `json:"scored"`
}

// submitAssignment: POST /v1/assignments/{id}/submit.
func submitAssignment(c *Call) (int, any, error) {
	id, err := pathID(c.R, "assignment_id")
	if err != nil {
		return 0, nil, err
	}
	var in SubmitInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	if in.ResultVersionID == nil || *in.ResultVersionID <= 0 {
		return 0, nil, invalid("result_version_id", "is required: the annotation_results version holding this copy's result")
	}
	ctx := c.R.Context()
	a, err := c.Q.AssignmentGetForUpdate(ctx, db.AssignmentGetForUpdateParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "assignment")
	}
	switch {
	case a.Role != db.AssignmentRoleAnnotator:
		return 0, nil, conflict(fmt.Sprintf("assignment %d is a %s's; only an annotator's copy is submitted", a.ID, a.Role))
	case a.Status == db.AssignmentStatusCompleted || a.Status == db.AssignmentStatusRevoked:
		return 0, nil, conflict(fmt.Sprintf("assignment %d is already %s", a.ID, a.Status))
	}
	job, err := c.Q.AnnotationJobGetForUpdate(ctx, db.AnnotationJobGetForUpdateParams{ID: a.JobID, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "job")
	}
	if err := c.checkJobResult(ctx, job, *in.ResultVersionID); err != nil {
		return 0, nil, err
	}
	a, err = c.Q.AssignmentSubmit(ctx, db.AssignmentSubmitParams{ID: a.ID, OrgID: c.OrgID, ResultVersionID: in.ResultVersionID})
	if err != nil {
		return 0, nil, orNotFound(err, "assignment")
	}
	if err := event(ctx, c, db.EntityTypeAssignment, a.ID, "submitted", map[string]any{"job_id": a.JobID, "user_id": a.UserID, "result_version_id": *in.ResultVersionID}); err != nil {
		return 0, nil, err
	}
	qs, err := queueScoring(ctx, c, job, a.UserID, &a.ID, *in.ResultVersionID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, Submitted{Assignment: assignmentFromRow(a), Submissions: qs}, nil
}

// queueScoring writes the submissions a submitted result makes, each with its
// job:score task in the outbox, in the submitting transaction: one against the
// gold answer when the job has one, and, once every copy of the job is in
// (overlap), one per copy against the others. A project without a label config
// scores nothing (results are scored per control of it).
func queueScoring(ctx context.Context, c *Call, job db.AnnotationJob, userID int64, assignmentID *int64, resultVersionID int64) ([]Queued, error) {
	pr, err := c.Q.ProjectGet(ctx, db.ProjectGetParams{ID: job.ProjectID, OrgID: c.OrgID})
	if err != nil {
		return nil, fmt.Errorf("read project %d: %w", job.ProjectID, err)
	}
	if _, ok, err := storedLabelConfig(pr); err != nil || !ok {
		return []Queued{}, nil
	}
	out := []Queued{}
	add := func(kind db.SubmissionKind, user int64, asg *int64, version int64) error {
		id, err := c.Q.SubmissionCreate(ctx, db.SubmissionCreateParams{
			OrgID: c.OrgID, ProjectID: job.ProjectID, JobID: job.ID, UserID: user, AssignmentID: asg, ResultVersionID: version, Kind: kind,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // the same result was submitted before
		}
		if err != nil {
			return fmt.Errorf("write the submission of job %d: %w", job.ID, err)
		}
		next := tasks.Score{SubmissionID: id}
		if err := outbox.Add(ctx, c.Q, c.OrgID, next); err != nil {
			return err
		}
		out = append(out, Queued{ID: id, Kind: string(kind), UserID: user, TaskID: next.TaskID(), StatusURL: fmt.Sprintf("/v1/submissions/%d", id)})
		return nil
	}
	if job.Gold {
		if err := add(db.SubmissionKindGold, userID, assignmentID, resultVersionID); err != nil {
			return nil, err
		}
	}
	if pr.Overlap > 1 {
		copies, err := c.Q.AssignmentSubmittedCopies(ctx, db.AssignmentSubmittedCopiesParams{JobID: job.ID, OrgID: c.OrgID})
		if err != nil {
			return nil, fmt.Errorf("read the copies of job %d: %w", job.ID, err)
		}
		if len(copies) >= int(pr.Overlap) {
			for _, cp := range copies {
				if err := add(db.SubmissionKindPeer, cp.UserID, &cp.ID, cp.ResultVersionID); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// scoreJobResult is PATCH /v1/jobs/{id}'s part: a job whose result is set while
// it is (or becomes) submitted is its annotator's submission.
func scoreJobResult(ctx context.Context, c *Call, old, j db.AnnotationJob) error {
	if j.Status != db.JobStatusSubmitted || j.ResultVersionID == nil {
		return nil
	}
	if old.Status == db.JobStatusSubmitted && old.ResultVersionID != nil && *old.ResultVersionID == *j.ResultVersionID {
		return nil // nothing new was submitted
	}
	a, err := c.Q.AssignmentAnnotatorOfJob(ctx, db.AssignmentAnnotatorOfJobParams{JobID: j.ID, OrgID: c.OrgID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // nobody to score: the job was never assigned through labelq
	}
	if err != nil {
		return fmt.Errorf("read the annotator of job %d: %w", j.ID, err)
	}
	if err := c.Q.AssignmentSetResult(ctx, db.AssignmentSetResultParams{ID: a.ID, OrgID: c.OrgID, ResultVersionID: j.ResultVersionID}); err != nil {
		return fmt.Errorf("record the result of assignment %d: %w", a.ID, err)
	}
	_, err = queueScoring(ctx, c, j, a.UserID, &a.ID, *j.ResultVersionID)
	return err
}

// getSubmission: GET /v1/submissions/{id}.
func getSubmission(c *Call) (int, any, error) {
	id, err := pathID(c.R, "submission_id")
	if err != nil {
		return 0, nil, err
	}
	s, err := c.Q.SubmissionGet(c.R.Context(), db.SubmissionGetParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "submission")
	}
	return http.StatusOK, submissionFromRow(s), nil
}

// projectQuality: GET /v1/projects/{id}/quality.
func projectQuality(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	rows, err := c.Q.QualityByAnnotator(c.R.Context(), db.QualityByAnnotatorParams{ProjectID: pid, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	rep := QualityReport{ProjectID: pid, Annotators: make([]AnnotatorQuality, len(rows))}
	for i, r := range rows {
		a := AnnotatorQuality{
			UserID: r.UserID, GoldSeen: r.GoldSeen, GoldPassed: r.GoldPassed,
			PeerScored: r.PeerScored, Pending: r.Pending, Failed: r.Failed,
			QAApprovalRate: r.QaApprovalRate, SkillScore: r.SkillScore,
		}
		if r.GoldSeen > 0 {
			a.GoldMeanScore = &r.GoldMeanScore
		}
		if r.PeerScored > 0 {
			a.PeerAgreement = &r.PeerAgreement
		}
		rep.Annotators[i] = a
	}
	return http.StatusOK, rep, nil
}

// projectLeaderboard: GET /v1/projects/{id}/leaderboard.
func projectLeaderboard(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	_, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	rows, err := c.Q.QualityLeaderboard(c.R.Context(), db.QualityLeaderboardParams{ProjectID: pid, OrgID: c.OrgID, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(rows, func(r db.QualityLeaderboardRow) LeaderboardEntry {
		return LeaderboardEntry{Rank: r.Rank, UserID: r.UserID, MeanScore: r.MeanScore, Scored: r.Scored}
	}), nil
}
