-- +goose Up
-- Webhooks: signed (Standard Webhooks), retried, logged delivery of what happened.
--
--   webhook_endpoints   where an organization wants to be told: URL, the event types
--                       it subscribes to (empty: all) and the projects (empty: all),
--                       the signing secret sealed with LABELQ_SECRET_KEY (labelq
--                       must sign with it, so it is encrypted, not hashed), and the
--                       previous secret while a rotation's overlap lasts.
--   webhook_events      one row per event that had at least one subscribed endpoint
--                       when it happened: written in the transaction of the state
--                       change, with the exact body every delivery posts (the bytes
--                       that are signed). dedup_key makes a redelivered task's second
--                       write of the same event a no-op.
--   webhook_deliveries  one (event, endpoint): pending until an attempt succeeds or
--                       the retry schedule is spent. Its webhook:deliver task is
--                       written to the outbox in the same statement's transaction.
--   webhook_attempts    every HTTP attempt: status code, latency, the first 1 KiB of
--                       the response, the error.

ALTER TYPE entity_type ADD VALUE IF NOT EXISTS 'webhook';
CREATE TYPE webhook_delivery_status AS ENUM ('pending', 'succeeded', 'failed');

CREATE TABLE webhook_endpoints (
    id                         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id                     bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url                        text NOT NULL CHECK (length(url) BETWEEN 10 AND 2048 AND url !~ '[[:space:][:cntrl:]]'),
    description                text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- Empty: every event type, present and future.
    event_types                text[] NOT NULL DEFAULT '{}',
    -- Empty: every project of the organization (and the events of none).
    project_ids                bigint[] NOT NULL DEFAULT '{}',
    -- AES-GCM (nonce || ciphertext) of the "whsec_..." secret, under secret_key_id.
    secret                     bytea NOT NULL,
    secret_key_id              text NOT NULL CHECK (length(secret_key_id) BETWEEN 1 AND 64),
    -- After a rotation the old secret signs too, until previous_secret_expires_at.
    previous_secret            bytea,
    previous_secret_key_id     text CHECK (length(previous_secret_key_id) BETWEEN 1 AND 64),
    previous_secret_expires_at timestamptz,
    enabled                    boolean NOT NULL DEFAULT true,
    -- Why labelq disabled it (410 Gone, failing for days); NULL when a person did.
    disabled_reason            text,
    disabled_at                timestamptz,
    -- The first failed attempt since the last success; NULL while healthy.
    failing_since              timestamptz,
    last_success_at            timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    deleted_at                 timestamptz,
    CONSTRAINT webhook_endpoints_id_org_key UNIQUE (id, org_id),
    CONSTRAINT webhook_endpoints_previous_whole CHECK (
        (previous_secret IS NULL) = (previous_secret_key_id IS NULL) AND
        (previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id) WHERE enabled AND deleted_at IS NULL;

CREATE TABLE webhook_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- The webhook-id header and the body's "id": stable across every retry and
    -- redelivery, the receiver's idempotency key.
    public_id   text NOT NULL UNIQUE CHECK (length(public_id) BETWEEN 8 AND 64),
    event_type  text NOT NULL CHECK (length(event_type) BETWEEN 3 AND 64),
    project_id  bigint,
    entity_type entity_type NOT NULL,
    entity_id   bigint NOT NULL,
    dedup_key   text UNIQUE CHECK (length(dedup_key) <= 300),
    -- The JSON posted, byte for byte (text, not jsonb: jsonb would reorder keys and
    -- the signature is over these bytes).
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_events_id_org_key UNIQUE (id, org_id)
);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id           bigint NOT NULL,
    endpoint_id      bigint NOT NULL,
    event_id         bigint NOT NULL,
    status           webhook_delivery_status NOT NULL DEFAULT 'pending',
    -- Attempts made so far (all rounds).
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- A redelivery starts the retry schedule again: the schedule's step is
    -- attempts - round_start.
    round            integer NOT NULL DEFAULT 0 CHECK (round >= 0),
    round_start      integer NOT NULL DEFAULT 0 CHECK (round_start >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    finished_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_id_org_key UNIQUE (id, org_id),
    CONSTRAINT webhook_deliveries_endpoint_fk FOREIGN KEY (endpoint_id, org_id) REFERENCES webhook_endpoints (id, org_id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_event_fk FOREIGN KEY (event_id, org_id) REFERENCES webhook_events (id, org_id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_once UNIQUE (event_id, endpoint_id),
    CONSTRAINT webhook_deliveries_finished CHECK ((status = 'pending') = (finished_at IS NULL))
);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        bigint NOT NULL,
    delivery_id   bigint NOT NULL,
    attempt       integer NOT NULL CHECK (attempt >= 1),
    started_at    timestamptz NOT NULL,
    latency_ms    integer NOT NULL CHECK (latency_ms >= 0),
    status_code   integer,
    -- The first 1 KiB of the response body (valid UTF-8, cut on a rune boundary).
    response_body text NOT NULL DEFAULT '' CHECK (octet_length(response_body) <= 1024),
    error         text CHECK (length(error) <= 2000),
    -- succeeded, retry (another attempt is scheduled), failed (no more), gone (410:
    -- the endpoint was disabled).
    outcome       text NOT NULL CHECK (outcome IN ('succeeded', 'retry', 'failed', 'gone')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_attempts_delivery_fk FOREIGN KEY (delivery_id, org_id) REFERENCES webhook_deliveries (id, org_id) ON DELETE CASCADE,
    CONSTRAINT webhook_attempts_once UNIQUE (delivery_id, attempt)
);
CREATE INDEX webhook_attempts_created_idx ON webhook_attempts (created_at);

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_deliveries']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION labelq_set_updated_at()',
                       t || '_updated_at', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_events', 'webhook_deliveries', 'webhook_attempts']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (org_id = labelq_current_org()) '
                       'WITH CHECK (org_id = labelq_current_org())', t);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
DROP TYPE webhook_delivery_status;
