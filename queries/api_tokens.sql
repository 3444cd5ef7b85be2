-- name: APITokenCreate :one
INSERT INTO api_tokens (org_id, name, token_hash, scopes)
VALUES (@org_id, @name, @token_hash, @scopes)
RETURNING *;

-- name: APITokenAuthenticate :one
-- The live token with this hash, and last_used_at touched (at most once a minute, so
-- a busy client does not rewrite the row on every request), in one round trip.
WITH t AS (
    SELECT api_tokens.id, api_tokens.org_id, api_tokens.last_used_at FROM api_tokens
    WHERE api_tokens.token_hash = @token_hash AND api_tokens.revoked_at IS NULL
), touched AS (
    UPDATE api_tokens a SET last_used_at = now()
    FROM t
    WHERE a.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')
)
SELECT t.id, t.org_id FROM t;
