package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/resultcheck"
)

// GoldInput sets a job's gold answer.
type GoldInput struct {
	// Result is the job's right answer: a Label Studio result (a list of
	// regions), checked against the project's label config. It is write-only:
	// no route, export, event, webhook or log returns it.
	Result json.RawMessage `json:"result"`
}

// putGold sets (or replaces) a job's gold answer. It goes through
// labelq_gold_put, a SECURITY DEFINER function: the API's database role has
// no grant on gold_answers, so nothing the API runs can read an answer back.
func putGold(c *Call) (int, any, error) {
	id, err := pathID(c.R, "job_id")
	if err != nil {
		return 0, nil, err
	}
	var in GoldInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	const field = "result"
	if len(in.Result) == 0 || string(in.Result) == "null" {
		return 0, nil, invalid(field, "is required: a Label Studio result, a list of regions such as "+
			`[{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["Cat"]}}]`)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(in.Result), []byte("[")) {
		return 0, nil, invalid(field, "must be a list of regions (a Label Studio result), such as [{\"from_name\": \"label\", ...}]")
	}
	if len(in.Result) > resultcheck.MaxResultBytes {
		return 0, nil, invalid(field, fmt.Sprintf("is larger than %d bytes", resultcheck.MaxResultBytes))
	}
	ctx := c.R.Context()
	job, err := c.Q.AnnotationJobGetForUpdate(ctx, db.AnnotationJobGetForUpdateParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "job")
	}
	p, err := c.Q.ProjectGet(ctx, db.ProjectGetParams{ID: job.ProjectID, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, fmt.Errorf("read project %d: %w", job.ProjectID, err)
	}
	cfg, ok, err := storedLabelConfig(p)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, problem(http.StatusConflict, "No label config",
			fmt.Sprintf("project %d has no label config, so a gold answer cannot be checked or scored: set one first (PUT /v1/projects/%d/label-config)", p.ID, p.ID))
	}
	rctx, cancel := context.WithTimeout(ctx, resultReadTimeout)
	defer cancel()
	text, err := c.jobText(rctx, cfg, job, field)
	if err != nil {
		return 0, nil, err
	}
	if err := resultcheck.Check(cfg, in.Result, text); err != nil {
		// The reason names the region at fault and what is wrong with it, not
		// the answer.
		return 0, nil, problem(http.StatusUnprocessableEntity, "Gold answer does not fit the label config",
			fmt.Sprintf("%s: %v", field, err), FieldError{Field: field, Message: err.Error()})
	}
	found, err := c.Q.GoldAnswerPut(ctx, db.GoldAnswerPutParams{JobID: id, Result: in.Result})
	if err != nil {
		return 0, nil, err
	}
	if !found {
		return 0, nil, notFound("the job")
	}
	if err := event(ctx, c, db.EntityTypeAnnotationJob, id, "gold_set", nil); err != nil {
		return 0, nil, err
	}
	return c.goldJob(ctx, id)
}

// deleteGold removes a job's gold answer: the job is an ordinary job again, and
// its gold submissions not yet scored end failed ("gold answer removed").
func deleteGold(c *Call) (int, any, error) {
	id, err := pathID(c.R, "job_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	if _, err := c.Q.AnnotationJobGetForUpdate(ctx, db.AnnotationJobGetForUpdateParams{ID: id, OrgID: c.OrgID}); err != nil {
		return 0, nil, orNotFound(err, "job")
	}
	found, err := c.Q.GoldAnswerDelete(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	if !found {
		return 0, nil, notFound("the job's gold answer")
	}
	if err := event(ctx, c, db.EntityTypeAnnotationJob, id, "gold_removed", nil); err != nil {
		return 0, nil, err
	}
	return c.goldJob(ctx, id)
}

func (c *Call) goldJob(ctx context.Context, id int64) (int, any, error) {
	j, err := c.Q.AnnotationJobGetForUpdate(ctx, db.AnnotationJobGetForUpdateParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "job")
	}
	return http.StatusOK, jobFromRow(j), nil
}
