-- name: LLMUsageByProject :one
-- A project's runs by outcome (failed and skipped included: a version whose run
-- failed cost tokens all the same, and a skipped one says why it has no output),
-- cache hits, tokens and cost.
SELECT count(*)::bigint AS runs,
       count(*) FILTER (WHERE status = 'succeeded' AND cached_from_id IS NULL)::bigint AS paid_calls,
       count(*) FILTER (WHERE cached_from_id IS NOT NULL)::bigint AS cache_hits,
       count(*) FILTER (WHERE status = 'failed')::bigint AS failed,
       count(*) FILTER (WHERE status = 'skipped')::bigint AS skipped,
       count(*) FILTER (WHERE status IN ('pending', 'running'))::bigint AS in_progress,
       count(*) FILTER (WHERE output_unwrapped)::bigint AS unwrapped,
       COALESCE(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0)::bigint AS completion_tokens,
       COALESCE(sum(cost_usd), 0)::float8 AS cost_usd
FROM llm_runs WHERE project_id = @project_id AND org_id = @org_id;

-- name: LLMRunInsert :one
-- The run of a version under one set of settings (model, prompt, schema). No row when
-- it exists already: a redelivered task must not touch a finished run (not even its
-- updated_at), so the caller then reads it with LLMRunGetBySettings.
INSERT INTO llm_runs (org_id, project_id, file_version_id, model, prompt_hash, schema_hash, input_sha256)
VALUES (@org_id, @project_id, @file_version_id, @model, @prompt_hash, @schema_hash, @input_sha256)
ON CONFLICT ON CONSTRAINT llm_runs_version_settings_key DO NOTHING
RETURNING *;

-- name: LLMRunGetBySettings :one
SELECT * FROM llm_runs
WHERE file_version_id = @file_version_id AND model = @model AND prompt_hash = @prompt_hash AND schema_hash = @schema_hash;

-- name: LLMRunGetForUpdate :one
SELECT * FROM llm_runs WHERE id = @id FOR UPDATE;

-- name: LLMRunFindCached :one
-- The run of the organization that paid for this cache key, if any (at most one:
-- llm_runs_paid_cache_key). The cache never crosses organizations.
SELECT * FROM llm_runs
WHERE org_id = @org_id AND cache_key = @cache_key::text AND status = 'succeeded' AND cached_from_id IS NULL;

-- name: LLMRunRecord :one
-- Sets a run's status and adds one step's usage to it. Usage accumulates over
-- attempts (a retried call was still paid for); error, raw_output, output_unwrapped,
-- output_version_id and cached_from_id are set as given. finished_at is set by
-- terminal statuses. A succeeded run is final: no row comes back, and the caller
-- leaves it be. The version's preannotation_status and _reason follow its latest
-- run in the same statement (an older run, superseded by new settings, does not
-- speak for the version), and are not written when they already say that.
WITH r AS (
    UPDATE llm_runs SET
        status            = @status::llm_run_status,
        attempts          = attempts + @calls::integer,
        prompt_tokens     = prompt_tokens + @prompt_tokens::integer,
        completion_tokens = completion_tokens + @completion_tokens::integer,
        latency_ms        = latency_ms + @latency_ms::integer,
        cost_usd          = cost_usd + @cost_usd::float8,
        error             = sqlc.narg('error'),
        raw_output        = sqlc.narg('raw_output'),
        output_unwrapped  = @output_unwrapped::boolean,
        output_version_id = sqlc.narg('output_version_id'),
        cached_from_id    = sqlc.narg('cached_from_id'),
        started_at        = COALESCE(started_at, now()),
        finished_at       = CASE WHEN @status::llm_run_status IN ('succeeded', 'failed', 'skipped') THEN now() END
    WHERE llm_runs.id = @id AND llm_runs.status <> 'succeeded'
    RETURNING *
), version AS (
    UPDATE file_versions v SET preannotation_status = r.status, preannotation_reason = r.error
    FROM r
    WHERE v.id = r.file_version_id
      AND r.id = (SELECT max(l.id) FROM llm_runs l WHERE l.file_version_id = r.file_version_id)
      AND (v.preannotation_status IS DISTINCT FROM r.status OR v.preannotation_reason IS DISTINCT FROM r.error)
    RETURNING v.id
)
SELECT r.* FROM r;

-- name: LLMRunSkipOthers :execrows
-- Closes the unfinished runs of a version other than keep_id (0 closes them all): runs
-- made under settings the project no longer has, or for a version that will not be
-- pre-annotated. Left open they would look stuck to the reconciler forever.
UPDATE llm_runs SET status = 'skipped', error = @reason::text, finished_at = now()
WHERE file_version_id = @file_version_id AND id <> @keep_id::bigint AND status IN ('pending', 'running');

-- name: LLMTokensUsedSince :one
-- Tokens (prompt + completion) of the project's runs created since the given time:
-- the daily budget's "used today".
SELECT COALESCE(sum(prompt_tokens + completion_tokens), 0)::bigint AS tokens
FROM llm_runs
WHERE project_id = @project_id AND created_at >= @since;

-- name: LLMRunListStuck :many
-- Versions with a run pending or running for longer than the threshold: the
-- reconciler checks each has a live file:preannotate task.
SELECT file_version_id, org_id FROM llm_runs
WHERE status IN ('pending', 'running') AND updated_at < @older_than
GROUP BY file_version_id, org_id
ORDER BY file_version_id
LIMIT @max_rows;

-- name: LLMRunGet :one
SELECT * FROM llm_runs WHERE id = @id;

-- name: LLMRunRestartForInput :one
-- Opens again a run skipped because its version's object was overwritten after
-- validation, now that the version is validated again: the run's settings are the
-- same, its input may not be (changed_reason is the skip reason that says so). No
-- row when the run is not such a run.
UPDATE llm_runs SET status = 'pending', input_sha256 = @input_sha256, error = NULL, finished_at = NULL
WHERE id = @id AND status = 'skipped' AND (input_sha256 <> @input_sha256 OR error = @changed_reason::text)
RETURNING *;

-- name: LLMRunListByVersion :many
-- A version's runs, newest first: one per set of LLM settings it was pre-annotated
-- with (so a handful).
SELECT * FROM llm_runs
WHERE file_version_id = @file_version_id AND org_id = @org_id
ORDER BY id DESC
LIMIT @max_rows;

-- name: FileVersionSetPreannotation :exec
-- Records a pre-annotation outcome that has no run of its own (the project's LLM is
-- off, the version cannot be pre-annotated); a run's own outcome reaches the
-- version through LLMRunRecord. Nothing is written when the version already says so.
UPDATE file_versions SET preannotation_status = @status::llm_run_status, preannotation_reason = @reason::text
WHERE id = @id
  AND (preannotation_status IS DISTINCT FROM @status::llm_run_status OR preannotation_reason IS DISTINCT FROM @reason::text);
