package database_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/testenv"
)

// TestConstraintsRefuseBadRows inserts one row breaking each rule of the schema and
// expects Postgres to refuse it, naming the constraint.
func TestConstraintsRefuseBadRows(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	org := pg.Org(t)
	other := pg.Org(t)
	user := pg.User(t, org.ID, testenv.Annotator)
	pr := pg.Project(t, org.ID)
	f := pg.File(t, pr, "a.txt")
	v := pg.RegisterVersion(t, f, "k/a", testenv.Declared{})
	_, err := pg.Pool.Exec(ctx, `INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id) VALUES ($1,$2,$3,$4)`,
		org.ID, pr.ID, f.ID, v.ID)
	require.NoError(t, err)
	var jobID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT id FROM annotation_jobs WHERE file_version_id = $1`, v.ID).Scan(&jobID))
	_, err = pg.Pool.Exec(ctx, `INSERT INTO assignments (org_id, project_id, job_id, user_id, role) VALUES ($1,$2,$3,$4,'annotator')`,
		org.ID, pr.ID, jobID, user.ID)
	require.NoError(t, err)

	cases := []struct {
		name       string
		sql        string
		args       []any
		constraint string
	}{
		{"organization name unique", `INSERT INTO organizations (name) VALUES ($1)`, []any{org.Name}, "organizations_name_key"},
		{"organization name blank", `INSERT INTO organizations (name) VALUES ('  ')`, nil, "organizations_name_check"},
		{"user email unique in its organization", `INSERT INTO users (org_id, email, role) VALUES ($1, $2, 'annotator')`, []any{org.ID, user.Email}, "users_org_email_key"},
		{"project PM of another org", `INSERT INTO projects (org_id, name, our_pm_id) VALUES ($1, 'p-pm', $2)`, []any{other.ID, user.ID}, "projects_our_pm_fk"},
		{"project client PM of another org", `INSERT INTO projects (org_id, name, client_pm_id) VALUES ($1, 'p-cpm', $2)`, []any{other.ID, user.ID}, "projects_client_pm_fk"},
		{"user email shape", `INSERT INTO users (org_id, email, role) VALUES ($1, 'not-an-email', 'annotator')`, []any{org.ID}, "users_email_check"},
		{"skill score above 1", `INSERT INTO users (org_id, email, role, skill_score) VALUES ($1, 'x1@e.test', 'annotator', 1.5)`, []any{org.ID}, "users_skill_score_check"},
		{"qa rate below 0", `INSERT INTO users (org_id, email, role, qa_approval_rate) VALUES ($1, 'x2@e.test', 'annotator', -0.1)`, []any{org.ID}, "users_qa_approval_rate_check"},
		{"proficiency above 5", `INSERT INTO users (org_id, email, role, language_expertise) VALUES ($1, 'x3@e.test', 'annotator', '{"en": 5.5}')`, []any{org.ID}, "users_language_expertise_check"},
		{"proficiency not a number", `INSERT INTO users (org_id, email, role, language_expertise) VALUES ($1, 'x4@e.test', 'annotator', '{"en": "high"}')`, []any{org.ID}, "users_language_expertise_check"},
		{"availability bad window", `INSERT INTO users (org_id, email, role, availability) VALUES ($1, 'x5@e.test', 'annotator', '{"monday": ["9-5"]}')`, []any{org.ID}, "users_availability_check"},
		{"availability bad day", `INSERT INTO users (org_id, email, role, availability) VALUES ($1, 'x6@e.test', 'annotator', '{"funday": []}')`, []any{org.ID}, "users_availability_check"},
		{"negative capacity", `INSERT INTO users (org_id, email, role, max_active_jobs) VALUES ($1, 'x7@e.test', 'annotator', -1)`, []any{org.ID}, "users_max_active_jobs_check"},
		{"token hash length", `INSERT INTO api_tokens (org_id, name, token_hash) VALUES ($1, 't', '\x00')`, []any{org.ID}, "api_tokens_token_hash_check"},
		{"project name unique per org", `INSERT INTO projects (org_id, name) VALUES ($1, $2)`, []any{org.ID, pr.Name}, "projects_org_name_key"},
		{"llm enabled without model", `INSERT INTO projects (org_id, name, llm_enabled) VALUES ($1, 'p-llm', true)`, []any{org.ID}, "projects_llm_model_when_enabled"},
		{"min proficiency above 5", `INSERT INTO projects (org_id, name, min_language_proficiency) VALUES ($1, 'p-min', 6)`, []any{org.ID}, "projects_min_language_proficiency_check"},
		{"temperature above 2", `INSERT INTO projects (org_id, name, llm_temperature) VALUES ($1, 'p-t', 3)`, []any{org.ID}, "projects_llm_temperature_check"},
		{"file name unique per project", `INSERT INTO files (org_id, project_id, name) VALUES ($1, $2, 'a.txt')`, []any{org.ID, pr.ID}, "files_project_name_key"},
		{"file in another org's project", `INSERT INTO files (org_id, project_id, name) VALUES ($1, $2, 'b.txt')`, []any{other.ID, pr.ID}, "files_project_fk"},
		{"file name with control char", `INSERT INTO files (org_id, project_id, name) VALUES ($1, $2, E'a\nb')`, []any{org.ID, pr.ID}, "files_name_check"},
		{"version number unique per file", `INSERT INTO file_versions (org_id, project_id, file_id, version_number, storage_path) VALUES ($1,$2,$3,$4,'k')`, []any{org.ID, pr.ID, f.ID, v.VersionNumber}, "file_versions_file_number_key"},
		{"version number zero", `INSERT INTO file_versions (org_id, project_id, file_id, version_number, storage_path) VALUES ($1,$2,$3,0,'k')`, []any{org.ID, pr.ID, f.ID}, "file_versions_version_number_check"},
		{"checksum not hex", `INSERT INTO file_versions (org_id, project_id, file_id, version_number, storage_path, expected_sha256) VALUES ($1,$2,$3,9,'k','xyz')`, []any{org.ID, pr.ID, f.ID}, "file_versions_expected_sha256_check"},
		{"negative size", `INSERT INTO file_versions (org_id, project_id, file_id, version_number, storage_path, size_bytes) VALUES ($1,$2,$3,9,'k',-1)`, []any{org.ID, pr.ID, f.ID}, "file_versions_size_bytes_check"},
		{"valid without checksum", `UPDATE file_versions SET validation_status = 'valid' WHERE id = $1`, []any{v.ID}, "file_versions_valid_measured"},
		{"corrupt without reason", `UPDATE file_versions SET validation_status = 'corrupt', validated_at = now() WHERE id = $1`, []any{v.ID}, "file_versions_failed_has_reason"},
		{"llm version without source", `INSERT INTO file_versions (org_id, project_id, file_id, version_number, storage_path, generation_method) VALUES ($1,$2,$3,9,'k','llm')`, []any{org.ID, pr.ID, f.ID}, "file_versions_llm_has_source"},
		{"second job for a version", `INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id) VALUES ($1,$2,$3,$4)`, []any{org.ID, pr.ID, f.ID, v.ID}, "annotation_jobs_version_key"},
		{"job language shape", `UPDATE annotation_jobs SET language = 'English' WHERE id = $1`, []any{jobID}, "annotation_jobs_language_check"},
		{"second live copy of a job for one person", `INSERT INTO assignments (org_id, project_id, job_id, user_id, role) VALUES ($1,$2,$3,$4,'annotator')`, []any{org.ID, pr.ID, jobID, user.ID}, "assignments_live_job_role_user_key"},
		{"gold answer not a list of regions", `INSERT INTO gold_answers (org_id, project_id, job_id, result) VALUES ($1,$2,$3,'{}')`, []any{org.ID, pr.ID, jobID}, "gold_answers_result_is_list"},
		{"overlap out of range", `UPDATE projects SET overlap = 0 WHERE id = $1`, []any{pr.ID}, "projects_overlap_check"},
		{"gold rate out of range", `UPDATE projects SET gold_rate = 1.5 WHERE id = $1`, []any{pr.ID}, "projects_gold_rate_check"},
		{"assignment negative score", `INSERT INTO assignments (org_id, project_id, job_id, user_id, role, score) VALUES ($1,$2,$3,$4,'reviewer',-1)`, []any{org.ID, pr.ID, jobID, user.ID}, "assignments_score_check"},
		{"revoked without time", `UPDATE assignments SET status = 'revoked' WHERE job_id = $1`, []any{jobID}, "assignments_revoked_has_time"},
		{"export progress beyond total", `INSERT INTO export_logs (org_id, project_id, files_done, files_total) VALUES ($1,$2,5,1)`, []any{org.ID, pr.ID}, "export_logs_progress_bounded"},
		{"export completed without archive", `INSERT INTO export_logs (org_id, project_id, status) VALUES ($1,$2,'completed')`, []any{org.ID, pr.ID}, "export_logs_completed_has_archive"},
		{"export failed without reason", `INSERT INTO export_logs (org_id, project_id, status) VALUES ($1,$2,'failed')`, []any{org.ID, pr.ID}, "export_logs_failed_has_reason"},
		{"event type shape", `INSERT INTO event_log (org_id, entity_type, entity_id, event_type) VALUES ($1,'file',1,'Bad Type')`, []any{org.ID}, "event_log_event_type_check"},
		{"outbox task type shape", `INSERT INTO outbox (task_id, task_type, payload) VALUES ('x','nocolon','{}')`, nil, "outbox_task_type_check"},
		{"outbox payload not an object", `INSERT INTO outbox (task_id, task_type, payload) VALUES ('x','file:validate','[]')`, nil, "outbox_payload_check"},
		{"llm run bad prompt hash", `INSERT INTO llm_runs (org_id, project_id, file_version_id, model, prompt_hash, input_sha256) VALUES ($1,$2,$3,'m','x',$4)`, []any{org.ID, pr.ID, v.ID, testenv.SHA256Hex(nil)}, "llm_runs_prompt_hash_check"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pg.Pool.Exec(ctx, tc.sql, tc.args...)
			require.Error(t, err, "the row should have been refused")
			require.Equal(t, tc.constraint, database.ConstraintViolation(err), fmt.Sprint(err))
		})
	}
}
