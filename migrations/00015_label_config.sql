-- +goose Up
-- A project's label config (issue 19): what a task shows (objects: an image or a
-- text, read from a task data field such as "$image") and the controls that
-- annotate it, with their labels: the JSON of internal/labelconfig.Config, set by
-- PUT /v1/projects/{id}/label-config (as JSON, or imported from Label Studio XML).
-- NULL: no config; annotation results are then not checked against one.
ALTER TABLE projects ADD COLUMN label_config jsonb
    CONSTRAINT projects_label_config_shape CHECK (label_config IS NULL OR (
        jsonb_typeof(label_config) = 'object'
        AND jsonb_typeof(label_config -> 'objects') = 'array'
        AND jsonb_typeof(label_config -> 'controls') = 'array'));

-- file:validate checks an annotation_results version against the text of the job
-- it is the result of, when it has no source version: found by this index.
CREATE INDEX annotation_jobs_result_version_idx ON annotation_jobs (result_version_id)
    WHERE result_version_id IS NOT NULL AND deleted_at IS NULL;

-- A link made without a listing: an import (POST /v1/projects/{id}/imports) names
-- keys of a storage without listing them, so their ETag and size are unknown ('' and
-- 0). The first sync or notification that sees the key adopts the ETag and size it
-- lists (no new version), and the link is an ordinary one from then on.
ALTER TABLE storage_links ADD COLUMN unlisted boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT storage_links_unlisted_unknown CHECK (NOT unlisted OR (etag = '' AND size_bytes = 0));

-- +goose Down
ALTER TABLE storage_links DROP CONSTRAINT storage_links_unlisted_unknown, DROP COLUMN unlisted;
DROP INDEX annotation_jobs_result_version_idx;
ALTER TABLE projects DROP COLUMN label_config;
