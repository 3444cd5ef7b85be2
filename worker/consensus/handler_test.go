package consensus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/quality"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/consensus"
)

const config = `{
  "objects": [{"name": "image", "type": "image", "value": "$image"}],
  "controls": [
    {"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", "Person"]},
    {"name": "weather", "type": "choices", "to_name": "image", "labels": ["Sunny", "Rain"]}
  ]
}`

// copyOf is a result with one Car box at x and one weather choice.
func copyOf(x int, weather string) string {
	return fmt.Sprintf(`[
  {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": {"x": %d, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["Car"]}},
  {"from_name": "weather", "to_name": "image", "type": "choices", "value": {"choices": [%q]}}
]`, x, weather)
}

type fixture struct {
	t   *testing.T
	pg  *testenv.PG
	s3  *testenv.S3
	org db.Organization
	pr  db.Project
	h   *consensus.Handler
	n   atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pg := testenv.Postgres(t)
	s3 := testenv.MinIO(t)
	org := pg.Org(t)
	f := &fixture{t: t, pg: pg, s3: s3, org: org, pr: pg.Project(t, org.ID)}
	f.exec(`UPDATE projects SET label_config = $1, overlap = 3 WHERE id = $2`, config, f.pr.ID)
	res := testenv.StorageResolver(t, pg, s3, testenv.StorageKeyring(t))
	log, _ := testenv.Logger(t)
	f.h = consensus.NewHandler(consensus.Deps{Pool: pg.Pool, Store: s3.Store, Storages: res, Log: log})
	return f
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	_, err := f.pg.Pool.Exec(context.Background(), sql, args...)
	require.NoError(f.t, err)
}

func (f *fixture) scalar(sql string, args ...any) int64 {
	f.t.Helper()
	var v int64
	require.NoError(f.t, f.pg.Pool.QueryRow(context.Background(), sql, args...).Scan(&v))
	return v
}

func (f *fixture) job() int64 {
	f.t.Helper()
	file := f.pg.File(f.t, f.pr, "")
	v := f.pg.Upload(f.t, f.s3, file, []byte("x"), testenv.Declared{})
	return f.scalar(`INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id) VALUES ($1, $2, $3, $4) RETURNING id`,
		f.org.ID, f.pr.ID, file.ID, v.ID)
}

// submit stores a validated result and the user's completed copy of the job
// with it.
func (f *fixture) submit(job, user int64, body string) int64 {
	f.t.Helper()
	file, err := f.pg.Q.FileCreate(context.Background(), db.FileCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, Name: fmt.Sprintf("result-%d.json", f.n.Add(1)), FileType: db.FileTypeAnnotationResults,
	})
	require.NoError(f.t, err)
	v := f.pg.Upload(f.t, f.s3, file, []byte(body), testenv.Declared{})
	f.exec(`UPDATE file_versions SET validation_status = 'valid', checksum = $1, size_bytes = $2, validated_at = now() WHERE id = $3`,
		testenv.SHA256Hex([]byte(body)), len(body), v.ID)
	f.exec(`INSERT INTO assignments (org_id, project_id, job_id, user_id, role, status, result_version_id, submitted_at)
		VALUES ($1, $2, $3, $4, 'annotator', 'completed', $5, now())`, f.org.ID, f.pr.ID, job, user, v.ID)
	return v.ID
}

func (f *fixture) read(key string) []byte {
	f.t.Helper()
	obj, err := f.s3.Store.Client.GetObject(context.Background(), f.s3.Store.Bucket, key, minio.GetObjectOptions{})
	require.NoError(f.t, err)
	defer func() { _ = obj.Close() }()
	b, err := io.ReadAll(obj)
	require.NoError(f.t, err)
	return b
}

// TestConsensusOfThreeAnnotators: two annotators agree on every job (same box,
// the true weather), the third puts the box elsewhere and says the opposite.
// Each job's consensus is the agreeing pair's answer (majority and
// Dawid–Skene agree), written as a valid version of "<file>.consensus.json"
// with the medoid's box and the consensus choice; the project's report has
// Fleiss' κ and Krippendorff's α equal to internal/quality's on the same
// answers, the third annotator's low Dawid–Skene accuracy, the score matrix,
// and a copy whose object changed is left out and counted. A second run with
// the same copies writes no new version.
func TestConsensusOfThreeAnnotators(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	a := f.pg.User(t, f.org.ID, testenv.Annotator)
	b := f.pg.User(t, f.org.ID, testenv.Annotator)
	c := f.pg.User(t, f.org.ID, testenv.Annotator)
	truth := []string{"Sunny", "Rain", "Sunny", "Sunny", "Rain", "Sunny"}
	opposite := map[string]string{"Sunny": "Rain", "Rain": "Sunny"}
	var jobs []int64
	var answers []quality.Answer
	for _, w := range truth {
		j := f.job()
		jobs = append(jobs, j)
		f.submit(j, a.ID, copyOf(10, w))
		f.submit(j, b.ID, copyOf(10, w))
		f.submit(j, c.ID, copyOf(70, opposite[w]))
		answers = append(answers, quality.Answer{Item: j, Annotator: a.ID, Value: w},
			quality.Answer{Item: j, Annotator: b.ID, Value: w}, quality.Answer{Item: j, Annotator: c.ID, Value: opposite[w]})
	}
	// A seventh job whose third copy changed after validation: two readable
	// copies remain, and the changed one is counted.
	j7 := f.job()
	f.submit(j7, a.ID, copyOf(10, "Rain"))
	f.submit(j7, b.ID, copyOf(10, "Rain"))
	bad := f.submit(j7, c.ID, copyOf(70, "Sunny"))
	f.exec(`UPDATE file_versions SET checksum = $1 WHERE id = $2`, testenv.SHA256Hex([]byte("something else")), bad)
	answers = append(answers, quality.Answer{Item: j7, Annotator: a.ID, Value: "Rain"}, quality.Answer{Item: j7, Annotator: b.ID, Value: "Rain"})
	// A job with one copy has nothing to compare.
	f.submit(f.job(), a.ID, copyOf(10, "Sunny"))

	rep, err := f.h.Run(ctx, f.pr.ID, "r1")
	require.NoError(t, err)
	require.Equal(t, 7, rep.Jobs)
	require.Equal(t, 20, rep.Copies)
	require.Equal(t, 1, rep.Unreadable)
	require.Equal(t, bad, rep.UnreadableCopies[0].VersionID)
	require.Contains(t, rep.UnreadableCopies[0].Reason, "checksum")
	require.Equal(t, 7, rep.Versions)

	require.Len(t, rep.Controls, 1)
	ctl := rep.Controls[0]
	require.Equal(t, "weather", ctl.Control)
	want, err := quality.NewRatings(answers)
	require.NoError(t, err)
	alpha, err := quality.KrippendorffAlpha(want.ReliabilityData(), quality.Nominal)
	require.NoError(t, err)
	require.NotNil(t, ctl.KrippendorffAlpha)
	require.InDelta(t, alpha.Alpha, ctl.KrippendorffAlpha.Alpha, 1e-12)
	require.Nil(t, ctl.FleissKappa, "job 7 has two answers, the others three: Fleiss' κ needs equal counts")
	require.Nil(t, ctl.CohenKappa, "three annotators")
	require.Zero(t, ctl.Disagreements)
	acc := map[int64]float64{}
	for _, w := range ctl.DawidSkene.Accuracy {
		acc[w.UserID] = w.Value
	}
	require.Greater(t, acc[a.ID], 0.9)
	require.Less(t, acc[c.ID], 0.1, "the third annotator is always wrong")
	// The matrix: a and b agree on all 7 jobs, a and c on none of 6.
	ia, ic := indexOf(ctl.Matrix.Annotators, a.ID), indexOf(ctl.Matrix.Annotators, c.ID)
	require.Equal(t, 7, ctl.Matrix.Pairs[ia][indexOf(ctl.Matrix.Annotators, b.ID)].Items)
	require.InDelta(t, 1, ctl.Matrix.Pairs[ia][indexOf(ctl.Matrix.Annotators, b.ID)].Observed, 1e-12)
	require.InDelta(t, 0, ctl.Matrix.Pairs[ia][ic].Observed, 1e-12)
	sa, sc := indexOf(rep.Scores.Annotators, a.ID), indexOf(rep.Scores.Annotators, c.ID)
	require.InDelta(t, 1, *rep.Scores.Mean[sa][indexOf(rep.Scores.Annotators, b.ID)], 1e-12)
	require.InDelta(t, 0, *rep.Scores.Mean[sa][sc], 1e-12, "wrong box and wrong choice")
	require.Nil(t, rep.Scores.Mean[sa][sa])

	cfg := labelconfig.Config{}
	require.NoError(t, json.Unmarshal([]byte(config), &cfg))
	for i, j := range append(jobs, j7) {
		var key, name, method, status string
		var agreement float64
		require.NoError(t, f.pg.Pool.QueryRow(ctx, `SELECT v.storage_path, f.name, v.generation_method, v.validation_status, c.agreement
			FROM consensus_results c JOIN file_versions v ON v.id = c.version_id JOIN files f ON f.id = v.file_id WHERE c.job_id = $1`, j).
			Scan(&key, &name, &method, &status, &agreement))
		require.True(t, strings.HasSuffix(name, ".consensus.json"), name)
		require.Equal(t, "consensus", method)
		require.Equal(t, "valid", status)
		regions, err := labelconfig.ParseResult(f.read(key))
		require.NoError(t, err)
		require.NoError(t, cfg.Validate(regions, ""))
		w := "Rain"
		if i < len(truth) {
			w = truth[i]
			require.InDelta(t, 1.0/3, agreement, 1e-9, "job %d: one pair of three agrees", j)
		} else {
			require.InDelta(t, 1, agreement, 1e-9)
		}
		res, err := quality.Score(cfg, regions, mustParse(t, copyOf(10, w)), quality.Options{})
		require.NoError(t, err)
		require.InDelta(t, 1, res.Score, 1e-12, "job %d: the consensus is the agreeing pair's answer", j)
	}
	var agreeRep json.RawMessage
	require.NoError(t, f.pg.Pool.QueryRow(ctx, `SELECT report FROM project_agreement WHERE project_id = $1`, f.pr.ID).Scan(&agreeRep))
	require.Contains(t, string(agreeRep), `"krippendorff_alpha"`)
	require.EqualValues(t, 1, f.scalar(`SELECT count(*) FROM event_log WHERE entity_id = $1 AND event_type = 'consensus_completed'`, f.pr.ID))

	versions := f.scalar(`SELECT count(*) FROM file_versions WHERE generation_method = 'consensus'`)
	rep, err = f.h.Run(ctx, f.pr.ID, "r2")
	require.NoError(t, err)
	require.Zero(t, rep.Versions, "nothing changed")
	require.Equal(t, versions, f.scalar(`SELECT count(*) FROM file_versions WHERE generation_method = 'consensus'`))
	require.EqualValues(t, 7, f.scalar(`SELECT count(*) FROM consensus_results WHERE run_id = 'r2'`))
}

// TestCohensKappaOfTwoAnnotators: two annotators on four jobs, answers
// S S R R and S R R R: observed 3/4, chance 1/2, κ = 0.5 (worked by hand).
// Fleiss' κ applies too (two answers per job).
func TestCohensKappaOfTwoAnnotators(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.pg.User(t, f.org.ID, testenv.Annotator)
	b := f.pg.User(t, f.org.ID, testenv.Annotator)
	for i, pair := range [][2]string{{"Sunny", "Sunny"}, {"Sunny", "Rain"}, {"Rain", "Rain"}, {"Rain", "Rain"}} {
		j := f.job()
		f.submit(j, a.ID, copyOf(10+i, pair[0]))
		f.submit(j, b.ID, copyOf(10+i, pair[1]))
	}
	rep, err := f.h.Run(context.Background(), f.pr.ID, "k")
	require.NoError(t, err)
	ctl := rep.Controls[0]
	require.NotNil(t, ctl.CohenKappa)
	require.InDelta(t, 0.5, ctl.CohenKappa.Kappa, 1e-12)
	require.InDelta(t, 0.75, ctl.CohenKappa.Observed, 1e-12)
	require.NotNil(t, ctl.FleissKappa)
	require.False(t, math.IsNaN(ctl.FleissKappa.Kappa))
}

// TestNoLabelConfigIsPermanent: without a label config nothing can be
// compared; the task is not retried.
func TestNoLabelConfigIsPermanent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.exec(`UPDATE projects SET label_config = NULL WHERE id = $1`, f.pr.ID)
	_, err := f.h.Run(context.Background(), f.pr.ID, "x")
	require.Error(t, err)
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.Contains(t, err.Error(), "label config")
}

func indexOf(ids []int64, id int64) int {
	for i, v := range ids {
		if v == id {
			return i
		}
	}
	panic(fmt.Sprintf("%d not in %v", id, ids))
}

func mustParse(t *testing.T, s string) []labelconfig.Region {
	t.Helper()
	r, err := labelconfig.ParseResult([]byte(s))
	require.NoError(t, err)
	return r
}
