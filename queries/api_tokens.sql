-- name: APITokenCreate :one
INSERT INTO api_tokens (org_id, name, token_hash, scopes)
VALUES (@org_id, @name, @token_hash, @scopes)
RETURNING *;

-- name: APITokenGetByHash :one
SELECT * FROM api_tokens WHERE token_hash = @token_hash AND revoked_at IS NULL;

-- name: APITokenTouch :exec
UPDATE api_tokens SET last_used_at = now()
WHERE id = @id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: APITokenRevoke :execrows
UPDATE api_tokens SET revoked_at = now() WHERE id = @id AND org_id = @org_id AND revoked_at IS NULL;
