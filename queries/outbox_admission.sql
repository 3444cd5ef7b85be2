-- Fair admission (migration 00022): the relay moves an organization's pending rows
-- into asynq while it holds fewer slots of their type than its limit. A slot is a
-- row with admitted_at set and finished_at not.

-- name: OutboxAdmissionGroups :many
-- Every (organization, type, grouped) with pending rows, found with a loose index
-- scan (one index probe per group, however long the backlog), with its limit
-- (the type's, times the organization's weight; 0 when the group is not held
-- back: grouped rows, rows of no organization, types with no limit) and, for a
-- held-back group, whether this transaction took its lock. The lock is a
-- transaction-scoped advisory lock per (organization, type): a relay that does not
-- get it leaves the group to the relay that has it (as SKIP LOCKED does with rows),
-- and the relay that has it counts the slots in its next statement, whose snapshot
-- sees every admission committed before the lock was granted. So many relays never
-- admit past a limit.
WITH RECURSIVE g AS (
    (SELECT coalesce(o.org_id, 0)::bigint AS org_key, o.task_type, o.grouped
     FROM outbox o
     WHERE o.enqueued_at IS NULL
     ORDER BY coalesce(o.org_id, 0), o.task_type, o.grouped
     LIMIT 1)
    UNION ALL
    SELECT n.org_key, n.task_type, n.grouped
    FROM g, LATERAL (
        SELECT coalesce(o.org_id, 0)::bigint AS org_key, o.task_type, o.grouped
        FROM outbox o
        WHERE o.enqueued_at IS NULL
          AND (coalesce(o.org_id, 0), o.task_type, o.grouped) > (g.org_key, g.task_type, g.grouped)
        ORDER BY coalesce(o.org_id, 0), o.task_type, o.grouped
        LIMIT 1
    ) n
), classed AS (
    SELECT g.org_key, g.task_type, g.grouped,
        CASE WHEN g.grouped OR g.org_key = 0 THEN 0 ELSE coalesce((
            -- A limit named by the full type wins over one named by its short name.
            SELECT l.lim FROM (SELECT unnest(@kinds::text[]) AS kind, unnest(@limits::int[]) AS lim) l
            WHERE l.kind = g.task_type OR l.kind = split_part(g.task_type, ':', 2)
            ORDER BY l.kind = g.task_type DESC
            LIMIT 1), @default_limit::int)
        END AS base_limit,
        coalesce((SELECT w.admission_weight FROM organizations w WHERE w.id = g.org_key), 1) AS weight
    FROM g
)
SELECT org_key, task_type, grouped, (base_limit * weight)::int AS lim, weight::int AS weight,
    CASE WHEN base_limit > 0 THEN pg_try_advisory_xact_lock(hashtextextended('labelq:admit:' || task_type || ':' || org_key, 0))
         ELSE false END::boolean AS locked
FROM classed;

-- name: OutboxAdmitBatch :many
-- Claims, for a lease, up to @max_rows pending rows of the groups given (arrays
-- zipped, one element per group): a group with a limit (lim >= 0; its lock is
-- this transaction's) gets its rows already admitted whose claim lapsed (a relay
-- died holding them: they keep their slot) and as many new ones as it has free
-- slots; a group with no limit (lim < 0) any number. Rows are oldest first within
-- a group, interactive before bulk, and the groups share the batch round-robin,
-- each taking weight rows per round. A new row's admitted_at is set here, so the
-- slot is counted from the claim's commit.
WITH grp AS (
    SELECT unnest(@org_keys::bigint[]) AS org_key, unnest(@task_types::text[]) AS task_type,
        unnest(@groupeds::boolean[]) AS grouped, unnest(@lims::int[]) AS lim, unnest(@weights::int[]) AS weight
), room AS (
    SELECT grp.org_key, grp.task_type, grp.grouped, grp.lim, grp.weight,
        CASE WHEN grp.lim < 0 THEN @max_rows::int ELSE greatest(grp.lim - (
            SELECT count(*) FROM outbox h
            WHERE coalesce(h.org_id, 0) = grp.org_key AND h.task_type = grp.task_type
              AND h.admitted_at IS NOT NULL AND h.finished_at IS NULL), 0)::int
        END AS free
    FROM grp
), cand AS (
    -- Admitted rows whose claim lapsed, holding their slot already.
    SELECT c.id, room.org_key, room.task_type, room.grouped, room.weight, true AS controlled, 0 AS readmit_rank,
        c.priority, c.available_at
    FROM room, LATERAL (
        SELECT o.id, o.priority, o.available_at FROM outbox o
        WHERE coalesce(o.org_id, 0) = room.org_key AND o.task_type = room.task_type
          AND o.admitted_at IS NOT NULL AND o.finished_at IS NULL AND o.enqueued_at IS NULL
          AND o.available_at <= now() AND (o.claimed_until IS NULL OR o.claimed_until < clock_timestamp())
        ORDER BY o.priority, o.available_at, o.id
        LIMIT @max_rows::int
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE room.lim >= 0
    UNION ALL
    SELECT c.id, room.org_key, room.task_type, room.grouped, room.weight, room.lim >= 0, 1,
        c.priority, c.available_at
    FROM room, LATERAL (
        SELECT o.id, o.priority, o.available_at FROM outbox o
        WHERE coalesce(o.org_id, 0) = room.org_key AND o.task_type = room.task_type AND o.grouped = room.grouped
          AND o.enqueued_at IS NULL AND (o.admitted_at IS NULL OR o.finished_at IS NOT NULL)
          AND o.available_at <= now() AND (o.claimed_until IS NULL OR o.claimed_until < clock_timestamp())
        ORDER BY o.priority, o.available_at, o.id
        LIMIT room.free
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE room.free > 0
), ranked AS (
    SELECT cand.id, cand.controlled, cand.weight, random() AS tie,
        row_number() OVER (PARTITION BY cand.org_key, cand.task_type, cand.grouped
                           ORDER BY cand.readmit_rank, cand.priority, cand.available_at, cand.id) AS rn
    FROM cand
), pick AS (
    -- Round r of the round-robin holds each group's rows r*weight to (r+1)*weight-1;
    -- within a round the groups come in random order.
    SELECT ranked.id, ranked.controlled,
        row_number() OVER (ORDER BY (ranked.rn - 1) / ranked.weight, ranked.tie) AS ord
    FROM ranked
    ORDER BY ord
    LIMIT @max_rows::int
)
UPDATE outbox SET claimed_by = @claimed_by::text,
    claimed_until = clock_timestamp() + make_interval(secs => @lease_seconds::double precision),
    admitted_at = CASE WHEN pick.controlled THEN coalesce(outbox.admitted_at, clock_timestamp()) ELSE outbox.admitted_at END
FROM pick
WHERE outbox.id = pick.id
RETURNING sqlc.embed(outbox), pick.ord;

-- name: OutboxFinish :one
-- Tasks that succeeded or were archived give their slots back, and wake the relays
-- (the channel the outbox trigger signals, once). A row holding no slot (not
-- admitted, or finished already) is left as it is. The Finisher gathers the
-- tasks that end within a few milliseconds into one call. Whether anything waits
-- for the slots is the relays' to know (their last round saw it): looking here,
-- for every call, walked the pending index's dead entries for the rows relayed
-- since the last vacuum (3.3 ms and 686 pages a call at 50,000 versions).
WITH f AS (
    UPDATE outbox SET finished_at = clock_timestamp()
    WHERE outbox.task_id = ANY(@task_ids::text[]) AND outbox.admitted_at IS NOT NULL AND outbox.finished_at IS NULL
    RETURNING outbox.id
), woken AS (
    SELECT pg_notify('labelq_outbox', 'finished') WHERE EXISTS (SELECT 1 FROM f)
)
SELECT (SELECT count(*) FROM f)::bigint AS finished, (SELECT count(*) FROM woken)::bigint AS woken;

-- name: OutboxListHeld :many
-- Rows holding a slot whose task reached Redis before @enqueued_before, by id after
-- @after_id: the reconciler asks asynq about each.
SELECT id, task_id, queue, task_type, org_id FROM outbox
WHERE admitted_at IS NOT NULL AND finished_at IS NULL AND enqueued_at IS NOT NULL
  AND enqueued_at < @enqueued_before::timestamptz AND id > @after_id::bigint
ORDER BY id
LIMIT @max_rows::int;

-- name: OutboxReadmit :many
-- Held rows whose task vanished from Redis (FLUSHALL, a restart without
-- persistence) go back to pending, slot freed, in their old place in line: the
-- relay admits them again under the same task id. Answers each row's task type
-- (labelq_reconcile_requeued_total counts them by kind).
UPDATE outbox SET enqueued_at = NULL, admitted_at = NULL, finished_at = NULL, claimed_by = NULL, claimed_until = NULL,
    last_error = @reason::text
WHERE id = ANY(@ids::bigint[]) AND admitted_at IS NOT NULL AND finished_at IS NULL AND enqueued_at IS NOT NULL
RETURNING task_type;

-- name: OutboxFinishRows :execrows
-- Held rows whose task is over in Redis (completed, archived) though no worker
-- told: the finish was lost (the database was down at that moment, a worker was
-- killed as asynq archived the task).
UPDATE outbox SET finished_at = clock_timestamp()
WHERE id = ANY(@ids::bigint[]) AND admitted_at IS NOT NULL AND finished_at IS NULL;

-- name: OutboxWakeRelays :exec
SELECT pg_notify('labelq_outbox', 'freed');

-- name: OutboxBacklog :many
-- An organization's work by task type, for GET /v1/admission: waiting (pending,
-- available now, holding no slot: it waits for admission, or for the relay when
-- the type is not held back), scheduled (available later), admitted (holding a
-- slot: in Redis, or claimed by a relay on its way there, and not finished);
-- with the organization's weight and its limit: the type's (named as in
-- OutboxAdmissionGroups, the full type before the short name) times the weight,
-- 0 when the type is not held back. Under the API's row-level security it sees
-- the caller's own rows only, whatever @org_id says.
WITH t AS (
    SELECT o.task_type,
        count(*) FILTER (WHERE o.enqueued_at IS NULL AND o.available_at <= now() AND (o.admitted_at IS NULL OR o.finished_at IS NOT NULL)) AS waiting,
        count(*) FILTER (WHERE o.enqueued_at IS NULL AND o.available_at > now() AND (o.admitted_at IS NULL OR o.finished_at IS NOT NULL)) AS scheduled,
        count(*) FILTER (WHERE o.admitted_at IS NOT NULL AND o.finished_at IS NULL) AS admitted,
        min(o.available_at) FILTER (WHERE o.enqueued_at IS NULL AND o.available_at <= now() AND (o.admitted_at IS NULL OR o.finished_at IS NOT NULL)) AS oldest
    FROM outbox o
    WHERE coalesce(o.org_id, 0) = @org_id::bigint
      AND (o.enqueued_at IS NULL OR (o.admitted_at IS NOT NULL AND o.finished_at IS NULL))
    GROUP BY o.task_type
), w AS (
    SELECT coalesce((SELECT org.admission_weight FROM organizations org WHERE org.id = @org_id::bigint), 1) AS weight
)
SELECT t.task_type, t.waiting, t.scheduled, t.admitted,
    coalesce(extract(epoch FROM now() - t.oldest), 0)::float8 AS oldest_wait_seconds,
    w.weight::int AS weight,
    (coalesce((
        SELECT l.lim FROM (SELECT unnest(@kinds::text[]) AS kind, unnest(@limits::int[]) AS lim) l
        WHERE l.kind = t.task_type OR l.kind = split_part(t.task_type, ':', 2)
        ORDER BY l.kind = t.task_type DESC
        LIMIT 1), @default_limit::int) * w.weight)::int AS "limit"
FROM t, w
ORDER BY t.task_type;

-- name: OutboxAdmissionCounts :many
-- Waiting (available now, holding no slot) and admitted rows by organization and
-- type, for /metrics: the @top organizations with the most rows waiting (then
-- the most admitted) by their id, every other organization and the rows of none
-- summed under 'other', so the series stay bounded however many organizations
-- there are.
WITH c AS (
    SELECT coalesce(o.org_id, 0)::bigint AS org_key, o.task_type,
        count(*) FILTER (WHERE o.enqueued_at IS NULL AND o.available_at <= now() AND (o.admitted_at IS NULL OR o.finished_at IS NOT NULL)) AS waiting,
        count(*) FILTER (WHERE o.admitted_at IS NOT NULL AND o.finished_at IS NULL) AS admitted
    FROM outbox o
    WHERE o.enqueued_at IS NULL OR (o.admitted_at IS NOT NULL AND o.finished_at IS NULL)
    GROUP BY 1, 2
), top AS (
    SELECT c.org_key FROM c
    WHERE c.org_key <> 0
    GROUP BY c.org_key
    ORDER BY sum(c.waiting) DESC, sum(c.admitted) DESC, c.org_key
    LIMIT @top::int
)
SELECT (CASE WHEN c.org_key IN (SELECT top.org_key FROM top) THEN c.org_key::text ELSE 'other' END)::text AS org,
    c.task_type, sum(c.waiting)::bigint AS waiting, sum(c.admitted)::bigint AS admitted
FROM c
GROUP BY 1, 2
ORDER BY 1, 2;
