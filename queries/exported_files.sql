-- name: ExportedFileInsertBatch :exec
-- The versions a completed export packed, with their paths in the archive (the
-- arrays are zipped: equal lengths, one element per version).
INSERT INTO exported_files (export_id, org_id, file_version_id, archive_path)
SELECT @export_id, @org_id, unnest(@file_version_ids::bigint[]), unnest(@archive_paths::text[])
ON CONFLICT DO NOTHING;

-- name: ExportedFileListByExport :many
SELECT * FROM exported_files
WHERE export_id = @export_id AND org_id = @org_id
ORDER BY file_version_id;
