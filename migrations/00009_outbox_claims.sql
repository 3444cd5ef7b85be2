-- +goose Up
-- The relay claims a batch in a short transaction (claimed_by, and a lease in
-- claimed_until), commits, enqueues to Redis outside any transaction, then marks
-- the rows relayed in a second short one: no row lock is held across a network
-- call. A relay that dies between leaves a claim that expires; the next relay
-- takes the row again and asynq's task id makes the second enqueue a no-op.
ALTER TABLE outbox ADD COLUMN claimed_by text, ADD COLUMN claimed_until timestamptz;

-- +goose Down
ALTER TABLE outbox DROP COLUMN claimed_until, DROP COLUMN claimed_by;
