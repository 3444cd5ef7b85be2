-- name: FileListForBatch :many
-- The live files of a project named by id or by name in a batch, locked for the
-- rest of the registration in one statement, in id order (two batches naming
-- the same files cannot deadlock): a concurrent batch registering the same path
-- waits, then sees it registered.
SELECT id, name, file_type FROM files
WHERE org_id = @org_id AND project_id = @project_id AND deleted_at IS NULL
  AND (id = ANY(@ids::bigint[]) OR name = ANY(@names::text[]))
ORDER BY id
FOR UPDATE;

-- name: FileVersionListByFilePaths :many
-- The versions already registered for (file, storage path) pairs (the arrays are
-- zipped), oldest first.
SELECT v.id, v.file_id, v.storage_path
FROM file_versions v
JOIN (SELECT unnest(@file_ids::bigint[]) AS file_id, unnest(@storage_paths::text[]) AS storage_path) p
  ON v.file_id = p.file_id AND v.storage_path = p.storage_path
WHERE v.org_id = @org_id
ORDER BY v.id;

-- name: UseCustomPlans :exec
-- For the rest of the transaction, plans every statement for the values it is
-- given. A batch's lookups take arrays of a thousand ids, names or paths; a
-- generic plan, cached from when the project was small, scans the whole project
-- and searches each array linearly per row (FileListForBatch took 3.4 s a call at
-- 50,000 files), where a plan for the values searches a hashed array or the index.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true);
