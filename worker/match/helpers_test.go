package match_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/match"
)

// fixture is one test's organization and project in a database of its own, with
// a handler over it.
type fixture struct {
	t       testing.TB
	pg      *testenv.PG
	org     db.Organization
	pr      db.Project
	handler *match.Handler
}

func newFixture(t testing.TB, opts ...testenv.ProjectOpt) *fixture {
	t.Helper()
	pg := testenv.Postgres(t)
	org := pg.Org(t)
	return &fixture{
		t: t, pg: pg, org: org, pr: pg.Project(t, org.ID, opts...),
		handler: match.NewHandler(match.Deps{Pool: pg.Pool, Log: testLogger(t)}),
	}
}

// testLogger keeps the handler's lines, so a failing test shows what the runs said
// (testenv.Logger prints them when it fails).
func testLogger(t testing.TB) *slog.Logger {
	log, _ := testenv.Logger(t)
	return log
}

func reviewersOn(p *db.ProjectCreateParams) { p.AssignReviewers = true }

// person describes a user for the fixture: languages and scores as stored.
type person struct {
	role     db.UserRole
	langs    string // language_expertise JSON
	skill    float64
	qa       float64
	capacity int32
	noWindow bool // availability without any window
	inactive bool
}

const weekdays = `{"timezone":"Europe/Paris","monday":["09:00-12:00","14:00-18:00"],"thursday":["10:00-16:00"]}`

func (f *fixture) user(p person) db.User {
	f.t.Helper()
	return f.pg.User(f.t, f.org.ID, func(u *db.UserCreateParams) {
		u.Role = p.role
		if u.Role == "" {
			u.Role = db.UserRoleAnnotator
		}
		u.Availability = json.RawMessage(weekdays)
		if p.noWindow {
			u.Availability = json.RawMessage(`{"timezone":"UTC","monday":[]}`)
		}
		u.LanguageExpertise = json.RawMessage(p.langs)
		u.SkillScore, u.QaApprovalRate = &p.skill, &p.qa
		u.MaxActiveJobs = p.capacity
		u.IsActive = !p.inactive
	})
}

// job creates a file, a version and the version's annotation job in project pr.
func (f *fixture) job(pr db.Project, lang string, prio db.JobPriority, due *time.Time) db.AnnotationJob {
	f.t.Helper()
	file := f.pg.File(f.t, pr, "")
	v := f.pg.RegisterVersion(f.t, file, fmt.Sprintf("uploads/%d/%d", pr.ID, file.ID), testenv.Declared{})
	var language *string
	if lang != "" {
		language = &lang
	}
	j, err := f.pg.Q.AnnotationJobCreate(context.Background(), db.AnnotationJobCreateParams{
		OrgID: pr.OrgID, ProjectID: pr.ID, FileID: file.ID, FileVersionID: v.ID,
		Language: language, Priority: prio, DueDate: due,
	})
	require.NoError(f.t, err)
	return j
}

// assign writes an assignment directly, as an earlier run (or another project's)
// would have.
func (f *fixture) assign(pr db.Project, jobID, userID int64, role db.AssignmentRole) db.AssignmentCreateBatchRow {
	f.t.Helper()
	rows, err := f.pg.Q.AssignmentCreateBatch(context.Background(), db.AssignmentCreateBatchParams{
		OrgID: pr.OrgID, ProjectID: pr.ID, Role: role,
		JobIds: []int64{jobID}, UserIds: []int64{userID}, Scores: []float64{0.5},
	})
	require.NoError(f.t, err)
	require.Len(f.t, rows, 1)
	return rows[0]
}

func (f *fixture) setJobStatus(j db.AnnotationJob, st db.JobStatus) {
	f.t.Helper()
	_, err := f.pg.Q.AnnotationJobUpdate(context.Background(), db.AnnotationJobUpdateParams{ID: j.ID, OrgID: j.OrgID, Status: &st})
	require.NoError(f.t, err)
}

// revoke does what POST /v1/assignments/{id}/revoke does to the rows.
func (f *fixture) revoke(a db.Assignment) {
	f.t.Helper()
	err := database.Tx(context.Background(), f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		r, err := q.AssignmentRevoke(context.Background(), db.AssignmentRevokeParams{ID: a.ID, OrgID: a.OrgID})
		if err != nil {
			return err
		}
		return q.JobPreviousAnnotatorAdd(context.Background(), db.JobPreviousAnnotatorAddParams{JobID: r.JobID, UserID: r.UserID, OrgID: r.OrgID})
	})
	require.NoError(f.t, err)
}

func (f *fixture) process() error {
	f.t.Helper()
	task, err := tasks.NewTask(tasks.Match{ProjectID: f.pr.ID})
	require.NoError(f.t, err)
	return tasks.Handle(f.handler.Work).ProcessTask(context.Background(), task)
}

func (f *fixture) mustProcess() {
	f.t.Helper()
	require.NoError(f.t, f.process())
}

// assignments lists the project's assignments, all statuses, by id.
func (f *fixture) assignments(pr db.Project) []db.Assignment {
	f.t.Helper()
	as, err := f.pg.Q.AssignmentListByProject(context.Background(), db.AssignmentListByProjectParams{
		ProjectID: pr.ID, OrgID: pr.OrgID, MaxRows: 100000,
	})
	require.NoError(f.t, err)
	return as
}

func live(a db.Assignment) bool {
	return a.Status == db.AssignmentStatusAssigned || a.Status == db.AssignmentStatusAccepted ||
		a.Status == db.AssignmentStatusInProgress
}

// liveMap is job id → user id of the project's live assignments of one role.
func (f *fixture) liveMap(role db.AssignmentRole) map[int64]int64 {
	f.t.Helper()
	m := map[int64]int64{}
	for _, a := range f.assignments(f.pr) {
		if a.Role == role && live(a) {
			_, dup := m[a.JobID]
			require.False(f.t, dup, "job %d has two live %s assignments", a.JobID, role)
			m[a.JobID] = a.UserID
		}
	}
	return m
}

// events lists every event of the organization of one type, by id.
func (f *fixture) events(eventType string) []db.EventLog {
	f.t.Helper()
	rows, err := f.pg.Pool.Query(context.Background(),
		`SELECT * FROM event_log WHERE org_id = $1 AND event_type = $2 ORDER BY id`, f.org.ID, eventType)
	require.NoError(f.t, err)
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByName[db.EventLog])
	require.NoError(f.t, err)
	return evs
}

// matchSummary is the part of a match_completed event the tests read.
type matchSummary struct {
	Assigned   int            `json:"assigned"`
	Unassigned map[string]int `json:"unassigned"`
	Jobs       int            `json:"jobs"`
	TotalScore float64        `json:"total_score"`
	Reviewers  *struct {
		Assigned   int            `json:"assigned"`
		Unassigned map[string]int `json:"unassigned"`
	} `json:"reviewers"`
}

func decodeSummary(t testing.TB, ev db.EventLog) matchSummary {
	t.Helper()
	var s matchSummary
	require.NoError(t, json.Unmarshal(ev.Metadata, &s))
	return s
}

func isPermanent(err error) bool { return errors.Is(err, asynq.SkipRetry) }

func ptr[T any](v T) *T { return &v }
