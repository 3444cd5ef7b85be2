package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/db"
)

// ProjectInput is the body of project create and update; on update, absent fields
// keep their value.
type ProjectInput struct {
	Name                   *string             `json:"name"`
	Description            *string             `json:"description"`
	RequirementsText       *string             `json:"requirements_text"`
	Status                 *string             `json:"status"`
	LLMEnabled             *bool               `json:"llm_enabled"`
	LLMModel               *string             `json:"llm_model"`
	LLMTemperature         *float64            `json:"llm_temperature"`
	LLMMaxTokens           *int32              `json:"llm_max_tokens"`
	LLMSystemPrompt        *string             `json:"llm_system_prompt"`
	LLMDailyTokenBudget    *int64              `json:"llm_daily_token_budget"`
	AnnotationSchema       json.RawMessage     `json:"annotation_schema"`
	MinLanguageProficiency *float64            `json:"min_language_proficiency"`
	AssignReviewers        *bool               `json:"assign_reviewers"`
	AllowedContentTypes    map[string][]string `json:"allowed_content_types"`
	ClientPMID             *int64              `json:"client_pm_id"`
	OurPMID                *int64              `json:"our_pm_id"`
	Overlap                *int32              `json:"overlap"`
	GoldRate               *float64            `json:"gold_rate"`
	QualityIoUThreshold    *float64            `json:"quality_iou_threshold"`
	QualityPassThreshold   *float64            `json:"quality_pass_threshold"`
	QualityPriorAlpha      *float64            `json:"quality_prior_alpha"`
	QualityPriorBeta       *float64            `json:"quality_prior_beta"`
}

func (in *ProjectInput) validate(create bool) error {
	var v Validation
	if create || in.Name != nil {
		checkName(&v, "name", deref(in.Name), true)
	}
	if in.Description != nil {
		v.Check(len(*in.Description) <= 10000, "description", "must be at most 10,000 characters")
	}
	if in.RequirementsText != nil {
		v.Check(len(*in.RequirementsText) <= 200000, "requirements_text", "must be at most 200,000 characters")
	}
	if in.Status != nil {
		v.Check(db.ProjectStatus(*in.Status).Valid(), "status", "must be one of draft, ready_for_annotation, in_progress, completed, archived")
	}
	if in.LLMModel != nil {
		v.Check(len(*in.LLMModel) <= 200, "llm_model", "must be at most 200 characters")
	}
	if in.LLMTemperature != nil {
		v.Check(*in.LLMTemperature >= 0 && *in.LLMTemperature <= 2, "llm_temperature", "must be between 0 and 2")
	}
	if in.LLMMaxTokens != nil {
		v.Check(*in.LLMMaxTokens >= 1 && *in.LLMMaxTokens <= 1000000, "llm_max_tokens", "must be between 1 and 1,000,000")
	}
	if in.LLMDailyTokenBudget != nil {
		v.Check(*in.LLMDailyTokenBudget >= 0, "llm_daily_token_budget", "must be positive, or 0 for no budget")
	}
	if in.LLMEnabled != nil && *in.LLMEnabled && create {
		v.Check(deref(in.LLMModel) != "", "llm_model", "is required when llm_enabled is true")
	}
	checkSchema(&v, "annotation_schema", in.AnnotationSchema)
	if in.MinLanguageProficiency != nil {
		v.Check(*in.MinLanguageProficiency >= 0 && *in.MinLanguageProficiency <= 5, "min_language_proficiency", "must be between 0 and 5")
	}
	if in.Overlap != nil {
		v.Check(*in.Overlap >= 1 && *in.Overlap <= 10, "overlap", "must be between 1 and 10 (distinct annotators per job)")
	}
	if in.GoldRate != nil {
		v.Check(*in.GoldRate >= 0 && *in.GoldRate <= 1, "gold_rate", "must be between 0 and 1 (the share of each annotator's assignments that are gold jobs)")
	}
	if in.QualityIoUThreshold != nil {
		v.Check(*in.QualityIoUThreshold > 0 && *in.QualityIoUThreshold <= 1, "quality_iou_threshold", "must be above 0 and at most 1")
	}
	if in.QualityPassThreshold != nil {
		v.Check(*in.QualityPassThreshold >= 0 && *in.QualityPassThreshold <= 1, "quality_pass_threshold", "must be between 0 and 1")
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"quality_prior_alpha", in.QualityPriorAlpha}, {"quality_prior_beta", in.QualityPriorBeta}} {
		if f.v != nil {
			v.Check(*f.v > 0 && *f.v <= 1e6, f.name, "must be above 0 and at most 1,000,000 (a Beta prior's parameter)")
		}
	}
	for ft, types := range in.AllowedContentTypes {
		if !db.FileType(ft).Valid() {
			v.Add("allowed_content_types."+ft, "is not a file type (dataset, requirement, annotation_results, llm_output)")
		}
		for _, t := range types {
			if t != "*/*" && normalizeMIME(&Validation{}, "", &t) == nil {
				v.Add("allowed_content_types."+ft, "%q is not a media type or pattern such as image/*", t)
			}
		}
	}
	return v.Err()
}

// noSuchUser is the one answer for a PM id that is not a user of the caller's
// organization, whether it is another organization's user or no user at all, so
// that the answer tells nothing about other tenants.
const noSuchUser = "is not a user of your organization (see GET /v1/users)"

// checkPMs refuses PM ids that are not live users of the caller's organization
// (projects_client_pm_fk and projects_our_pm_fk back this up in the database).
func (c *Call) checkPMs(in *ProjectInput) error {
	var v Validation
	for _, pm := range []struct {
		field string
		id    *int64
	}{{"client_pm_id", in.ClientPMID}, {"our_pm_id", in.OurPMID}} {
		if pm.id == nil {
			continue
		}
		_, err := c.Q.UserGet(c.R.Context(), db.UserGetParams{ID: *pm.id, OrgID: c.OrgID})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			v.Add(pm.field, noSuchUser)
		case err != nil:
			return err
		}
	}
	return v.Err()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func rawOrNil(m any, isNil bool) json.RawMessage {
	if isNil {
		return nil
	}
	b, _ := json.Marshal(m)
	return b
}

func createProject(c *Call) (int, any, error) {
	var in ProjectInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	if err := in.validate(true); err != nil {
		return 0, nil, err
	}
	if err := c.S.Quotas.checkLLM(&in); err != nil {
		return 0, nil, err
	}
	if err := c.checkPMs(&in); err != nil {
		return 0, nil, err
	}
	maxTokens := min(int32(1024), c.S.Quotas.maxTokens())
	if in.LLMMaxTokens != nil {
		maxTokens = *in.LLMMaxTokens
	}
	minProf := 3.0
	if in.MinLanguageProficiency != nil {
		minProf = *in.MinLanguageProficiency
	}
	var budget *int64
	if in.LLMDailyTokenBudget != nil && *in.LLMDailyTokenBudget > 0 {
		budget = in.LLMDailyTokenBudget
	}
	schema := in.AnnotationSchema
	if string(schema) == "null" {
		schema = nil
	}
	p, err := c.Q.ProjectCreate(c.R.Context(), db.ProjectCreateParams{
		OrgID: c.OrgID, Name: *in.Name, Description: deref(in.Description), RequirementsText: deref(in.RequirementsText),
		ClientPmID: in.ClientPMID, OurPmID: in.OurPMID,
		LlmEnabled: deref(in.LLMEnabled), LlmModel: deref(in.LLMModel), LlmTemperature: deref(in.LLMTemperature),
		LlmMaxTokens: maxTokens, LlmSystemPrompt: deref(in.LLMSystemPrompt), LlmDailyTokenBudget: budget,
		AnnotationSchema: schema, MinLanguageProficiency: minProf, AssignReviewers: deref(in.AssignReviewers),
		AllowedContentTypes: rawOrNil(in.AllowedContentTypes, in.AllowedContentTypes == nil),
		Overlap:             in.Overlap, GoldRate: in.GoldRate, QualityIouThreshold: in.QualityIoUThreshold,
		QualityPassThreshold: in.QualityPassThreshold, QualityPriorAlpha: in.QualityPriorAlpha, QualityPriorBeta: in.QualityPriorBeta,
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, projectFromRow(p), nil
}

func getProject(c *Call) (int, any, error) {
	return getByID(c, "project_id", "project", func(ctx context.Context, id int64) (any, error) {
		p, err := c.Q.ProjectGet(ctx, db.ProjectGetParams{ID: id, OrgID: c.OrgID})
		return projectFromRow(p), err
	})
}

func listProjects(c *Call) (int, any, error) {
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	ps, err := c.Q.ProjectList(c.R.Context(), db.ProjectListParams{OrgID: c.OrgID, AfterID: after, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(ps, projectFromRow), nil
}

func updateProject(c *Call) (int, any, error) {
	id, err := pathID(c.R, "project_id")
	if err != nil {
		return 0, nil, err
	}
	var in ProjectInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	if err := in.validate(false); err != nil {
		return 0, nil, err
	}
	if err := c.S.Quotas.checkLLM(&in); err != nil {
		return 0, nil, err
	}
	if err := c.checkPMs(&in); err != nil {
		return 0, nil, err
	}
	arg := db.ProjectUpdateParams{
		ID: id, OrgID: c.OrgID, Name: in.Name, Description: in.Description, RequirementsText: in.RequirementsText,
		LlmEnabled: in.LLMEnabled, LlmModel: in.LLMModel, LlmTemperature: in.LLMTemperature, LlmMaxTokens: in.LLMMaxTokens,
		LlmSystemPrompt: in.LLMSystemPrompt, MinLanguageProficiency: in.MinLanguageProficiency,
		AssignReviewers: in.AssignReviewers, ClientPmID: in.ClientPMID, OurPmID: in.OurPMID,
		Overlap: in.Overlap, GoldRate: in.GoldRate, QualityIouThreshold: in.QualityIoUThreshold,
		QualityPassThreshold: in.QualityPassThreshold, QualityPriorAlpha: in.QualityPriorAlpha, QualityPriorBeta: in.QualityPriorBeta,
	}
	if in.Status != nil {
		st := db.ProjectStatus(*in.Status)
		arg.Status = &st
	}
	if in.LLMDailyTokenBudget != nil {
		if *in.LLMDailyTokenBudget == 0 {
			arg.ClearBudget = true
		} else {
			arg.LlmDailyTokenBudget = in.LLMDailyTokenBudget
		}
	}
	if string(in.AnnotationSchema) == "null" {
		arg.ClearSchema = true
	} else if len(in.AnnotationSchema) > 0 {
		arg.AnnotationSchema = in.AnnotationSchema
	}
	if in.AllowedContentTypes != nil {
		arg.AllowedContentTypes = rawOrNil(in.AllowedContentTypes, false)
	}
	p, err := c.Q.ProjectUpdate(c.R.Context(), arg)
	if err != nil {
		return 0, nil, orNotFound(err, "project")
	}
	return http.StatusOK, projectFromRow(p), nil
}

func llmUsage(c *Call) (int, any, error) {
	id, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	u, err := c.Q.LLMUsageByProject(c.R.Context(), db.LLMUsageByProjectParams{ProjectID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, llmUsageFromRow(u), nil
}

// List is the envelope of every list response.
type List[T any] struct {
	Items []T `json:"items"`
}

// projectFromPath reads {project_id} and checks the project exists in the caller's
// organization.
func (c *Call) projectFromPath() (int64, error) {
	pid, err := pathID(c.R, "project_id")
	if err != nil {
		return 0, err
	}
	if _, err := c.Q.ProjectGet(c.R.Context(), db.ProjectGetParams{ID: pid, OrgID: c.OrgID}); err != nil {
		return 0, orNotFound(err, "project")
	}
	return pid, nil
}

// getByID answers GET on one resource: the id from the path, the row from fetch
// (scoped to the caller's organization), 404 when there is none.
func getByID(c *Call, param, what string, fetch func(ctx context.Context, id int64) (any, error)) (int, any, error) {
	id, err := pathID(c.R, param)
	if err != nil {
		return 0, nil, err
	}
	row, err := fetch(c.R.Context(), id)
	if err != nil {
		return 0, nil, orNotFound(err, what)
	}
	return http.StatusOK, row, nil
}
