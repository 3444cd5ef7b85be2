-- name: MetricsState :one
-- What /metrics reads from PostgreSQL at each scrape (internal/metrics, state.go):
-- one round trip, every part bounded by a partial index (pending versions,
-- unfinished exports, live sync runs, scheduled storages, pending deliveries) or
-- by a small table (webhook endpoints): a scrape's cost follows what is waiting,
-- not how large the tables have grown. Ages are in seconds, 0 when nothing waits.
SELECT
    (SELECT count(*) FROM file_versions WHERE validation_status = 'pending')::bigint AS versions_pending,
    COALESCE((SELECT EXTRACT(EPOCH FROM now() - min(created_at)) FROM file_versions
              WHERE validation_status = 'pending'), 0)::float8 AS versions_pending_oldest_seconds,
    (SELECT count(*) FROM export_logs WHERE status = 'pending')::bigint AS exports_pending,
    (SELECT count(*) FROM export_logs WHERE status = 'running')::bigint AS exports_running,
    -- Since the least recently written unfinished export last changed (progress,
    -- heartbeat or start): a running export's worker writes it every few seconds.
    COALESCE((SELECT EXTRACT(EPOCH FROM now() - min(updated_at)) FROM export_logs
              WHERE status IN ('pending', 'running')), 0)::float8 AS export_idle_seconds,
    COALESCE((SELECT sum(files_done) FROM export_logs WHERE status = 'running'), 0)::bigint AS export_files_done,
    COALESCE((SELECT sum(files_total) FROM export_logs WHERE status = 'running'), 0)::bigint AS export_files_planned,
    COALESCE((SELECT sum(bytes_done) FROM export_logs WHERE status = 'running'), 0)::bigint AS export_bytes_done,
    COALESCE((SELECT sum(bytes_total) FROM export_logs WHERE status = 'running'), 0)::bigint AS export_bytes_planned,
    (SELECT count(*) FROM sync_runs WHERE status = 'pending')::bigint AS sync_runs_pending,
    (SELECT count(*) FROM sync_runs WHERE status = 'running')::bigint AS sync_runs_running,
    COALESCE((SELECT EXTRACT(EPOCH FROM now() - min(requested_at)) FROM sync_runs
              WHERE status IN ('pending', 'running')), 0)::float8 AS sync_lag_seconds,
    -- The scheduled storage longest without a completed run (since its creation
    -- when it has none): its newest completed run is the first one met walking
    -- sync_runs_storage_idx backwards.
    COALESCE((SELECT max(EXTRACT(EPOCH FROM now() - COALESCE(
                  (SELECT r.completed_at FROM sync_runs r
                   WHERE r.storage_id = s.id AND r.status = 'completed'
                   ORDER BY r.id DESC LIMIT 1), s.created_at)))
              FROM storages s
              WHERE s.sync_cron IS NOT NULL AND s.enabled AND s.deleted_at IS NULL), 0)::float8 AS sync_last_success_age_seconds,
    (SELECT count(*) FROM webhook_endpoints
     WHERE deleted_at IS NULL AND enabled AND failing_since IS NULL)::bigint AS webhook_endpoints_healthy,
    (SELECT count(*) FROM webhook_endpoints
     WHERE deleted_at IS NULL AND enabled AND failing_since IS NOT NULL)::bigint AS webhook_endpoints_failing,
    (SELECT count(*) FROM webhook_endpoints WHERE deleted_at IS NULL AND NOT enabled)::bigint AS webhook_endpoints_disabled,
    (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')::bigint AS webhook_deliveries_pending;
