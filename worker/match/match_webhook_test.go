package match_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
)

// hooks are a fixture organization's endpoints: every type, assignments only,
// matches only, and two that must get nothing from matching (another type,
// another project).
type hooks struct{ all, assignments, matches int64 }

func (f *fixture) hooks(keys *storage.Keyring) hooks {
	f.t.Helper()
	all, _ := f.pg.InsertWebhook(f.t, keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/all"})
	as, _ := f.pg.InsertWebhook(f.t, keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/as", EventTypes: []string{webhook.AssignmentCreated}})
	ms, _ := f.pg.InsertWebhook(f.t, keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/ms", EventTypes: []string{webhook.MatchCompleted}})
	f.pg.InsertWebhook(f.t, keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/ex", EventTypes: []string{webhook.ExportCompleted}})
	other := f.pg.Project(f.t, f.org.ID)
	f.pg.InsertWebhook(f.t, keys, f.org.ID, testenv.WebhookRow{URL: "https://example.com/other", ProjectIDs: []int64{other.ID}})
	return hooks{all: all.ID, assignments: as.ID, matches: ms.ID}
}

// matchEvents are the project's match.completed events.
func (f *fixture) matchEvents() []db.WebhookEvent {
	f.t.Helper()
	evs, err := f.pg.Q.WebhookEventsOfEntity(context.Background(), db.WebhookEventsOfEntityParams{
		OrgID: f.org.ID, EntityType: db.EntityTypeProject, EntityID: f.pr.ID,
	})
	require.NoError(f.t, err)
	return evs
}

// A matching run tells each assignment it creates (annotators and reviewers) and
// the run itself, once.
func TestMatchEmitsWebhookEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, reviewersOn)
	h := f.hooks(testenv.StorageKeyring(t))
	for range 2 {
		f.user(person{langs: `{"en": 4}`, skill: 0.8, qa: 0.9, capacity: 5})
		f.user(person{role: db.UserRoleQc, langs: `{"en": 4}`, skill: 0.8, qa: 0.9, capacity: 5})
	}
	jobs := map[int64]db.AnnotationJob{}
	for range 3 {
		j := f.job(f.pr, "en", db.JobPriorityMedium, nil)
		jobs[j.ID] = j
	}
	f.mustProcess()

	as := f.assignments(f.pr)
	require.Len(t, as, 6, "an annotator and a reviewer per job")
	ids := make([]int64, len(as))
	for i, a := range as {
		ids[i] = a.ID
		var data webhook.AssignmentData
		testenv.RequireWebhookEvent(t, f.pg.Pool, f.org.ID, db.EntityTypeAssignment, a.ID, webhook.AssignmentCreated,
			[]int64{h.all, h.assignments}, &data)
		require.Equal(t, webhook.AssignmentData{
			AssignmentID: a.ID, JobID: a.JobID, ProjectID: f.pr.ID, UserID: a.UserID, Role: string(a.Role),
			FileID: ptr(jobs[a.JobID].FileID), Status: "assigned", Score: &a.Score,
		}, data)
	}

	var data webhook.MatchData
	testenv.RequireWebhookEvent(t, f.pg.Pool, f.org.ID, db.EntityTypeProject, f.pr.ID, webhook.MatchCompleted,
		[]int64{h.all, h.matches}, &data)
	require.Equal(t, f.pr.ID, data.ProjectID)
	require.Equal(t, 6, data.Assigned)
	require.Zero(t, data.Unassigned)
	require.Positive(t, data.Objective)
	require.ElementsMatch(t, ids, data.AssignmentIDs)

	// The same task again (a redelivery after the commit) changes nothing and
	// tells nothing.
	f.mustProcess()
	require.Len(t, f.matchEvents(), 1)
	for _, a := range as {
		testenv.RequireWebhookEvent(t, f.pg.Pool, f.org.ID, db.EntityTypeAssignment, a.ID, webhook.AssignmentCreated,
			[]int64{h.all, h.assignments}, nil)
	}

	// A new job makes a new run with new assignments: a second match.completed.
	j := f.job(f.pr, "en", db.JobPriorityHigh, nil)
	f.mustProcess()
	evs := f.matchEvents()
	require.Len(t, evs, 2)
	var second struct{ Data webhook.MatchData }
	require.NoError(t, json.Unmarshal([]byte(evs[1].Body), &second))
	require.Equal(t, 2, second.Data.Assigned)
	require.Len(t, second.Data.AssignmentIDs, 2)
	for _, id := range second.Data.AssignmentIDs {
		require.NotContains(t, ids, id)
		var ad webhook.AssignmentData
		testenv.RequireWebhookEvent(t, f.pg.Pool, f.org.ID, db.EntityTypeAssignment, id, webhook.AssignmentCreated,
			[]int64{h.all, h.assignments}, &ad)
		require.Equal(t, j.ID, ad.JobID)
	}
}

// A run that creates more than a thousand assignments tells each one (in one
// statement) and lists the first thousand in match.completed; an organization
// with no endpoint gets none of it.
func TestMatchEmitsManyAssignmentEvents(t *testing.T) {
	t.Parallel()
	const n = 1100
	f := newFixture(t)
	h := f.hooks(testenv.StorageKeyring(t))
	for range 3 {
		f.user(person{langs: `{"en": 4}`, skill: 0.8, qa: 0.9, capacity: 400})
	}
	bulkJobs(t, f.pg, f.pr, n)
	f.mustProcess()

	var events, deliveries int
	require.NoError(t, f.pg.Pool.QueryRow(context.Background(), `SELECT count(*), (SELECT count(*) FROM webhook_deliveries d
		JOIN webhook_events e ON e.id = d.event_id WHERE e.org_id = $1 AND e.event_type = $2)
		FROM webhook_events WHERE org_id = $1 AND event_type = $2`, f.org.ID, webhook.AssignmentCreated).Scan(&events, &deliveries))
	require.Equal(t, n, events)
	require.Equal(t, 2*n, deliveries, "all and assignments")
	queued := 0
	for _, r := range testenv.OutboxRows(t, f.pg.Pool, f.org.ID) {
		if r.TaskType == (tasks.WebhookDeliver{}).Kind() {
			queued++
		}
	}
	require.Equal(t, 2*n+2, queued, "every delivery's task, and match.completed's two")

	var data webhook.MatchData
	testenv.RequireWebhookEvent(t, f.pg.Pool, f.org.ID, db.EntityTypeProject, f.pr.ID, webhook.MatchCompleted,
		[]int64{h.all, h.matches}, &data)
	require.Equal(t, n, data.Assigned)
	require.Len(t, data.AssignmentIDs, 1000)
	as := f.assignments(f.pr)
	ids := make([]int64, len(as))
	for i, a := range as {
		ids[i] = a.ID
	}
	for _, id := range data.AssignmentIDs {
		require.True(t, slices.Contains(ids, id))
	}

	t.Run("no endpoint", func(t *testing.T) {
		org := f.pg.Org(t)
		pr := f.pg.Project(t, org.ID)
		for range 2 {
			f.pg.User(t, org.ID, testenv.Annotator)
		}
		bulkJobs(t, f.pg, pr, 5)
		_, err := f.handler.Run(context.Background(), pr.ID)
		require.NoError(t, err)
		var n int
		require.NoError(t, f.pg.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE org_id = $1`, org.ID).Scan(&n))
		require.Zero(t, n)
		require.NotContains(t, testenv.Kinds(testenv.OutboxRows(t, f.pg.Pool, org.ID)), tasks.WebhookDeliver{}.Kind())
		var assigned int
		require.NoError(t, f.pg.Pool.QueryRow(context.Background(), `SELECT count(*) FROM assignments WHERE project_id = $1`, pr.ID).Scan(&assigned))
		require.Equal(t, 5, assigned)
	})
}

// bulkJobs makes n English jobs in pr (a file and a version each) in three statements.
func bulkJobs(t *testing.T, pg *testenv.PG, pr db.Project, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := pg.Pool.Exec(ctx, `INSERT INTO files (org_id, project_id, name)
		SELECT $1, $2, 'bulk-' || g FROM generate_series(1, $3::int) g`, pr.OrgID, pr.ID, n)
	require.NoError(t, err)
	_, err = pg.Pool.Exec(ctx, `INSERT INTO file_versions (org_id, project_id, file_id, version_number, storage_path)
		SELECT org_id, project_id, id, 1, 'uploads/' || id FROM files WHERE project_id = $1`, pr.ID)
	require.NoError(t, err)
	_, err = pg.Pool.Exec(ctx, `INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id, language)
		SELECT org_id, project_id, file_id, id, 'en' FROM file_versions WHERE project_id = $1`, pr.ID)
	require.NoError(t, err)
}
