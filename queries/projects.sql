-- name: ProjectCreate :one
INSERT INTO projects (
    org_id, name, description, requirements_text, client_pm_id, our_pm_id,
    llm_enabled, llm_model, llm_temperature, llm_max_tokens, llm_system_prompt,
    llm_daily_token_budget, annotation_schema, min_language_proficiency, assign_reviewers,
    allowed_content_types, overlap, gold_rate, quality_iou_threshold, quality_pass_threshold,
    quality_prior_alpha, quality_prior_beta
) VALUES (
    @org_id, @name, @description, @requirements_text, @client_pm_id, @our_pm_id,
    @llm_enabled, @llm_model, @llm_temperature, @llm_max_tokens, @llm_system_prompt,
    @llm_daily_token_budget, @annotation_schema, @min_language_proficiency, @assign_reviewers,
    @allowed_content_types,
    -- NULL: the column's default (overlap 1, no gold, IoU 0.5, pass 0.8, Beta(2, 2)).
    COALESCE(sqlc.narg('overlap')::integer, 1), COALESCE(sqlc.narg('gold_rate')::double precision, 0),
    COALESCE(sqlc.narg('quality_iou_threshold')::double precision, 0.5),
    COALESCE(sqlc.narg('quality_pass_threshold')::double precision, 0.8),
    COALESCE(sqlc.narg('quality_prior_alpha')::double precision, 2),
    COALESCE(sqlc.narg('quality_prior_beta')::double precision, 2)
)
RETURNING *;

-- name: ProjectGet :one
SELECT * FROM projects WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: ProjectGetByID :one
-- For workers, which act on ids a task carries and are not tenant-scoped.
SELECT * FROM projects WHERE id = @id AND deleted_at IS NULL;

-- name: ProjectList :many
SELECT * FROM projects
WHERE org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: ProjectUpdate :one
-- NULL arguments keep the current value; clear_* flags empty the nullable settings.
UPDATE projects SET
    name                     = COALESCE(sqlc.narg('name'), name),
    description              = COALESCE(sqlc.narg('description'), description),
    requirements_text        = COALESCE(sqlc.narg('requirements_text'), requirements_text),
    status                   = COALESCE(sqlc.narg('status')::project_status, status),
    llm_enabled              = COALESCE(sqlc.narg('llm_enabled'), llm_enabled),
    llm_model                = COALESCE(sqlc.narg('llm_model'), llm_model),
    llm_temperature          = COALESCE(sqlc.narg('llm_temperature'), llm_temperature),
    llm_max_tokens           = COALESCE(sqlc.narg('llm_max_tokens'), llm_max_tokens),
    llm_system_prompt        = COALESCE(sqlc.narg('llm_system_prompt'), llm_system_prompt),
    llm_daily_token_budget   = CASE WHEN @clear_budget::boolean THEN NULL
                                    ELSE COALESCE(sqlc.narg('llm_daily_token_budget'), llm_daily_token_budget) END,
    annotation_schema        = CASE WHEN @clear_schema::boolean THEN NULL
                                    ELSE COALESCE(sqlc.narg('annotation_schema'), annotation_schema) END,
    min_language_proficiency = COALESCE(sqlc.narg('min_language_proficiency'), min_language_proficiency),
    assign_reviewers         = COALESCE(sqlc.narg('assign_reviewers'), assign_reviewers),
    allowed_content_types    = COALESCE(sqlc.narg('allowed_content_types'), allowed_content_types),
    client_pm_id             = COALESCE(sqlc.narg('client_pm_id'), client_pm_id),
    our_pm_id                = COALESCE(sqlc.narg('our_pm_id'), our_pm_id),
    overlap                  = COALESCE(sqlc.narg('overlap'), overlap),
    gold_rate                = COALESCE(sqlc.narg('gold_rate'), gold_rate),
    quality_iou_threshold    = COALESCE(sqlc.narg('quality_iou_threshold'), quality_iou_threshold),
    quality_pass_threshold   = COALESCE(sqlc.narg('quality_pass_threshold'), quality_pass_threshold),
    quality_prior_alpha      = COALESCE(sqlc.narg('quality_prior_alpha'), quality_prior_alpha),
    quality_prior_beta       = COALESCE(sqlc.narg('quality_prior_beta'), quality_prior_beta)
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING *;

-- name: ProjectSetLabelConfig :one
-- The project's label config: internal/labelconfig's JSON, checked by the API.
UPDATE projects SET label_config = @label_config
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING label_config;
