-- Webhooks: endpoints (the API's), events and deliveries (the state changes' and
-- webhook:deliver's).

-- name: WebhookEmit :many
-- One event of a state change, in its transaction: when at least one enabled
-- endpoint of the organization subscribes to the type (and to the project, when it
-- names projects), the event row and one delivery per such endpoint. Nothing is
-- written when nobody subscribes, and a second write of the same dedup key (a
-- redelivered task) writes nothing. @only_endpoint (0: any) limits it to one
-- endpoint, whatever types and projects it subscribes to (a test ping).
WITH targets AS (
    SELECT e.id FROM webhook_endpoints e
    WHERE e.org_id = @org_id::bigint AND e.enabled AND e.deleted_at IS NULL
      AND (@only_endpoint::bigint = 0 OR e.id = @only_endpoint::bigint)
      AND (@only_endpoint::bigint <> 0 OR (
          (cardinality(e.event_types) = 0 OR @event_type::text = ANY (e.event_types))
          AND (cardinality(e.project_ids) = 0 OR sqlc.narg('project_id')::bigint = ANY (e.project_ids))))
), ev AS (
    INSERT INTO webhook_events (org_id, public_id, event_type, project_id, entity_type, entity_id, dedup_key, body)
    SELECT @org_id::bigint, @public_id::text, @event_type::text, sqlc.narg('project_id')::bigint,
           @entity_type::entity_type, @entity_id::bigint, sqlc.narg('dedup_key')::text, @body::text
    WHERE EXISTS (SELECT 1 FROM targets)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id
)
INSERT INTO webhook_deliveries (org_id, endpoint_id, event_id)
SELECT @org_id::bigint, t.id, ev.id FROM targets t CROSS JOIN ev
RETURNING id;

-- name: WebhookEndpointInsert :one
INSERT INTO webhook_endpoints (org_id, url, description, event_types, project_ids, secret, secret_key_id, enabled)
VALUES (@org_id, @url, @description, @event_types::text[], @project_ids::bigint[], @secret, @secret_key_id, @enabled)
RETURNING *;

-- name: WebhookEndpointGet :one
SELECT * FROM webhook_endpoints WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: WebhookEndpointList :many
SELECT * FROM webhook_endpoints
WHERE org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: WebhookEndpointUpdate :one
-- PATCH: every field is the new value (the API merges the old row with the request).
-- Enabling an endpoint clears why it was disabled and its failure streak.
UPDATE webhook_endpoints SET
    url = @url, description = @description, event_types = @event_types::text[],
    project_ids = @project_ids::bigint[], enabled = @enabled,
    disabled_reason = CASE WHEN @enabled THEN NULL ELSE disabled_reason END,
    disabled_at = CASE WHEN @enabled THEN NULL WHEN enabled THEN now() ELSE disabled_at END,
    failing_since = CASE WHEN @enabled AND NOT enabled THEN NULL ELSE failing_since END
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING *;

-- name: WebhookEndpointDelete :execrows
UPDATE webhook_endpoints SET deleted_at = now(), enabled = false
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: WebhookEndpointRotate :one
-- The new secret signs from now on; the current one keeps signing too until
-- @overlap_until (both signatures in every delivery's header meanwhile).
UPDATE webhook_endpoints SET
    previous_secret = secret, previous_secret_key_id = secret_key_id,
    previous_secret_expires_at = @overlap_until::timestamptz,
    secret = @secret, secret_key_id = @secret_key_id
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING *;

-- name: WebhookEndpointListSealed :many
-- Every endpoint's sealed secrets, for `labelq storage rekey`.
SELECT id, org_id, secret, secret_key_id, previous_secret, previous_secret_key_id
FROM webhook_endpoints
WHERE secret_key_id <> @keep_key_id::text OR previous_secret_key_id <> @keep_key_id::text
ORDER BY id;

-- name: WebhookEndpointReseal :execrows
-- Only if the secret is still the one read (a rotation meanwhile wins; the next
-- rekey reseals it).
UPDATE webhook_endpoints SET secret = @secret, secret_key_id = @secret_key_id,
    previous_secret = sqlc.narg('previous_secret'), previous_secret_key_id = sqlc.narg('previous_secret_key_id')
WHERE id = @id AND secret = @old_secret;

-- name: WebhookDeliveryForAttempt :one
-- What webhook:deliver needs for one attempt, the delivery locked so two tasks of one
-- delivery (a reconciler's re-queue racing a slow first) never attempt it at once.
SELECT d.id, d.org_id, d.endpoint_id, d.event_id, d.status, d.attempts, d.round, d.round_start,
       d.next_attempt_at,
       e.url, e.enabled AS endpoint_enabled, e.deleted_at AS endpoint_deleted_at,
       e.secret, e.secret_key_id, e.previous_secret, e.previous_secret_key_id,
       e.previous_secret_expires_at, e.failing_since,
       ev.public_id, ev.event_type, ev.body, ev.created_at AS event_created_at
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id
JOIN webhook_events ev ON ev.id = d.event_id
WHERE d.id = @id
FOR UPDATE OF d;

-- name: WebhookDeliveryToAttempt :one
-- WebhookDeliveryForAttempt without the lock, for webhook:deliver's first read: a
-- lock taken outside a transaction ends with the statement and only costs a WAL
-- flush (the lock is taken again, and checked, where the attempt is recorded).
SELECT d.id, d.org_id, d.endpoint_id, d.event_id, d.status, d.attempts, d.round, d.round_start,
       d.next_attempt_at,
       e.url, e.enabled AS endpoint_enabled, e.deleted_at AS endpoint_deleted_at,
       e.secret, e.secret_key_id, e.previous_secret, e.previous_secret_key_id,
       e.previous_secret_expires_at, e.failing_since,
       ev.public_id, ev.event_type, ev.body, ev.created_at AS event_created_at
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id
JOIN webhook_events ev ON ev.id = d.event_id
WHERE d.id = @id;

-- name: WebhookAttemptInsert :exec
INSERT INTO webhook_attempts (org_id, delivery_id, attempt, started_at, latency_ms, status_code, response_body, error, outcome)
VALUES (@org_id, @delivery_id, @attempt, @started_at, @latency_ms, sqlc.narg('status_code'), @response_body, sqlc.narg('error'), @outcome)
ON CONFLICT (delivery_id, attempt) DO NOTHING;

-- name: WebhookDeliveryRecord :exec
-- The outcome of attempt @attempts: pending with its next time, or finished.
UPDATE webhook_deliveries SET
    attempts = @attempts, status = @status, next_attempt_at = @next_attempt_at,
    last_status_code = sqlc.narg('last_status_code'), last_error = sqlc.narg('last_error'),
    finished_at = CASE WHEN @status = 'pending'::webhook_delivery_status THEN NULL ELSE now() END
WHERE id = @id;

-- name: WebhookEndpointSucceeded :exec
UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = now()
WHERE id = @id AND (failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < now() - interval '1 minute');

-- name: WebhookEndpointFailed :one
-- A failed attempt starts the endpoint's failure streak (if none); the answer says
-- since when it has been failing.
UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, @at::timestamptz)
WHERE id = @id
RETURNING failing_since, enabled;

-- name: WebhookEndpointDisable :execrows
-- labelq disables an endpoint (410 Gone, failing for days): once.
UPDATE webhook_endpoints SET enabled = false, disabled_reason = @reason::text, disabled_at = now()
WHERE id = @id AND enabled;

-- name: WebhookAttemptsOfDeliveries :many
SELECT * FROM webhook_attempts
WHERE org_id = @org_id AND delivery_id = ANY (@delivery_ids::bigint[])
ORDER BY delivery_id, attempt;

-- name: WebhookDeliveryGet :one
SELECT d.*, ev.public_id, ev.event_type
FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
WHERE d.id = @id AND d.org_id = @org_id;

-- name: WebhookDeliveryRedeliver :one
-- A finished delivery starts again: a new round of the retry schedule, due now.
UPDATE webhook_deliveries SET status = 'pending', round = round + 1, round_start = attempts,
    next_attempt_at = now(), finished_at = NULL
WHERE id = @id AND org_id = @org_id AND status <> 'pending'
RETURNING *;

-- name: WebhookDeliveryListStuck :many
-- Pending deliveries due for a while: the reconciler checks that each has a live task.
SELECT id, org_id FROM webhook_deliveries
WHERE status = 'pending' AND next_attempt_at < @older_than::timestamptz
ORDER BY next_attempt_at
LIMIT @max_rows;

-- name: WebhookDeleteBefore :execrows
-- Retention: events (with their deliveries and attempts) older than @before whose
-- deliveries are all finished.
DELETE FROM webhook_events ev
WHERE ev.id IN (
    SELECT e.id FROM webhook_events e
    WHERE e.created_at < @before::timestamptz
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
    ORDER BY e.id
    LIMIT @max_rows
);

-- name: WebhookEventsOfEntity :many
-- The events written for one entity (tests and the chaos checker).
SELECT * FROM webhook_events
WHERE org_id = @org_id AND entity_type = @entity_type AND entity_id = @entity_id
ORDER BY id;
