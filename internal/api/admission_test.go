package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/api"
)

// admissionOf is GET /v1/admission as c, by task type.
func admissionOf(t *testing.T, c client) map[string]api.AdmissionBacklog {
	t.Helper()
	r := c.do("GET", "/v1/admission", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out api.List[api.AdmissionBacklog]
	require.NoError(t, json.Unmarshal(r.Body, &out), string(r.Body))
	by := map[string]api.AdmissionBacklog{}
	for _, b := range out.Items {
		by[b.TaskType] = b
	}
	return by
}

// registerMany registers n versions of new files in a new project of c's
// organization (one versions:batch), keys under orgs/<org>/<prefix>/.
func registerMany(t *testing.T, c client, orgID int64, prefix string, n int) {
	t.Helper()
	r := c.do("POST", "/v1/projects", map[string]any{"name": prefix})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	items := make([]any, n)
	for i := range items {
		items[i] = map[string]any{"file_name": fmt.Sprintf("%s-%d.txt", prefix, i), "storage_path": fmt.Sprintf("orgs/%d/%s/%d.txt", orgID, prefix, i)}
	}
	r = c.do("POST", fmt.Sprintf("/v1/projects/%d/versions:batch", id(t, r)), map[string]any{"items": items})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), fmt.Sprintf(`"created":%d`, n))
}

// TestAdmissionShowsTheOrganizationsBacklog: with file:validate held back to 2
// per organization and no worker running, org A's five registrations are two
// admitted and the rest waiting (one due later: scheduled); its weight raises
// its limit, and the next relay pass admits the rest. Org B sees its own figures
// only, through the API's row-level security.
func TestAdmissionShowsTheOrganizationsBacklog(t *testing.T) {
	t.Parallel()
	w := newFixtureWith(t, map[string]string{"LABELQ_ADMIT_PER_ORG": "validate=2"})
	ctx := context.Background()
	relay := relayFor(w.a)
	relay.Admission = w.a.Admission()
	relayAll := func() {
		t.Helper()
		for range 10 {
			n, err := relay.RelayOnce(ctx)
			require.NoError(t, err)
			if n == 0 {
				return
			}
		}
		t.Fatal("the relay kept finding rows")
	}

	require.Empty(t, admissionOf(t, w.orgA), "nothing queued yet")
	registerMany(t, w.orgA, w.orgAID, "a", 5)
	var orgB int64
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, "SELECT id FROM organizations WHERE name = 'org-b'").Scan(&orgB))
	registerMany(t, w.orgB, orgB, "b", 1)
	// One of A's is due in an hour (a retry's backoff, say).
	_, err := w.env.PG.Pool.Exec(ctx, `UPDATE outbox SET available_at = now() + interval '1 hour'
		WHERE id = (SELECT max(id) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate')`, w.orgAID)
	require.NoError(t, err)

	a := admissionOf(t, w.orgA)["file:validate"]
	require.Equal(t, api.AdmissionBacklog{TaskType: "file:validate", Waiting: 4, Scheduled: 1, Admitted: 0, Limit: 2, Weight: 1,
		OldestWaitSeconds: a.OldestWaitSeconds}, a)
	require.GreaterOrEqual(t, a.OldestWaitSeconds, 0.0)

	relayAll()
	a = admissionOf(t, w.orgA)["file:validate"]
	require.Equal(t, int64(2), a.Admitted, "%+v", a)
	require.Equal(t, int64(2), a.Waiting, "%+v", a)
	require.Equal(t, int64(1), a.Scheduled, "%+v", a)
	require.Equal(t, int32(2), a.Limit)
	var held int
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE org_id = $1 AND task_type = 'file:validate'
		AND admitted_at IS NOT NULL AND finished_at IS NULL AND enqueued_at IS NOT NULL`, w.orgAID).Scan(&held))
	require.Equal(t, 2, held, "the answer is the outbox's")

	b := admissionOf(t, w.orgB)
	require.Equal(t, map[string]api.AdmissionBacklog{"file:validate": {TaskType: "file:validate", Admitted: 1, Limit: 2, Weight: 1}}, b,
		"org B sees its one version, not A's five")

	// An operator weighs A three times: six slots, and the relay admits the two waiting.
	_, err = w.env.PG.Pool.Exec(ctx, "UPDATE organizations SET admission_weight = 3 WHERE id = $1", w.orgAID)
	require.NoError(t, err)
	relayAll()
	a = admissionOf(t, w.orgA)["file:validate"]
	require.Equal(t, api.AdmissionBacklog{TaskType: "file:validate", Waiting: 0, Scheduled: 1, Admitted: 4, Limit: 6, Weight: 3}, a)
	require.Equal(t, int32(2), admissionOf(t, w.orgB)["file:validate"].Limit, "B's weight is its own")
}
