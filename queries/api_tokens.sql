-- name: APITokenCreate :one
INSERT INTO api_tokens (org_id, name, token_hash, scopes, expires_at)
VALUES (@org_id, @name, @token_hash, @scopes, sqlc.narg('expires_at'))
RETURNING *;

-- name: APITokenAuthenticate :one
-- The live token with this hash (not revoked, not expired, its organization not
-- deleted), last_used_at touched at most once a minute, in one round trip. It is a
-- SECURITY DEFINER function (migrations/00008) because the API role's row-level
-- security hides every token until the caller's organization is known.
SELECT id::bigint AS id, org_id::bigint AS org_id, scopes::text[] AS scopes
FROM labelq_token_authenticate(@token_hash::bytea);

-- name: APITokenList :many
-- Every token with its organization's name, newest first; never the hash.
SELECT t.id, t.org_id, o.name AS org_name, t.name, t.scopes, t.created_at, t.last_used_at,
       t.expires_at, t.revoked_at
FROM api_tokens t JOIN organizations o ON o.id = t.org_id
WHERE (sqlc.narg('org_name')::text IS NULL OR o.name = sqlc.narg('org_name'))
ORDER BY t.id DESC;

-- name: APITokenRevoke :one
-- Revokes a token (once: revoking again keeps the first time) and returns it.
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()), updated_at = now()
WHERE id = @id
RETURNING id, org_id, name, revoked_at;
