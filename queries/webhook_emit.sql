-- Webhook events written many at a time (webhook.EmitMany).

-- name: WebhookEmitMany :many
-- WebhookEmit for many events of one type and one organization in one statement
-- (the arrays are zipped, one element per event): a matching run's thousand
-- assignment.created. An event is written when at least one enabled endpoint of the
-- organization subscribes to the type and to the event's project (@project_ids holds
-- 0 for an event of no project), with one delivery per such endpoint; a dedup key
-- already written (a redelivered task) writes nothing. Nothing at all is written
-- when nobody subscribes. Each delivery comes back with its event's public id.
WITH targets AS (
    SELECT e.id, e.project_ids FROM webhook_endpoints e
    WHERE e.org_id = @org_id::bigint AND e.enabled AND e.deleted_at IS NULL
      AND (cardinality(e.event_types) = 0 OR @event_type::text = ANY (e.event_types))
), items AS (
    SELECT unnest(@public_ids::text[]) AS public_id, unnest(@project_ids::bigint[]) AS project_id,
           unnest(@entity_ids::bigint[]) AS entity_id, unnest(@dedup_keys::text[]) AS dedup_key,
           unnest(@bodies::text[]) AS body
    WHERE EXISTS (SELECT 1 FROM targets)
), ev AS (
    INSERT INTO webhook_events (org_id, public_id, event_type, project_id, entity_type, entity_id, dedup_key, body)
    SELECT @org_id::bigint, i.public_id, @event_type::text, NULLIF(i.project_id, 0), @entity_type::entity_type,
           i.entity_id, NULLIF(i.dedup_key, ''), i.body
    FROM items i
    WHERE EXISTS (SELECT 1 FROM targets t
                  WHERE cardinality(t.project_ids) = 0 OR NULLIF(i.project_id, 0) = ANY (t.project_ids))
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id, public_id, project_id
), d AS (
    INSERT INTO webhook_deliveries (org_id, endpoint_id, event_id)
    SELECT @org_id::bigint, t.id, ev.id
    FROM ev JOIN targets t ON cardinality(t.project_ids) = 0 OR ev.project_id = ANY (t.project_ids)
    RETURNING id, event_id
)
SELECT d.id AS delivery_id, ev.public_id
FROM d JOIN ev ON ev.id = d.event_id
ORDER BY d.id;

-- name: WebhookSubscribed :one
-- Whether any enabled endpoint of the organization subscribes to the event type (of
-- any project): EmitMany asks before it builds a large batch's bodies.
SELECT EXISTS (
    SELECT 1 FROM webhook_endpoints e
    WHERE e.org_id = @org_id::bigint AND e.enabled AND e.deleted_at IS NULL
      AND (cardinality(e.event_types) = 0 OR @event_type::text = ANY (e.event_types))
)::boolean AS subscribed;
