package match_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/match"
)

// Issue 15, item 7: a job's language, priority and due date arrive with its
// registration, and a PATCH that changes them takes the job from whoever now
// breaks a hard rule. These tests drive the API a platform uses (register, patch)
// against the same database the matcher runs on.

// apiFixture is fixture plus labelq's API over the same database, and a token of
// the fixture's organization.
type apiFixture struct {
	*fixture
	base, token string
}

func newAPIFixture(t *testing.T, opts ...testenv.ProjectOpt) *apiFixture {
	t.Helper()
	ctx := context.Background()
	env := testenv.New(t)
	a, err := app.New(ctx, env.Config(t, nil), testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	tok, err := admin.CreateToken(ctx, env.PG.Pool, "org-attributes", "test")
	require.NoError(t, err)
	org := db.Organization{ID: tok.OrgID}
	return &apiFixture{
		fixture: &fixture{
			t: t, pg: env.PG, org: org, pr: env.PG.Project(t, org.ID, opts...),
			handler: match.NewHandler(match.Deps{Pool: env.PG.Pool, Log: testLogger(t)}),
		},
		base: srv.URL, token: tok.Secret,
	}
}

// do calls the API and returns the status and body.
func (f *apiFixture) do(method, path string, body any) (int, []byte) {
	f.t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(f.t, err)
	req, err := http.NewRequest(method, f.base+path, bytes.NewReader(raw))
	require.NoError(f.t, err)
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp.StatusCode, b
}

// register registers a version of a new file through POST
// /v1/files/{id}/versions with the given job attributes, then validates it as
// file:validate's commit does (valid, active, its job created by
// FileActivateVersion), and returns the job.
func (f *apiFixture) register(attrs map[string]any) db.AnnotationJob {
	f.t.Helper()
	ctx := context.Background()
	file := f.pg.File(f.t, f.pr, "")
	body := map[string]any{"storage_path": fmt.Sprintf("orgs/%d/projects/%d/files/%d/v1", f.org.ID, f.pr.ID, file.ID)}
	for k, v := range attrs {
		body[k] = v
	}
	status, resp := f.do("POST", fmt.Sprintf("/v1/files/%d/versions", file.ID), body)
	require.Equal(f.t, http.StatusAccepted, status, string(resp))
	var reg struct {
		ID int64 `json:"id"`
	}
	require.NoError(f.t, json.Unmarshal(resp, &reg))

	content := []byte(body["storage_path"].(string))
	sum, size, mime, now := testenv.SHA256Hex(content), int64(len(content)), "text/plain", time.Now()
	require.NoError(f.t, f.pg.Q.FileVersionMarkValid(ctx, db.FileVersionMarkValidParams{
		ID: reg.ID, Checksum: &sum, SizeBytes: &size, MimeType: &mime, ValidatedAt: &now,
	}))
	v, err := f.pg.Q.FileVersionGetByID(ctx, reg.ID)
	require.NoError(f.t, err)
	act, err := f.pg.Q.FileActivateVersion(ctx, db.FileActivateVersionParams{
		VersionID: v.ID, MarkReady: true, FileID: file.ID, VersionNumber: v.VersionNumber, WantJob: true,
	})
	require.NoError(f.t, err)
	require.NotZero(f.t, act.JobID, "the valid version got a job")
	return f.job(act.JobID)
}

func (f *apiFixture) job(id int64) db.AnnotationJob {
	f.t.Helper()
	jobs, err := f.pg.Q.AnnotationJobListByProject(context.Background(), db.AnnotationJobListByProjectParams{
		ProjectID: f.pr.ID, OrgID: f.org.ID, MaxRows: 1000,
	})
	require.NoError(f.t, err)
	for _, j := range jobs {
		if j.ID == id {
			return j
		}
	}
	f.t.Fatalf("no job %d", id)
	return db.AnnotationJob{}
}

// patch calls PATCH /v1/jobs/{id} and requires 200.
func (f *apiFixture) patch(j db.AnnotationJob, body map[string]any) {
	f.t.Helper()
	status, resp := f.do("PATCH", fmt.Sprintf("/v1/jobs/%d", j.ID), body)
	require.Equal(f.t, http.StatusOK, status, string(resp))
}

// speaker is an available annotator (or QC user) with the given proficiencies.
func (f *apiFixture) speaker(role db.UserRole, langs string) db.User {
	f.t.Helper()
	return f.user(person{role: role, langs: langs, skill: 0.8, qa: 0.9, capacity: 5})
}

// holder is the user id of the job's live assignment of the role, 0 for none.
func (f *apiFixture) holder(j db.AnnotationJob, role db.AssignmentRole) int64 {
	f.t.Helper()
	return f.liveMap(role)[j.ID]
}

// revokedEvent is the "revoked" event of an assignment.
func (f *apiFixture) revokedEvent(a db.Assignment) map[string]any {
	f.t.Helper()
	for _, ev := range f.events("revoked") {
		if ev.EntityType == db.EntityTypeAssignment && ev.EntityID == a.ID {
			var m map[string]any
			require.NoError(f.t, json.Unmarshal(ev.Metadata, &m))
			return m
		}
	}
	f.t.Fatalf("no revoked event on assignment %d; events: %v", a.ID, f.events("revoked"))
	return nil
}

// matchQueued requires that the newest project:match task of the project is a
// Match (run now) queued by a job's PATCH.
func (f *apiFixture) matchQueued() {
	f.t.Helper()
	row := testenv.RequireLatestQueued(f.t, f.pg.Pool, f.org.ID, tasks.Match{ProjectID: f.pr.ID})
	require.True(f.t, strings.HasPrefix(row.TaskID, tasks.Match{ProjectID: f.pr.ID, Run: "job"}.TaskID()), row.TaskID)
}

func (f *apiFixture) matchTasks() int {
	f.t.Helper()
	n := 0
	for _, r := range testenv.OutboxRows(f.t, f.pg.Pool, f.org.ID) {
		if r.TaskType == (tasks.Match{}).Kind() {
			n++
		}
	}
	return n
}

// (a) A version registered with language zh gets a zh job, which matching never
// gives to an annotator whose only language is en, and gives to one at the
// project's minimum in zh.
func TestRegisteredLanguageReachesTheJobAndMatching(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	enOnly := f.speaker(db.UserRoleAnnotator, `{"en": 5}`)
	j := f.register(map[string]any{"language": "zh"})
	require.NotNil(t, j.Language)
	require.Equal(t, "zh", *j.Language)

	rep, err := f.handler.Run(context.Background(), f.pr.ID)
	require.NoError(t, err)
	require.Zero(t, f.holder(j, db.AssignmentRoleAnnotator), "an en-only annotator never gets a zh job")
	require.Len(t, rep.Annotators.Result.Unassigned, 1)
	require.Equal(t, "no_language_match", string(rep.Annotators.Result.Unassigned[0].Reason))

	zh := f.speaker(db.UserRoleAnnotator, `{"zh": 3}`) // exactly the project's minimum
	_, err = f.handler.Run(context.Background(), f.pr.ID)
	require.NoError(t, err)
	require.Equal(t, zh.ID, f.holder(j, db.AssignmentRoleAnnotator))
	require.NotEqual(t, enOnly.ID, zh.ID)
}

// (d) Priority and due date given at registration arrive on the job; a version
// registered without them keeps the defaults; bad values are refused naming the
// field.
func TestRegisteredPriorityAndDueDateReachTheJob(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	j := f.register(map[string]any{"priority": "high", "due_date": "2027-01-15T09:30:00+01:00"})
	require.Equal(t, db.JobPriorityHigh, j.Priority)
	require.NotNil(t, j.DueDate)
	require.True(t, time.Date(2027, 1, 15, 8, 30, 0, 0, time.UTC).Equal(*j.DueDate), "due date %v", *j.DueDate)
	require.Nil(t, j.Language)

	plain := f.register(nil)
	require.Nil(t, plain.Language)
	require.Equal(t, db.JobPriorityMedium, plain.Priority)
	require.Nil(t, plain.DueDate)

	file := f.pg.File(t, f.pr, "")
	status, body := f.do("POST", fmt.Sprintf("/v1/files/%d/versions", file.ID), map[string]any{
		"storage_path": fmt.Sprintf("orgs/%d/x", f.org.ID), "language": "Chinese", "priority": "urgent", "due_date": "tomorrow",
	})
	require.Equal(t, http.StatusUnprocessableEntity, status, string(body))
	for _, field := range []string{`"language"`, `"priority"`, `"due_date"`} {
		require.Contains(t, string(body), field)
	}
}

// (b) A job matched in en to an en-only annotator and then patched to zh loses
// that annotator (revoked, with an event saying why), is matched again at once,
// and goes to a zh annotator, never back to the en-only one. The revoke does not
// bar the en annotator for good: patched back to en, the job can be theirs again.
func TestPatchedLanguageRevokesAnnotatorBelowMinimum(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	enOnly := f.speaker(db.UserRoleAnnotator, `{"en": 5}`)
	j := f.register(map[string]any{"language": "en"})
	f.mustProcess()
	require.Equal(t, enOnly.ID, f.holder(j, db.AssignmentRoleAnnotator))
	first := f.assignments(f.pr)[0]

	f.patch(j, map[string]any{"language": "zh"})
	as := f.assignments(f.pr)
	require.Len(t, as, 1)
	require.Equal(t, db.AssignmentStatusRevoked, as[0].Status)
	require.NotNil(t, as[0].RevokedAt)
	ev := f.revokedEvent(first)
	require.Equal(t, "language changed from en to zh: annotator's zh proficiency 0 is below the project's minimum 3", ev["reason"])
	require.Equal(t, "language", ev["rule"])
	require.EqualValues(t, enOnly.ID, ev["user_id"])
	f.matchQueued()

	// Nobody speaks zh yet: the job stays open rather than going back.
	f.mustProcess()
	require.Zero(t, f.holder(j, db.AssignmentRoleAnnotator))

	zh := f.speaker(db.UserRoleAnnotator, `{"zh": 4, "en": 1}`)
	f.mustProcess()
	require.Equal(t, zh.ID, f.holder(j, db.AssignmentRoleAnnotator))

	// Back to en: the zh annotator (en 1) is now below the minimum, and the
	// en-only annotator, revoked by a rule and not by a person, may have it again.
	f.patch(j, map[string]any{"language": "en"})
	f.mustProcess()
	require.Equal(t, enOnly.ID, f.holder(j, db.AssignmentRoleAnnotator))
}

// A reviewer below the minimum in the new language is revoked too, and, being
// revoked by a rule, is not excluded from reviewing the job later.
func TestPatchedLanguageRevokesReviewerBelowMinimum(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t, reviewersOn)
	f.speaker(db.UserRoleAnnotator, `{"en": 5, "zh": 5}`)
	enQC := f.speaker(db.UserRoleQc, `{"en": 5}`)
	j := f.register(map[string]any{"language": "en"})
	f.mustProcess()
	require.Equal(t, enQC.ID, f.holder(j, db.AssignmentRoleReviewer))
	annotator := f.holder(j, db.AssignmentRoleAnnotator)
	require.NotZero(t, annotator)

	f.patch(j, map[string]any{"language": "zh"})
	require.Zero(t, f.holder(j, db.AssignmentRoleReviewer), "the en-only reviewer is revoked")
	require.Equal(t, annotator, f.holder(j, db.AssignmentRoleAnnotator), "the annotator speaks zh and keeps the job")
	f.matchQueued()
	f.mustProcess()
	require.Zero(t, f.holder(j, db.AssignmentRoleReviewer), "no reviewer speaks zh")

	f.patch(j, map[string]any{"language": "en"})
	f.mustProcess()
	require.Equal(t, enQC.ID, f.holder(j, db.AssignmentRoleReviewer))
}

// (c) Priority and due date enter no hard rule: patching them, or patching the
// language to the one the job has, leaves the assignment alone and queues no
// matching.
func TestPatchedPriorityKeepsAssignment(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	enOnly := f.speaker(db.UserRoleAnnotator, `{"en": 5}`)
	j := f.register(map[string]any{"language": "en"})
	f.mustProcess()
	require.Equal(t, enOnly.ID, f.holder(j, db.AssignmentRoleAnnotator))
	before := f.matchTasks()

	f.patch(j, map[string]any{"priority": "high"})
	f.patch(j, map[string]any{"due_date": "2027-02-01T00:00:00Z"})
	f.patch(j, map[string]any{"language": "en", "status": "in_progress"})
	require.Equal(t, db.JobPriorityHigh, f.job(j.ID).Priority)
	as := f.assignments(f.pr)
	require.Len(t, as, 1)
	require.Equal(t, db.AssignmentStatusAssigned, as[0].Status)
	require.Empty(t, f.events("revoked"))
	require.Equal(t, before, f.matchTasks(), "nothing to match again")
}

// A patched language that lets someone take a job nobody could is matched
// again too, through the pipeline's aggregated trigger.
func TestPatchedLanguageOfOpenJobTriggersMatching(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	enOnly := f.speaker(db.UserRoleAnnotator, `{"en": 5}`)
	j := f.register(map[string]any{"language": "zh"})
	f.mustProcess()
	require.Zero(t, f.holder(j, db.AssignmentRoleAnnotator))

	f.patch(j, map[string]any{"language": "en"})
	row := testenv.RequireLatestQueued(t, f.pg.Pool, f.org.ID, tasks.MatchTrigger{ProjectID: f.pr.ID})
	require.Contains(t, row.TaskID, fmt.Sprintf(":job%d:", j.ID))
	f.mustProcess()
	require.Equal(t, enOnly.ID, f.holder(j, db.AssignmentRoleAnnotator))
}

// A PATCH that lands while a project:match run is writing an assignment for the
// job on its old attributes waits for that run, then re-checks what it wrote: the
// assignment cannot slip in behind the re-check.
func TestPatchedLanguageWaitsForRunningMatch(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	ctx := context.Background()
	enOnly := f.speaker(db.UserRoleAnnotator, `{"en": 5}`)
	j := f.register(map[string]any{"language": "en"})

	// A run in the middle of writing: it holds the project's lock and has
	// written its assignment, not yet committed.
	tx, err := f.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	q := db.New(tx)
	require.NoError(t, q.AssignmentLockProjectForMatching(ctx, f.pr.ID))
	_, err = q.AssignmentCreateBatch(ctx, db.AssignmentCreateBatchParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, Role: db.AssignmentRoleAnnotator,
		JobIds: []int64{j.ID}, UserIds: []int64{enOnly.ID}, Scores: []float64{0.5},
	})
	require.NoError(t, err)

	req, err := http.NewRequest("PATCH", fmt.Sprintf("%s/v1/jobs/%d", f.base, j.ID), strings.NewReader(`{"language": "zh"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		_ = resp.Body.Close()
		done <- resp.StatusCode
	}()
	require.Eventually(t, func() bool {
		var waiting int
		err := f.pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
		return err == nil && waiting == 1
	}, 10*time.Second, 10*time.Millisecond, "the PATCH waits for the run's lock")
	require.NoError(t, tx.Commit(ctx))

	require.Equal(t, http.StatusOK, <-done)
	as := f.assignments(f.pr)
	require.Len(t, as, 1)
	require.Equal(t, db.AssignmentStatusRevoked, as[0].Status, "the run's assignment was re-checked after it committed")
	f.matchQueued()
}
