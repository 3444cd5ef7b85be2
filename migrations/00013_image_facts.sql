-- +goose Up
-- What file:validate read from an image's header (JPEG, PNG, GIF and WebP): the
-- pixel grid as stored in the file, before its EXIF orientation is applied, and
-- that orientation (1-8; 1 when the file carries none). NULL for other content,
-- for an image whose header lies past the first MiB, and for a version that is not
-- valid. The displayed size, which Label Studio's original_width/original_height
-- are (a browser's naturalWidth/naturalHeight, after the orientation), is the
-- stored one with width and height swapped for orientations 5-8; it is derived
-- where it is shown rather than stored, so the two cannot disagree. One statement,
-- so the table is scanned once for the checks.
ALTER TABLE file_versions
    ADD COLUMN image_width integer CHECK (image_width > 0),
    ADD COLUMN image_height integer CHECK (image_height > 0),
    ADD COLUMN image_orientation integer CHECK (image_orientation BETWEEN 1 AND 8),
    ADD CONSTRAINT file_versions_image_facts_together CHECK (
        (image_width IS NULL) = (image_height IS NULL) AND (image_width IS NULL) = (image_orientation IS NULL));

-- Something a person should know about a completed export: for now, why it packed
-- no file (no approved job, every selected version invalid, nothing selected
-- matched), so an empty archive is explained on the row rather than left silent.
ALTER TABLE export_logs ADD COLUMN note text;

-- +goose Down
ALTER TABLE export_logs DROP COLUMN note;
ALTER TABLE file_versions
    DROP CONSTRAINT file_versions_image_facts_together,
    DROP COLUMN image_orientation,
    DROP COLUMN image_height,
    DROP COLUMN image_width;
