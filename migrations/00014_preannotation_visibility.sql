-- +goose Up
-- What happened to a version's pre-annotation, on the version itself: the status
-- and reason of its latest run (pending, running with the reason it is waiting,
-- succeeded, failed, skipped), or skipped with the reason when no run was made
-- (the project's LLM is off, the version cannot be pre-annotated). NULL: never
-- asked. Set in the same statement or transaction as the run (queries/llm_runs.sql).
ALTER TABLE file_versions ADD COLUMN preannotation_status llm_run_status;
ALTER TABLE file_versions ADD COLUMN preannotation_reason text;
ALTER TABLE file_versions ADD CONSTRAINT file_versions_preannotation_has_reason
    CHECK (preannotation_status NOT IN ('failed', 'skipped') OR preannotation_reason IS NOT NULL);
-- The model's reply was one JSON value wrapped in a Markdown code fence or a
-- sentence (open models behind vLLM, Ollama, LiteLLM), stored unwrapped.
ALTER TABLE llm_runs ADD COLUMN output_unwrapped boolean NOT NULL DEFAULT false;

UPDATE file_versions v SET preannotation_status = r.status, preannotation_reason = r.error
FROM (SELECT DISTINCT ON (file_version_id) file_version_id, status, error
      FROM llm_runs ORDER BY file_version_id, id DESC) r
WHERE r.file_version_id = v.id;

-- +goose Down
ALTER TABLE llm_runs DROP COLUMN output_unwrapped;
ALTER TABLE file_versions DROP CONSTRAINT file_versions_preannotation_has_reason;
ALTER TABLE file_versions DROP COLUMN preannotation_reason;
ALTER TABLE file_versions DROP COLUMN preannotation_status;
