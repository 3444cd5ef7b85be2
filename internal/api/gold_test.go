package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/testenv"
)

// goldMarker is a coordinate only the gold answer holds.
const goldMarker = "13.579246"

func goldBody(label string) map[string]any {
	return map[string]any{"result": []any{map[string]any{
		"from_name": "label", "to_name": "image", "type": "rectanglelabels",
		"value": map[string]any{"x": 13.579246, "y": 20, "width": 30, "height": 40, "rectanglelabels": []string{label}},
	}}}
}

// TestGoldAnswerIsWriteOnly: a gold answer is checked against the label
// config, marks the job gold, and is never read back: not by any GET route,
// not in any row of any other table (events, outbox, webhooks), not in the
// logs; the API's database role cannot SELECT the table that holds it, with
// or without its tenant role set; another organization can neither set nor
// remove it.
func TestGoldAnswerIsWriteOnly(t *testing.T) {
	t.Parallel()
	log, logs := testenv.Logger(t)
	w := newFixtureLogging(t, secretKey(), log)
	s := w.seed(t)
	path := fmt.Sprintf("/v1/jobs/%d/gold", s.JobID)
	ctx := context.Background()

	r := w.orgA.do("PUT", path, goldBody("Truck"))
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "Truck")
	r = w.orgA.do("PUT", path, map[string]any{"result": map[string]any{"x": 1}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "list of regions")
	r = w.orgA.do("PUT", path, map[string]any{})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	r = w.orgB.do("PUT", path, goldBody("Car"))
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
	var n int
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT count(*) FROM gold_answers`).Scan(&n))
	require.Zero(t, n, "refused answers are not stored")

	r = w.orgA.do("PUT", path, goldBody("Car"))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, true, r.json(t)["gold"])
	require.NotContains(t, string(r.Body), goldMarker)
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT count(*) FROM gold_answers WHERE job_id = $1 AND result::text LIKE '%'||$2||'%'`, s.JobID, goldMarker).Scan(&n))
	require.Equal(t, 1, n, "the answer is stored")

	// Every read route, with every path parameter filled.
	reads := 0
	for _, rt := range (&api.Server{}).Routes() {
		if rt.Method != "GET" || strings.Contains(rt.Path, "{task_id}") {
			continue
		}
		r := w.orgA.do("GET", s.fill(rt.Path), nil)
		require.NotContains(t, string(r.Body), goldMarker, "%s %s", rt.Method, rt.Path)
		if r.Status == http.StatusOK {
			reads++
		}
	}
	require.Greater(t, reads, 20, "the read routes answered")
	r = w.orgA.do("GET", fmt.Sprintf("/v1/projects/%d/jobs", s.ProjectID), nil)
	require.Contains(t, string(r.Body), `"gold":true`)

	// No other table holds the answer.
	rows, err := w.env.PG.Pool.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'gold_answers'`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "event_log")
	for _, tb := range tables {
		var hit bool
		require.NoError(t, w.env.PG.Pool.QueryRow(ctx,
			fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s t WHERE t::text LIKE '%%'||$1||'%%')`, pgx.Identifier{tb}.Sanitize()), goldMarker).Scan(&hit))
		require.False(t, hit, "table %s holds the gold answer", tb)
	}
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT count(*) FROM event_log WHERE entity_id = $1 AND event_type = 'gold_set'`, s.JobID).Scan(&n))
	require.Equal(t, 1, n, "the change is in the event log, without the answer")
	require.NotEmpty(t, logs.String(), "the requests were logged")
	require.False(t, logs.Contains(goldMarker), "the logs hold the gold answer")

	// The API's role has no grant on the table: a 42501 however it asks.
	var pgErr *pgconn.PgError
	_, err = w.env.PG.APIPool.Exec(ctx, `SELECT result FROM gold_answers`)
	require.True(t, errors.As(err, &pgErr), "%v", err)
	require.Equal(t, "42501", pgErr.Code, pgErr.Message)
	tx, err := w.env.PG.APIPool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT set_config('labelq.org_id', $1, true), set_config('role', 'labelq_api', true)`, fmt.Sprint(w.orgAID))
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT count(*) FROM gold_answers`)
	require.True(t, errors.As(err, &pgErr), "%v", err)
	require.Equal(t, "42501", pgErr.Code, pgErr.Message)

	// Removal: org B cannot; org A can, once.
	r = w.orgB.do("DELETE", path, nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
	r = w.orgA.do("DELETE", path, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, false, r.json(t)["gold"])
	r = w.orgA.do("DELETE", path, nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT count(*) FROM gold_answers`).Scan(&n))
	require.Zero(t, n)
}

// TestGoldNeedsALabelConfig: without a label config there is nothing to
// check or score a gold answer with: a 409 saying what to do.
func TestGoldNeedsALabelConfig(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	f := newResultFixture(t, w, lsObjectDetection, []byte("gold image"))
	_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE projects SET label_config = NULL WHERE id = $1`, f.pid)
	require.NoError(t, err)
	r := w.orgA.do("PUT", fmt.Sprintf("/v1/jobs/%d/gold", f.jobID), goldBody("Car"))
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "label-config")
}

// TestProjectQualitySettings: the quality settings are set, read back, and
// checked.
func TestProjectQualitySettings(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "q", "overlap": 3, "gold_rate": 0.1})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	p := r.json(t)
	require.EqualValues(t, 3, p["overlap"])
	require.EqualValues(t, 0.1, p["gold_rate"])
	require.EqualValues(t, 0.5, p["quality_iou_threshold"])
	require.EqualValues(t, 0.8, p["quality_pass_threshold"])
	require.EqualValues(t, 2, p["quality_prior_alpha"])
	pid := id(t, r)
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/projects/%d", pid), map[string]any{"quality_iou_threshold": 0.7, "quality_prior_beta": 5})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.EqualValues(t, 0.7, r.json(t)["quality_iou_threshold"])
	require.EqualValues(t, 5, r.json(t)["quality_prior_beta"])
	require.EqualValues(t, 3, r.json(t)["overlap"], "absent fields keep their value")
	for field, bad := range map[string]any{"overlap": 0, "gold_rate": 1.5, "quality_iou_threshold": 0, "quality_pass_threshold": -0.1, "quality_prior_alpha": 0} {
		r = w.orgA.do("PATCH", fmt.Sprintf("/v1/projects/%d", pid), map[string]any{field: bad})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s=%v: %s", field, bad, r.Body)
		require.Equal(t, field, r.json(t)["errors"].([]any)[0].(map[string]any)["field"])
	}
}
