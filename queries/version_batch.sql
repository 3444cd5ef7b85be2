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
