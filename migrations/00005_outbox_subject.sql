-- +goose Up
-- The row a task works on (a version, an export, a project), written by outbox.Add
-- from the task's args (tasks.Queued.SubjectID). The reconciler's "is this row's
-- task alive" check is then one indexed look-up by (task type, subject) instead of
-- a LIKE over task id prefixes rebuilt from format strings.
ALTER TABLE outbox ADD COLUMN subject_id bigint;
UPDATE outbox SET subject_id = CASE task_type
    WHEN 'file:validate'    THEN (payload->>'version_id')::bigint
    WHEN 'file:preannotate' THEN (payload->>'version_id')::bigint
    WHEN 'project:match'    THEN (payload->>'project_id')::bigint
    WHEN 'project:export'   THEN (payload->>'export_id')::bigint
END;
CREATE INDEX outbox_subject_idx ON outbox (task_type, subject_id, id);

-- +goose Down
DROP INDEX outbox_subject_idx;
ALTER TABLE outbox DROP COLUMN subject_id;
