-- name: EventLogInsert :exec
-- With a dedup key, the same event written twice (a redelivered task) is kept once
-- (the event_log_dedup trigger drops the repeat, migrations/00020).
INSERT INTO event_log (org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata)
VALUES (@org_id, @entity_type, @entity_id, @event_type, @user_id, @dedup_key, @metadata);

-- name: EventLogListByEntity :many
SELECT * FROM event_log
WHERE org_id = @org_id AND entity_type = @entity_type AND entity_id = @entity_id AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: EventLogInsertBatch :exec
-- Many events of one type in one statement (the arrays are zipped: equal lengths,
-- one element per event); dedup keys make a repeat a no-op.
INSERT INTO event_log (org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata)
SELECT @org_id, @entity_type, unnest(@entity_ids::bigint[]), @event_type,
       unnest(@user_ids::bigint[]), unnest(@dedup_keys::text[]), unnest(@metadata::jsonb[]);

-- name: EventLogLatestOfType :one
SELECT * FROM event_log
WHERE org_id = @org_id AND entity_type = @entity_type AND entity_id = @entity_id AND event_type = @event_type
ORDER BY id DESC
LIMIT 1;

-- name: EventLogEntityExists :one
-- Whether the entity whose events GET /v1/events lists is the caller's: a row of its
-- organization (soft-deleted rows too: their history stays readable). An entity of
-- another organization and one that does not exist are answered alike (404).
SELECT CASE @entity_type::entity_type
    WHEN 'organization'    THEN EXISTS (SELECT 1 FROM organizations t WHERE t.id = @entity_id AND t.id = @org_id)
    WHEN 'user'            THEN EXISTS (SELECT 1 FROM users t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'api_token'       THEN EXISTS (SELECT 1 FROM api_tokens t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'project'         THEN EXISTS (SELECT 1 FROM projects t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'file'            THEN EXISTS (SELECT 1 FROM files t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'file_version'    THEN EXISTS (SELECT 1 FROM file_versions t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'annotation_job'  THEN EXISTS (SELECT 1 FROM annotation_jobs t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'assignment'      THEN EXISTS (SELECT 1 FROM assignments t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'review'          THEN EXISTS (SELECT 1 FROM reviews t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'llm_run'         THEN EXISTS (SELECT 1 FROM llm_runs t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'export'          THEN EXISTS (SELECT 1 FROM export_logs t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'export_schedule' THEN EXISTS (SELECT 1 FROM export_schedules t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'storage'         THEN EXISTS (SELECT 1 FROM storages t WHERE t.id = @entity_id AND t.org_id = @org_id)
    WHEN 'sync_run'        THEN EXISTS (SELECT 1 FROM sync_runs t WHERE t.id = @entity_id AND t.org_id = @org_id)
    ELSE false
END::boolean AS found;
