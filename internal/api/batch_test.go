package api_test

// Issue 15, item 5: batch registration, one transaction, a result per item.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

func batchResult(t *testing.T, r reply) api.BatchResult {
	t.Helper()
	var out api.BatchResult
	require.NoError(t, json.Unmarshal(r.Body, &out), string(r.Body))
	return out
}

func validateTasks(t *testing.T, env *testenv.Env, orgID int64) int {
	t.Helper()
	n := 0
	for _, k := range testenv.Kinds(testenv.OutboxRows(t, env.PG.Pool, orgID)) {
		if k == (tasks.Validate{}).Kind() {
			n++
		}
	}
	return n
}

// A bad item among good ones: the good ones are created with their validation
// queued, the bad one names its field, a repeat is a duplicate, a file_name
// creates (then finds) its file, and another organization's file is "not found"
// exactly as a missing one.
func TestBatchRegistrationResultPerItem(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	ctx := context.Background()

	// Org B's file, and an id nobody has.
	r := w.orgB.do("POST", "/v1/projects", map[string]any{"name": "b"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = w.orgB.do("POST", fmt.Sprintf("/v1/projects/%d/files", id(t, r)), map[string]any{"name": "b.txt"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	foreign := id(t, r)
	missing := foreign + 1000

	key := func(n int) string { return fmt.Sprintf("orgs/%d/batch/%d.txt", w.orgAID, n) }
	sum := testenv.SHA256Hex([]byte("zero"))
	due := "2026-12-31T18:00:00Z"
	path := fmt.Sprintf("/v1/projects/%d/versions:batch", s.ProjectID)
	tasksBefore := validateTasks(t, w.env, w.orgAID)
	r = w.orgA.do("POST", path, map[string]any{"items": []any{
		map[string]any{"file_id": s.FileID, "storage_path": key(0), "sha256": strings.ToUpper(sum), "size": 4, "mime_type": "text/plain; charset=utf-8",
			"language": "zh", "priority": "high", "due_date": due},
		map[string]any{"file_name": "new/one.json", "file_type": "annotation_results", "storage_path": key(1)},
		map[string]any{"file_id": s.FileID, "storage_path": key(2), "sha256": "abc"},
		map[string]any{"file_id": s.FileID, "storage_path": key(0)},
		map[string]any{"file_id": foreign, "storage_path": key(4)},
		map[string]any{"file_name": "new/one.json", "storage_path": key(5)},
		map[string]any{"file_id": s.FileID, "storage_path": "orgs/999999/x.txt"},
		map[string]any{"file_id": missing, "storage_path": key(7)},
		map[string]any{"file_id": s.FileID, "storage_path": key(8), "size": "four", "priority": "urgent"},
		map[string]any{"file_name": "new/one.json", "file_type": "dataset", "storage_path": key(9)},
		map[string]any{"file_id": s.FileID, "file_name": "both", "storage_path": key(10)},
		map[string]any{"storage_path": key(11), "colour": "blue"},
	}})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	out := batchResult(t, r)
	require.Len(t, out.Items, 12)
	require.Equal(t, 3, out.Created, string(r.Body))
	require.Equal(t, 1, out.Duplicate, string(r.Body))
	require.Equal(t, 8, out.Invalid, string(r.Body))

	for i, it := range out.Items {
		require.Equal(t, i, it.Index, "results are in request order")
	}
	status := func(i int) string { return out.Items[i].Status }
	fields := func(i int) map[string]string {
		m := map[string]string{}
		for _, f := range out.Items[i].Errors {
			m[f.Field] = f.Message
		}
		return m
	}
	for _, i := range []int{0, 1, 5} {
		it := out.Items[i]
		require.Equal(t, api.BatchCreated, it.Status, "item %d: %s", i, r.Body)
		require.Empty(t, it.Errors)
		require.Equal(t, tasks.Validate{VersionID: it.VersionID}.TaskID(), it.TaskID)
		require.Equal(t, fmt.Sprintf("/v1/versions/%d", it.VersionID), it.StatusURL)
		testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.Validate{VersionID: it.VersionID})
	}
	require.Equal(t, s.FileID, out.Items[0].FileID)
	require.Equal(t, out.Items[1].FileID, out.Items[5].FileID, "a file_name names one file")
	require.NotEqual(t, s.FileID, out.Items[1].FileID)

	require.Equal(t, api.BatchDuplicate, status(3))
	require.Equal(t, out.Items[0].VersionID, out.Items[3].VersionID, "a repeat within the batch is the first one's version")

	require.Equal(t, api.BatchInvalid, status(2))
	require.Equal(t, map[string]string{"items[2].sha256": "must be 64 hexadecimal characters (a SHA-256)"}, fields(2))
	require.Zero(t, out.Items[2].VersionID)
	require.Zero(t, out.Items[2].FileID)
	require.Contains(t, fields(6)["items[6].storage_path"], fmt.Sprintf("must start with \"orgs/%d/\"", w.orgAID))
	require.Contains(t, fields(8), "items[8].size")
	require.Len(t, fields(8), 1, "a wrong type is reported alone: %v", fields(8))
	require.Contains(t, fields(9)["items[9].file_type"], "annotation_results", "an existing file keeps its type")
	require.Contains(t, fields(10), "items[10].file_id")
	require.Contains(t, fields(11)["items[11].colour"], "unknown field")

	// Another organization's file is answered exactly as a missing one.
	require.Equal(t, api.BatchInvalid, status(4))
	require.Equal(t, api.BatchInvalid, status(7))
	fm, mm := fields(4)["items[4].file_id"], fields(7)["items[7].file_id"]
	require.Contains(t, fm, "does not exist")
	require.Equal(t, strings.Replace(mm, fmt.Sprint(missing), "ID", 1), strings.Replace(fm, fmt.Sprint(foreign), "ID", 1))

	require.Equal(t, tasksBefore+3, validateTasks(t, w.env, w.orgAID), "one validation per created version, none for the others")

	// What was written: the job's attributes, the normalised expectations, the new file's type.
	var (
		lang, prio, sha, mime, ftype string
		dueAt                        time.Time
		size                         int64
	)
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT job_language, job_priority, job_due_date, expected_sha256, expected_mime_type, expected_size
		FROM file_versions WHERE id = $1`, out.Items[0].VersionID).Scan(&lang, &prio, &dueAt, &sha, &mime, &size))
	require.Equal(t, []any{"zh", "high", sum, "text/plain", int64(4)}, []any{lang, prio, sha, mime, size})
	require.True(t, dueAt.Equal(time.Date(2026, 12, 31, 18, 0, 0, 0, time.UTC)), dueAt.String())
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT file_type FROM files WHERE id = $1 AND name = 'new/one.json'`, out.Items[1].FileID).Scan(&ftype))
	require.Equal(t, "annotation_results", ftype)
	r = w.orgA.do("GET", fmt.Sprintf("/v1/events?entity_type=file_version&entity_id=%d", out.Items[5].VersionID), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), `"event_type":"uploaded"`)

	// Registering the same paths again (no Idempotency-Key): duplicates of the
	// existing registrations, nothing written.
	var versions int
	count := func() int {
		require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT count(*) FROM file_versions WHERE org_id = $1`, w.orgAID).Scan(&versions))
		return versions
	}
	n := count()
	r = w.orgA.do("POST", path, map[string]any{"items": []any{
		map[string]any{"file_name": "new/one.json", "storage_path": key(1)},
		map[string]any{"file_id": s.FileID, "storage_path": key(0)},
	}})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	again := batchResult(t, r)
	require.Equal(t, 2, again.Duplicate, string(r.Body))
	require.Equal(t, out.Items[1].VersionID, again.Items[0].VersionID)
	require.Equal(t, out.Items[0].VersionID, again.Items[1].VersionID)
	require.Equal(t, n, count())
	require.Equal(t, tasksBefore+3, validateTasks(t, w.env, w.orgAID))
}

// More than 1,000 items, none, or only invalid ones: 422, and nothing written.
func TestBatchRegistrationRefusals(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	path := fmt.Sprintf("/v1/projects/%d/versions:batch", s.ProjectID)
	var before int
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(), `SELECT count(*) FROM files`).Scan(&before))

	items := make([]any, api.MaxBatchItems+1)
	for i := range items {
		items[i] = map[string]any{"file_name": fmt.Sprintf("f%d", i), "storage_path": fmt.Sprintf("orgs/%d/many/%d", w.orgAID, i)}
	}
	requireInvalid(t, w.orgA.do("POST", path, map[string]any{"items": items}), "items", "at most 1000")
	requireInvalid(t, w.orgA.do("POST", path, map[string]any{"items": []any{}}), "items")

	// Every item invalid (one of them creating a file that would be rolled back).
	r := w.orgA.do("POST", path, map[string]any{"items": []any{
		map[string]any{"file_name": "x.txt", "storage_path": "elsewhere/x"},
		map[string]any{"file_id": s.FileID, "storage_path": fmt.Sprintf("orgs/%d/y", w.orgAID), "language": "chinese"},
	}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	f := fieldErrors(t, r)
	require.Contains(t, f, "items[0].storage_path")
	require.Contains(t, f, "items[1].language")
	var after int
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(), `SELECT count(*) FROM files`).Scan(&after))
	require.Equal(t, before, after)

	// The full 1,000 fit in one request (the body cap is 4× the single one).
	long := strings.Repeat("n", 900)
	items = items[:api.MaxBatchItems]
	for i := range items {
		items[i] = map[string]any{"file_name": fmt.Sprintf("%s-%d", long, i), "storage_path": fmt.Sprintf("orgs/%d/%s/%d", w.orgAID, long, i)}
	}
	r = w.orgA.do("POST", path, map[string]any{"items": items})
	require.Equal(t, http.StatusAccepted, r.Status, "%.300s", r.Body)
	require.Equal(t, api.MaxBatchItems, batchResult(t, r).Created)
}

// The same batch with the same Idempotency-Key: the same answer, replayed, and
// nothing new written; the key with another batch is refused.
func TestBatchRegistrationIsIdempotent(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	path := fmt.Sprintf("/v1/projects/%d/versions:batch", s.ProjectID)
	body := map[string]any{"items": []any{
		map[string]any{"file_name": "idem.txt", "storage_path": fmt.Sprintf("orgs/%d/idem/1", w.orgAID)},
		map[string]any{"file_id": s.FileID, "storage_path": fmt.Sprintf("orgs/%d/idem/2", w.orgAID)},
		map[string]any{"file_id": s.FileID, "storage_path": "nope"},
	}}
	first := w.orgA.do("POST", path, body, "Idempotency-Key", "batch-7")
	require.Equal(t, http.StatusAccepted, first.Status, string(first.Body))
	require.Equal(t, 2, batchResult(t, first).Created)
	counts := rowCounts(t, w.env, w.orgAID)

	again := w.orgA.do("POST", path, body, "Idempotency-Key", "batch-7")
	require.Equal(t, http.StatusAccepted, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(first.Body), string(again.Body))
	require.Equal(t, counts, rowCounts(t, w.env, w.orgAID), "a replay writes nothing")

	body["items"] = body["items"].([]any)[:1]
	other := w.orgA.do("POST", path, body, "Idempotency-Key", "batch-7")
	require.Equal(t, http.StatusUnprocessableEntity, other.Status, string(other.Body))
	require.Equal(t, counts, rowCounts(t, w.env, w.orgAID))
}

// A batch into another organization's project is a 404, as every foreign resource.
func TestBatchRegistrationOfAnotherOrgsProject(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	r := w.orgB.do("POST", fmt.Sprintf("/v1/projects/%d/versions:batch", s.ProjectID), map[string]any{"items": []any{
		map[string]any{"file_name": "smuggled.txt", "storage_path": "orgs/2/x"},
	}})
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
}

// Concurrent batches registering the same paths (no Idempotency-Key) make one
// version per path and one file per name: the rest are duplicates.
func TestBatchRegistrationConcurrentBatchesRegisterOnce(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	path := fmt.Sprintf("/v1/projects/%d/versions:batch", s.ProjectID)
	body := map[string]any{"items": []any{
		map[string]any{"file_name": "race.txt", "storage_path": fmt.Sprintf("orgs/%d/race/1", w.orgAID)},
		map[string]any{"file_id": s.FileID, "storage_path": fmt.Sprintf("orgs/%d/race/2", w.orgAID)},
	}}
	results := make([]api.BatchResult, 6)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := w.orgA.do("POST", path, body)
			if r.Status == http.StatusAccepted {
				_ = json.Unmarshal(r.Body, &results[i])
			}
		}()
	}
	wg.Wait()
	created, dup := 0, 0
	for _, res := range results {
		require.Len(t, res.Items, 2, "every batch answered 202")
		created += res.Created
		dup += res.Duplicate
		require.Equal(t, results[0].Items[0].VersionID, res.Items[0].VersionID)
		require.Equal(t, results[0].Items[1].VersionID, res.Items[1].VersionID)
	}
	require.Equal(t, 2, created)
	require.Equal(t, 2*len(results)-2, dup)
	var files, versions int
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(), `SELECT count(*) FROM files WHERE org_id = $1 AND name = 'race.txt'`, w.orgAID).Scan(&files))
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(), `SELECT count(*) FROM file_versions WHERE org_id = $1 AND storage_path LIKE '%/race/%'`, w.orgAID).Scan(&versions))
	require.Equal(t, []int{1, 2}, []int{files, versions})
}
