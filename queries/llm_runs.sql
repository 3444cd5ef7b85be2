-- name: LLMUsageByProject :one
SELECT count(*)::bigint AS runs,
       count(*) FILTER (WHERE status = 'succeeded' AND cached_from_id IS NULL)::bigint AS paid_calls,
       count(*) FILTER (WHERE cached_from_id IS NOT NULL)::bigint AS cache_hits,
       COALESCE(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0)::bigint AS completion_tokens,
       COALESCE(sum(cost_usd), 0)::float8 AS cost_usd
FROM llm_runs WHERE project_id = @project_id AND org_id = @org_id;
