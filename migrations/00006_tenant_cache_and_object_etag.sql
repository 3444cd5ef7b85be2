-- +goose Up
-- The LLM cache is one organization's: a run's output is only ever reused by the
-- same organization's runs, so one tenant cannot choose what another tenant's
-- pre-annotations say, nor learn that another tenant processed a file.
DROP INDEX llm_runs_paid_cache_key;
CREATE UNIQUE INDEX llm_runs_paid_cache_key ON llm_runs (org_id, cache_key) WHERE status = 'succeeded' AND cached_from_id IS NULL;
ALTER TABLE llm_runs ADD CONSTRAINT llm_runs_id_org_key UNIQUE (id, org_id);
-- NOT VALID: rows written before this migration are left as they are (their
-- outputs are already stored); every new or changed row is checked.
ALTER TABLE llm_runs ADD CONSTRAINT llm_runs_cached_from_same_org_fk
    FOREIGN KEY (cached_from_id, org_id) REFERENCES llm_runs (id, org_id) NOT VALID;

-- The object file:validate measured, as S3 reported it (ETag, and the version id
-- when the bucket is versioned). Pre-annotation and export read the object only if
-- it still has this ETag: bytes overwritten through a presigned URL after
-- validation are never sent to the model or packed.
ALTER TABLE file_versions ADD COLUMN object_etag text;
ALTER TABLE file_versions ADD COLUMN object_version_id text;

-- +goose Down
ALTER TABLE file_versions DROP COLUMN object_version_id;
ALTER TABLE file_versions DROP COLUMN object_etag;
ALTER TABLE llm_runs DROP CONSTRAINT llm_runs_cached_from_same_org_fk;
ALTER TABLE llm_runs DROP CONSTRAINT llm_runs_id_org_key;
DROP INDEX llm_runs_paid_cache_key;
CREATE UNIQUE INDEX llm_runs_paid_cache_key ON llm_runs (cache_key) WHERE status = 'succeeded' AND cached_from_id IS NULL;
