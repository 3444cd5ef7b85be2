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
