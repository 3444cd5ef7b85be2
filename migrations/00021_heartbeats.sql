-- Heartbeats on the rows that say how far a long task has got (issue 17): an
-- export or a sync run whose worker was killed kept saying "running" until
-- asynq's lease ran out and the task was delivered again (about 70 s for an
-- export). While its run lives, the worker writes heartbeat_at every
-- LABELQ_HEARTBEAT_INTERVAL (internal/heartbeat), from the database's clock so
-- that a worker's skewed clock cannot make a row look alive or dead; the API
-- answers status "stalled" for a running row whose heartbeat is older than
-- heartbeat.StallBeats intervals. The column is NULL until a run starts; a row
-- running without one (started by a worker from before this migration) is
-- judged by its updated_at, which that worker's progress writes kept fresh.
-- No backfill: an UPDATE here would also move updated_at, which the reconciler
-- reads.
--
-- Considered and left out: llm_runs (one model call, bounded by LABELQ_LLM_TIMEOUT,
-- no progress) and the consensus and score tasks (no row of their own).

-- +goose Up
ALTER TABLE export_logs ADD COLUMN heartbeat_at timestamptz;
ALTER TABLE sync_runs ADD COLUMN heartbeat_at timestamptz;

-- +goose Down
ALTER TABLE sync_runs DROP COLUMN heartbeat_at;
ALTER TABLE export_logs DROP COLUMN heartbeat_at;
