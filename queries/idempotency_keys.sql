-- name: IdempotencyKeyLock :exec
-- Serialises requests with the same key until the holder's transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended(@lock_key::text, 7));

-- name: IdempotencyKeyGet :one
SELECT * FROM idempotency_keys WHERE org_id = @org_id AND key = @key;

-- name: IdempotencyKeyInsert :exec
INSERT INTO idempotency_keys (org_id, key, method, path, request_hash, status_code, response_body)
VALUES (@org_id, @key, @method, @path, @request_hash, @status_code, @response_body);
