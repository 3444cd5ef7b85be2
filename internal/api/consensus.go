package api

import (
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

// AgreementReport is a project's latest agreement, as project:consensus
// computed it.
type AgreementReport struct {
	ProjectID  int64     `json:"project_id"`
	RunID      string    `json:"run_id"`
	Jobs       int32     `json:"jobs"`
	ComputedAt time.Time `json:"computed_at"`
	// Report: jobs and copies compared, mean agreement, per choices control
	// Cohen's κ (two annotators), Fleiss' κ (equal answers per job),
	// Krippendorff's α (nominal), the annotator × annotator matrix and the
	// Dawid–Skene fit, the annotator × annotator mean score over every
	// control, the consensus versions written and the copies left out (see
	// the README's "Agreement and consensus").
	Report json.RawMessage `json:"report"`
}

// Consensus is one job's consensus: its result version (packed by exports
// with include_consensus), how many copies it came from, their agreement,
// and per choices control the majority and Dawid–Skene labels.
type Consensus struct {
	JobID      int64           `json:"job_id"`
	ProjectID  int64           `json:"project_id"`
	VersionID  int64           `json:"version_id"`
	Copies     int32           `json:"copies"`
	Agreement  float64         `json:"agreement"`
	Detail     json.RawMessage `json:"detail"`
	RunID      string          `json:"run_id"`
	ComputedAt time.Time       `json:"computed_at"`
}

func consensusFromRow(r db.ConsensusResult) Consensus {
	return Consensus{
		JobID: r.JobID, ProjectID: r.ProjectID, VersionID: r.VersionID, Copies: r.Copies, Agreement: r.Agreement, Detail: r.Detail,
		RunID: r.RunID, ComputedAt: r.ComputedAt,
	}
}

// runConsensus: POST /v1/projects/{id}/consensus.
func runConsensus(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	p, err := c.Q.ProjectGet(ctx, db.ProjectGetParams{ID: pid, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "project")
	}
	if len(p.LabelConfig) == 0 {
		return 0, nil, problem(http.StatusConflict, "No label config",
			fmt.Sprintf("project %d has no label config, so its annotators' results cannot be compared: set one first (PUT /v1/projects/%d/label-config)", pid, pid))
	}
	next := tasks.Consensus{ProjectID: pid, Run: newRequestID()}
	if err := outbox.Add(ctx, c.Q, c.OrgID, next); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, enqueued("project", pid, "queued", next.TaskID(), fmt.Sprintf("/v1/projects/%d/agreement", pid)), nil
}

// projectAgreement: GET /v1/projects/{id}/agreement.
func projectAgreement(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	r, err := c.Q.ProjectAgreementGet(c.R.Context(), db.ProjectAgreementGetParams{ProjectID: pid, OrgID: c.OrgID})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, problem(http.StatusNotFound, "No agreement yet",
			fmt.Sprintf("project %d has no agreement report yet: POST /v1/projects/%d/consensus computes one", pid, pid))
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, agreementFromRow(r), nil
}

func agreementFromRow(r db.ProjectAgreement) AgreementReport {
	return AgreementReport{ProjectID: r.ProjectID, RunID: r.RunID, Jobs: r.Jobs, ComputedAt: r.ComputedAt, Report: r.Report}
}

// listConsensus: GET /v1/projects/{id}/consensus.
func listConsensus(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	rows, err := c.Q.ConsensusResultList(c.R.Context(), db.ConsensusResultListParams{ProjectID: pid, OrgID: c.OrgID, AfterID: after, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(rows, consensusFromRow), nil
}
