-- Bulk registration (internal/ingest): a sync page, a bucket notification and the
-- batch registration API write files, versions, links and outbox rows with one
-- multi-row statement per table, whatever the number of objects.

-- name: StorageLockXact :exec
-- Serialises, until commit, every registration through one storage: a sync page
-- and a bucket notification never interleave on the same keys.
SELECT pg_advisory_xact_lock(hashtextextended(concat('storage:', @storage_id::bigint), 0));

-- name: StorageLinkListRange :many
-- The links of the key range (after, upto] of a storage, in key order: one range
-- of the primary key (keys are COLLATE "C", the order ListObjectsV2 lists in).
SELECT * FROM storage_links
WHERE storage_id = @storage_id AND key > @after::text AND key <= @upto::text
ORDER BY key;

-- name: StorageLinkListFrom :many
-- The links of a storage after a key, to the end: the last page of a listing.
SELECT * FROM storage_links
WHERE storage_id = @storage_id AND key > @after::text
ORDER BY key;

-- name: StorageLinkListKeys :many
-- The links of the named keys (a bucket notification).
SELECT * FROM storage_links
WHERE storage_id = @storage_id AND key = ANY(@keys::text[])
ORDER BY key;

-- name: StorageLinksUpsert :exec
-- New links, and links whose key now has a newer version (arrays zipped, one
-- element per key). A link that was gone is back; one an import made is listed now.
INSERT INTO storage_links (storage_id, key, org_id, project_id, file_id, version_id, etag, size_bytes)
SELECT @storage_id, unnest(@keys::text[]), @org_id, @project_id,
       unnest(@file_ids::bigint[]), unnest(@version_ids::bigint[]), unnest(@etags::text[]), unnest(@sizes::bigint[])
ON CONFLICT (storage_id, key) DO UPDATE SET
    file_id = excluded.file_id, version_id = excluded.version_id,
    etag = excluded.etag, size_bytes = excluded.size_bytes, gone_at = NULL, unlisted = false;

-- name: StorageLinksSetGone :many
-- Keys no longer in the bucket; returns the files of the links that were not gone
-- already.
UPDATE storage_links SET gone_at = @gone_at
WHERE storage_id = @storage_id AND key = ANY(@keys::text[]) AND gone_at IS NULL
RETURNING file_id;

-- name: StorageLinksClearGone :exec
-- Keys back in the bucket with the object they had when they went.
UPDATE storage_links SET gone_at = NULL
WHERE storage_id = @storage_id AND key = ANY(@keys::text[]) AND gone_at IS NOT NULL;

-- name: FilesCreateMany :many
-- New files (arrays zipped); a name a live file of the project already has is
-- left out of the result, not an error.
INSERT INTO files (org_id, project_id, name, file_type, uploaded_by)
SELECT @org_id, @project_id, unnest(@names::text[]), unnest(@file_types::text[])::file_type, sqlc.narg('uploaded_by')::bigint
ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING
RETURNING id, name;

-- name: FilesOwnersOfNames :many
-- Which live files hold these names (to say why a name could not be taken).
SELECT id, name FROM files
WHERE project_id = @project_id AND name = ANY(@names::text[]) AND deleted_at IS NULL;

-- name: FilesDeletedAmong :many
-- Which of these files are archived (soft-deleted): asked only for the keys whose
-- link may need it (changed, or back after being gone), not for every listed key.
SELECT id FROM files WHERE id = ANY(@ids::bigint[]) AND deleted_at IS NOT NULL;

-- name: FilesLockMany :many
-- Row locks on the files that get a new version, in id order (so two writers
-- never wait on each other in a cycle); the version number is read under them.
SELECT id FROM files WHERE id = ANY(@ids::bigint[]) ORDER BY id FOR UPDATE;

-- name: FilesArchiveMany :exec
-- Archives (soft-deletes) the files whose keys left the bucket.
UPDATE files SET deleted_at = @deleted_at WHERE id = ANY(@ids::bigint[]) AND deleted_at IS NULL;

-- name: FilesRestoreMany :many
-- Un-archives files whose keys are back, when no live file took their name
-- meanwhile; returns the ids restored.
UPDATE files f SET deleted_at = NULL
WHERE f.id = ANY(@ids::bigint[]) AND f.deleted_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM files o WHERE o.project_id = f.project_id AND o.name = f.name AND o.deleted_at IS NULL)
RETURNING f.id;

-- name: FileVersionsCreateMany :many
-- The next version of each file (arrays zipped, one element per version; a file
-- may appear more than once and gets consecutive numbers in array order). The
-- caller holds the row locks of files that already have versions. Empty strings,
-- 0 and -1 stand for NULL in the optional columns.
WITH u AS (
    SELECT unnest(@file_ids::bigint[]) AS file_id,
           unnest(@storage_ids::bigint[]) AS storage_id,
           unnest(@storage_paths::text[]) AS storage_path,
           unnest(@expected_sha256s::text[]) AS expected_sha256,
           unnest(@expected_sizes::bigint[]) AS expected_size,
           unnest(@expected_mime_types::text[]) AS expected_mime_type,
           unnest(@uploaded_bys::bigint[]) AS uploaded_by,
           unnest(@job_languages::text[]) AS job_language,
           unnest(@job_priorities::text[]) AS job_priority,
           unnest(@job_due_dates::text[]) AS job_due_date,
           generate_series(1, cardinality(@file_ids::bigint[])) AS ord
), n AS (
    SELECT u.*, row_number() OVER (PARTITION BY u.file_id ORDER BY u.ord) AS nth
    FROM u
)
INSERT INTO file_versions (
    org_id, project_id, file_id, version_number, storage_id, storage_path,
    expected_sha256, expected_size, expected_mime_type, uploaded_by,
    job_language, job_priority, job_due_date
)
SELECT @org_id, @project_id, n.file_id,
       (SELECT COALESCE(MAX(v.version_number), 0) FROM file_versions v WHERE v.file_id = n.file_id) + n.nth::integer,
       NULLIF(n.storage_id, 0), n.storage_path,
       NULLIF(n.expected_sha256, ''), NULLIF(n.expected_size, -1), NULLIF(n.expected_mime_type, ''),
       NULLIF(n.uploaded_by, 0),
       NULLIF(n.job_language, ''), NULLIF(n.job_priority, '')::job_priority, NULLIF(n.job_due_date, '')::timestamptz
FROM n
ORDER BY n.ord
RETURNING id, file_id, version_number, storage_path;

-- name: StorageLinksInsertUnlisted :exec
-- Links of keys an import named without listing them (arrays zipped): ETag and size
-- unknown until a listing adopts them (StorageLinksAdopt). The caller holds the
-- storage's lock and has seen the keys unlinked.
INSERT INTO storage_links (storage_id, key, org_id, project_id, file_id, version_id, etag, size_bytes, unlisted)
SELECT @storage_id, unnest(@keys::text[]), @org_id, @project_id,
       unnest(@file_ids::bigint[]), unnest(@version_ids::bigint[]), '', 0, true;

-- name: StorageLinksAdopt :exec
-- A listing saw keys whose links an import made: they take the listed ETag and size
-- (arrays zipped) and become ordinary links, with no new version.
UPDATE storage_links l SET etag = u.etag, size_bytes = u.size, unlisted = false
FROM (SELECT unnest(@keys::text[]) AS key, unnest(@etags::text[]) AS etag, unnest(@sizes::bigint[]) AS size) u
WHERE l.storage_id = @storage_id AND l.key = u.key AND l.unlisted;
