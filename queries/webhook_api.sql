-- Webhooks: what the API's /v1/webhooks routes need beyond queries/webhooks.sql.

-- name: WebhookEndpointGetForUpdate :one
-- The row a PATCH merges its request into, locked until the update commits, so two
-- PATCHes of one endpoint never drop each other's fields.
SELECT * FROM webhook_endpoints
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
FOR UPDATE;

-- name: WebhookDeliveryListNewest :many
-- An endpoint's deliveries, newest first (ids below @before_id when given), only
-- those of @status when given.
SELECT d.*, ev.public_id, ev.event_type
FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
WHERE d.org_id = @org_id AND d.endpoint_id = @endpoint_id
  AND (sqlc.narg('before_id')::bigint IS NULL OR d.id < sqlc.narg('before_id')::bigint)
  AND (sqlc.narg('status')::webhook_delivery_status IS NULL OR d.status = sqlc.narg('status')::webhook_delivery_status)
ORDER BY d.id DESC
LIMIT @max_rows;

-- name: ProjectIDsOfOrg :many
-- Which of @ids are live projects of the organization (a webhook's project_ids).
SELECT id FROM projects
WHERE org_id = @org_id AND id = ANY (@ids::bigint[]) AND deleted_at IS NULL;

-- name: AnnotationJobFileID :one
-- The file of a job (an assignment event names it).
SELECT file_id FROM annotation_jobs WHERE id = @id AND org_id = @org_id;
