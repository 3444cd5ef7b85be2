-- name: StorageNotifyAuthenticate :one
-- The organization of the import storage whose notification secret has this
-- SHA-256, or no row: a storage that does not exist, is disabled or deleted, and a
-- wrong secret are alike. A SECURITY DEFINER function (migrations/00010) because
-- the API role's row-level security hides every storage until the organization is
-- known.
SELECT org_id::bigint AS org_id
FROM labelq_storage_notify_authenticate(@storage_id::bigint, @secret_hash::bytea) AS org_id
WHERE org_id IS NOT NULL;

-- name: StorageNotifyGet :one
-- The storage a notification is for, in the caller's organization.
SELECT * FROM storages
WHERE id = @id AND org_id = @org_id AND kind = 'import' AND enabled AND deleted_at IS NULL;
