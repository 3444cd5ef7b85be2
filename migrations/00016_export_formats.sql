-- +goose Up
-- The layout of an export's archive (issue 19): labelq's own (files, annotations
-- and model outputs as stored, the default and what every export so far was) or a
-- format converted from the Label Studio results while streaming. A schedule's
-- format is copied onto each export it makes. What each format packs besides is in
-- options (include_files: the images, ...), as before.
ALTER TABLE export_logs ADD COLUMN format text NOT NULL DEFAULT 'labelq'
    CONSTRAINT export_logs_format_check
    CHECK (format IN ('labelq', 'label_studio', 'json_min', 'csv', 'coco', 'yolo', 'voc', 'conll2003'));
ALTER TABLE export_schedules ADD COLUMN format text NOT NULL DEFAULT 'labelq'
    CONSTRAINT export_schedules_format_check
    CHECK (format IN ('labelq', 'label_studio', 'json_min', 'csv', 'coco', 'yolo', 'voc', 'conll2003'));

-- A converted export pages through a project's jobs in id order (keyset
-- pagination, a page at a time): without this, each page would read and sort
-- every approved job of the project again.
CREATE INDEX annotation_jobs_project_id_idx ON annotation_jobs (project_id, id) WHERE deleted_at IS NULL;
-- And reads each page's predictions: the model outputs made from the page's
-- versions.
CREATE INDEX file_versions_source_idx ON file_versions (source_file_version_id) WHERE source_file_version_id IS NOT NULL;

-- +goose Down
DROP INDEX file_versions_source_idx;
DROP INDEX annotation_jobs_project_id_idx;
ALTER TABLE export_schedules DROP COLUMN format;
ALTER TABLE export_logs DROP COLUMN format;
