-- +goose Up
-- A model call on a small input costs a few hundred-thousandths of a dollar
-- (100 gpt-4o-mini tokens: $0.000027); six decimals rounded every run's cost by up
-- to 2%. Ten decimals keep a single token's price.
ALTER TABLE llm_runs ALTER COLUMN cost_usd TYPE numeric(18, 10);

-- +goose Down
ALTER TABLE llm_runs ALTER COLUMN cost_usd TYPE numeric(14, 6);
