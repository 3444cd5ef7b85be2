-- Consensus and agreement (worker/consensus, migrations/00018).

-- name: ConsensusCopies :many
-- The submitted copies of every job of the project that has two or more: each
-- annotator's latest completed copy with its result version.
SELECT DISTINCT ON (a.job_id, a.user_id)
       a.job_id, a.user_id, a.id AS assignment_id, v.id AS version_id, v.storage_id, v.storage_path,
       v.checksum, v.size_bytes, j.file_version_id, f.id AS file_id, f.name AS file_name
FROM assignments a
JOIN annotation_jobs j ON j.id = a.job_id AND j.deleted_at IS NULL
JOIN files f ON f.id = j.file_id
JOIN file_versions v ON v.id = a.result_version_id
WHERE a.project_id = @project_id AND a.role = 'annotator' AND a.status = 'completed'
  AND a.result_version_id IS NOT NULL
  AND (SELECT count(DISTINCT b.user_id) FROM assignments b
       WHERE b.job_id = a.job_id AND b.role = 'annotator' AND b.status = 'completed'
         AND b.result_version_id IS NOT NULL) >= 2
ORDER BY a.job_id, a.user_id, a.submitted_at DESC NULLS LAST, a.id DESC;

-- name: FileCreateConsensus :exec
-- The annotation_results file that holds a job's consensus results; a no-op when
-- a file of that name exists (FileGetByNameForUpdate then reads it).
INSERT INTO files (org_id, project_id, name, description, file_type)
VALUES (@org_id, @project_id, @name, @description, 'annotation_results')
ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING;

-- name: FileVersionCreateConsensus :one
-- A consensus result as the next version of its file; the caller holds the
-- file's row lock. Valid at birth: labelq wrote, measured and checked it against
-- the label config itself.
INSERT INTO file_versions (
    org_id, project_id, file_id, version_number, storage_path,
    checksum, size_bytes, mime_type, validation_status, validated_at,
    generation_method, source_file_version_id
) VALUES (
    @org_id, @project_id, @file_id,
    (SELECT COALESCE(MAX(v.version_number), 0) + 1 FROM file_versions v WHERE v.file_id = @file_id),
    @storage_path, @checksum, @size_bytes, 'application/json', 'valid', now(),
    'consensus', @source_file_version_id
)
RETURNING *;

-- name: ConsensusResultChecksum :one
-- The checksum of a job's current consensus version, to leave an unchanged one be.
SELECT v.checksum FROM consensus_results c JOIN file_versions v ON v.id = c.version_id WHERE c.job_id = @job_id;

-- name: ConsensusResultUpsert :exec
INSERT INTO consensus_results (job_id, org_id, project_id, version_id, copies, agreement, detail, run_id)
VALUES (@job_id, @org_id, @project_id, @version_id, @copies, @agreement, @detail, @run_id)
ON CONFLICT (job_id) DO UPDATE SET
    version_id = EXCLUDED.version_id, copies = EXCLUDED.copies, agreement = EXCLUDED.agreement,
    detail = EXCLUDED.detail, run_id = EXCLUDED.run_id, computed_at = now();

-- name: ConsensusResultSetRun :exec
-- A job whose consensus did not change: the run saw it.
UPDATE consensus_results SET copies = @copies, agreement = @agreement, detail = @detail, run_id = @run_id, computed_at = now()
WHERE job_id = @job_id;

-- name: ProjectAgreementUpsert :exec
INSERT INTO project_agreement (project_id, org_id, run_id, jobs, report)
VALUES (@project_id, @org_id, @run_id, @jobs, @report)
ON CONFLICT (project_id) DO UPDATE SET run_id = EXCLUDED.run_id, jobs = EXCLUDED.jobs, report = EXCLUDED.report, computed_at = now();

-- name: ProjectAgreementGet :one
SELECT * FROM project_agreement WHERE project_id = @project_id AND org_id = @org_id;

-- name: ConsensusResultList :many
SELECT * FROM consensus_results
WHERE project_id = @project_id AND org_id = @org_id AND job_id > @after_id
ORDER BY job_id
LIMIT @max_rows;
