-- name: EventLogInsert :exec
-- With a dedup key, the same event written twice (a redelivered task) is kept once.
INSERT INTO event_log (org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata)
VALUES (@org_id, @entity_type, @entity_id, @event_type, @user_id, @dedup_key, @metadata)
ON CONFLICT (dedup_key) DO NOTHING;

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
       unnest(@user_ids::bigint[]), unnest(@dedup_keys::text[]), unnest(@metadata::jsonb[])
ON CONFLICT (dedup_key) DO NOTHING;

-- name: EventLogLatestOfType :one
SELECT * FROM event_log
WHERE org_id = @org_id AND entity_type = @entity_type AND entity_id = @entity_id AND event_type = @event_type
ORDER BY id DESC
LIMIT 1;
