package api

import (
	"net/http"
	"time"

	"github.com/labelq/labelq/internal/db"
)

// maxRunsPerVersion bounds GET /v1/versions/{id}/llm-runs: a version has one run
// per set of LLM settings it was pre-annotated with, so a handful.
const maxRunsPerVersion = 100

// LLMRun is one pre-annotation run of a version: the model calls made for it under
// one set of the project's LLM settings (model, prompt, schema), and what came of
// them.
type LLMRun struct {
	ID            int64  `json:"id"`
	ProjectID     int64  `json:"project_id"`
	FileVersionID int64  `json:"file_version_id"`
	Model         string `json:"model"`
	// PromptHash and SchemaHash identify the settings the run was made with;
	// InputSHA256 the bytes it was made for.
	PromptHash  string `json:"prompt_hash"`
	SchemaHash  string `json:"schema_hash"`
	InputSHA256 string `json:"input_sha256"`
	// Status is pending, running, succeeded, failed or skipped.
	Status string `json:"status"`
	// Error is why the run failed or was skipped, or what a pending or running
	// run waits for (a rate limit, the daily token budget).
	Error *string `json:"error"`
	// Attempts counts the model calls made (a repair call is one more).
	Attempts         int32   `json:"attempts"`
	PromptTokens     int32   `json:"prompt_tokens"`
	CompletionTokens int32   `json:"completion_tokens"`
	LatencyMs        int32   `json:"latency_ms"`
	CostUSD          float64 `json:"cost_usd"`
	// CachedFromID is the run whose output this one reused without a call.
	CachedFromID    *int64 `json:"cached_from_id"`
	OutputVersionID *int64 `json:"output_version_id"`
	// OutputUnwrapped: the model wrapped its JSON in a Markdown code fence or a
	// sentence, and the value alone was stored.
	OutputUnwrapped bool `json:"output_unwrapped"`
	// RawOutput is the model's last reply of a failed run (at most 8 KiB, cut on
	// a character boundary): what it said instead of valid output. Null for every
	// other run.
	RawOutput  *string    `json:"raw_output"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

func llmRunFromRow(r db.LlmRun) LLMRun {
	out := LLMRun{
		ID: r.ID, ProjectID: r.ProjectID, FileVersionID: r.FileVersionID, Model: r.Model,
		PromptHash: r.PromptHash, SchemaHash: r.SchemaHash, InputSHA256: r.InputSha256,
		Status: string(r.Status), Error: r.Error, Attempts: r.Attempts,
		PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, LatencyMs: r.LatencyMs, CostUSD: r.CostUsd,
		CachedFromID: r.CachedFromID, OutputVersionID: r.OutputVersionID, OutputUnwrapped: r.OutputUnwrapped,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.Status == db.LlmRunStatusFailed {
		out.RawOutput = r.RawOutput
	}
	return out
}

// listVersionLLMRuns answers GET /v1/versions/{version_id}/llm-runs: the version's
// runs, newest first.
func listVersionLLMRuns(c *Call) (int, any, error) {
	id, err := pathID(c.R, "version_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	if _, err := c.Q.FileVersionGet(ctx, db.FileVersionGetParams{ID: id, OrgID: c.OrgID}); err != nil {
		return 0, nil, orNotFound(err, "version")
	}
	runs, err := c.Q.LLMRunListByVersion(ctx, db.LLMRunListByVersionParams{FileVersionID: id, OrgID: c.OrgID, MaxRows: maxRunsPerVersion})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(runs, llmRunFromRow), nil
}
