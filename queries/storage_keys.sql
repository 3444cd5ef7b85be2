-- name: StorageListSealedByOtherKey :many
-- Storages whose credentials are sealed under another key than the current one:
-- what `labelq storage rekey` seals again.
SELECT id, org_id, credentials, credentials_key_id FROM storages
WHERE credentials IS NOT NULL AND credentials_key_id <> @current_key_id::text
ORDER BY id
LIMIT @max_rows;

-- name: StorageReseal :execrows
-- Replaces sealed credentials, only if they are still the ones read (a PATCH that
-- set new credentials in between wins).
UPDATE storages SET credentials = @credentials, credentials_key_id = @credentials_key_id::text
WHERE id = @id AND credentials_key_id = @old_key_id::text AND credentials = @old_credentials;
