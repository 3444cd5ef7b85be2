package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

const carBox = `[{"from_name": "label", "to_name": "image", "type": "rectanglelabels",
	"value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0, "rectanglelabels": ["Car"]}}]`

// assign gives the fixture's job to a new annotator of org A.
func (f *resultFixture) assign(t *testing.T, name string) (userID, assignmentID int64) {
	t.Helper()
	r := f.w.orgA.do("POST", "/v1/users", map[string]any{"email": name + "@a.test", "name": name, "role": "annotator"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	userID = id(t, r)
	require.NoError(t, f.w.env.PG.Pool.QueryRow(context.Background(),
		`INSERT INTO assignments (org_id, project_id, job_id, user_id, role, score) VALUES ($1, $2, $3, $4, 'annotator', 0.5) RETURNING id`,
		f.w.orgAID, f.pid, f.jobID, userID).Scan(&assignmentID))
	return userID, assignmentID
}

// TestSubmitQueuesScoring: submitting a copy of a gold job completes the
// assignment and queues one gold submission with its job:score task in the
// same transaction; the submission reads back queued; a second submit is a
// 409; another organization sees neither; a result that does not fit the
// label config is a 422 that submits nothing.
func TestSubmitQueuesScoring(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	f := newResultFixture(t, w, lsObjectDetection, []byte("an image"))
	_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE annotation_jobs SET gold = true WHERE id = $1`, f.jobID)
	require.NoError(t, err)
	userID, aid := f.assign(t, "gina")
	good := f.register(t, f.resultsID, 1, []byte(carBox))
	bad := f.register(t, f.resultsID, 2, []byte(`[{"from_name": "label", "to_name": "image", "type": "rectanglelabels",
		"value": {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["Truck"]}}]`))

	path := fmt.Sprintf("/v1/assignments/%d/submit", aid)
	r := w.orgA.do("POST", path, map[string]any{"result_version_id": bad})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "Truck")
	r = w.orgA.do("POST", path, map[string]any{})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Equal(t, "result_version_id", r.json(t)["errors"].([]any)[0].(map[string]any)["field"])
	r = w.orgB.do("POST", path, map[string]any{"result_version_id": good})
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))

	r = w.orgA.do("POST", path, map[string]any{"result_version_id": good})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	body := r.json(t)
	require.Equal(t, "completed", body["assignment"].(map[string]any)["status"])
	require.EqualValues(t, good, body["assignment"].(map[string]any)["result_version_id"])
	subs := body["submissions"].([]any)
	require.Len(t, subs, 1)
	sub := subs[0].(map[string]any)
	require.Equal(t, "gold", sub["kind"])
	require.EqualValues(t, userID, sub["user_id"])
	sid := int64(sub["id"].(float64))
	testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.Score{SubmissionID: sid})

	r = w.orgA.do("GET", sub["status_url"].(string), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, "queued", r.json(t)["status"])
	r = w.orgB.do("GET", sub["status_url"].(string), nil)
	require.Equal(t, http.StatusNotFound, r.Status)

	r = w.orgA.do("POST", path, map[string]any{"result_version_id": good})
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))

	r = w.orgA.do("GET", fmt.Sprintf("/v1/projects/%d/quality", f.pid), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	ann := r.json(t)["annotators"].([]any)
	require.Len(t, ann, 1)
	require.EqualValues(t, 1, ann[0].(map[string]any)["pending"])
	r = w.orgB.do("GET", fmt.Sprintf("/v1/projects/%d/leaderboard", f.pid), nil)
	require.Equal(t, http.StatusNotFound, r.Status)
}

// TestOverlapQueuesPeerScoringOnceEveryCopyIsIn: with overlap 2 and no gold,
// the first copy queues nothing; the second queues one peer submission per
// copy.
func TestOverlapQueuesPeerScoringOnceEveryCopyIsIn(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	f := newResultFixture(t, w, lsObjectDetection, []byte("an image too"))
	_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE projects SET overlap = 2 WHERE id = $1`, f.pid)
	require.NoError(t, err)
	_, a1 := f.assign(t, "ole")
	_, a2 := f.assign(t, "pia")
	v1 := f.register(t, f.resultsID, 1, []byte(carBox))
	v2 := f.register(t, f.resultsID, 2, []byte(carBox))

	r := w.orgA.do("POST", fmt.Sprintf("/v1/assignments/%d/submit", a1), map[string]any{"result_version_id": v1})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Empty(t, r.json(t)["submissions"], "one copy of two: nothing to compare yet")
	r = w.orgA.do("POST", fmt.Sprintf("/v1/assignments/%d/submit", a2), map[string]any{"result_version_id": v2})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	subs := r.json(t)["submissions"].([]any)
	require.Len(t, subs, 2)
	for _, s := range subs {
		require.Equal(t, "peer", s.(map[string]any)["kind"])
		testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.Score{SubmissionID: int64(s.(map[string]any)["id"].(float64))})
	}
}

// TestPatchedJobResultIsScoredAgainstGold: PATCH /v1/jobs/{id} with a result
// and status submitted on a gold job queues its annotator's gold submission,
// once.
func TestPatchedJobResultIsScoredAgainstGold(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	f := newResultFixture(t, w, lsObjectDetection, []byte("a third image"))
	_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE annotation_jobs SET gold = true WHERE id = $1`, f.jobID)
	require.NoError(t, err)
	userID, _ := f.assign(t, "quinn")
	v := f.register(t, f.resultsID, 1, []byte(carBox))
	for range 2 {
		r := w.orgA.do("PATCH", fmt.Sprintf("/v1/jobs/%d", f.jobID), map[string]any{"result_version_id": v, "status": "submitted"})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	}
	var n int
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM submissions WHERE job_id = $1 AND user_id = $2 AND kind = 'gold' AND result_version_id = $3`, f.jobID, userID, v).Scan(&n))
	require.Equal(t, 1, n)
}

// TestConsensusRoutes: a consensus run is queued in the request's
// transaction; without a label config it is a 409 saying what to do; before
// any run the agreement is a 404 that says how to get one.
func TestConsensusRoutes(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	f := newResultFixture(t, w, lsObjectDetection, []byte("consensus image"))
	r := w.orgA.do("GET", fmt.Sprintf("/v1/projects/%d/agreement", f.pid), nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "/consensus")
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/consensus", f.pid), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, fmt.Sprintf("/v1/projects/%d/agreement", f.pid), r.json(t)["status_url"])
	var n int
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM outbox WHERE task_type = 'project:consensus' AND payload->>'project_id' = $1`, fmt.Sprint(f.pid)).Scan(&n))
	require.Equal(t, 1, n)
	r = w.orgB.do("POST", fmt.Sprintf("/v1/projects/%d/consensus", f.pid), nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))

	_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE projects SET label_config = NULL WHERE id = $1`, f.pid)
	require.NoError(t, err)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/consensus", f.pid), nil)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
}

// TestHandSetQualityIsAnEvent: PATCH /v1/users/{id} setting qa_approval_rate
// or skill_score writes a quality_updated event that says the API (and which
// token) wrote it, as job:score's says the worker did; other edits write none.
func TestHandSetQualityIsAnEvent(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	r := w.orgA.do("POST", "/v1/users", map[string]any{"email": "hand@a.test", "name": "Hand", "role": "annotator"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	uid := id(t, r)
	count := func() int {
		var n int
		require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM event_log WHERE entity_type = 'user' AND entity_id = $1 AND event_type = 'quality_updated'
			   AND metadata->>'by' = 'api' AND metadata ? 'token_id'`, uid).Scan(&n))
		return n
	}
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/users/%d", uid), map[string]any{"name": "Renamed"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Zero(t, count())
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/users/%d", uid), map[string]any{"qa_approval_rate": 0.7})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, 1, count())
	r = w.orgA.do("GET", fmt.Sprintf("/v1/events?entity_type=user&entity_id=%d", uid), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), `"quality_updated"`)
}
