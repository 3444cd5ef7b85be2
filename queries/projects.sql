-- name: ProjectCreate :one
INSERT INTO projects (
    org_id, name, description, requirements_text, client_pm_id, our_pm_id,
    llm_enabled, llm_model, llm_temperature, llm_max_tokens, llm_system_prompt,
    llm_daily_token_budget, annotation_schema, min_language_proficiency, assign_reviewers,
    allowed_content_types
) VALUES (
    @org_id, @name, @description, @requirements_text, @client_pm_id, @our_pm_id,
    @llm_enabled, @llm_model, @llm_temperature, @llm_max_tokens, @llm_system_prompt,
    @llm_daily_token_budget, @annotation_schema, @min_language_proficiency, @assign_reviewers,
    @allowed_content_types
)
RETURNING *;

-- name: ProjectGet :one
SELECT * FROM projects WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: ProjectGetByID :one
-- For workers, which act on ids a task carries and are not tenant-scoped.
SELECT * FROM projects WHERE id = @id AND deleted_at IS NULL;
