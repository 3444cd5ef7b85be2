package score_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/score"
)

const config = `{
  "objects": [{"name": "image", "type": "image", "value": "$image"}],
  "controls": [
    {"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", "Person"]},
    {"name": "weather", "type": "choices", "to_name": "image", "labels": ["Sunny", "Rain"]}
  ]
}`

// A gold answer: one Car box and the choice Sunny.
const gold = `[
  {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["Car"]}},
  {"from_name": "weather", "to_name": "image", "type": "choices", "value": {"choices": ["Sunny"]}}
]`

// right is the gold answer itself; wrong has the box elsewhere and Rain.
const (
	right = gold
	wrong = `[
  {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": {"x": 70, "y": 70, "width": 20, "height": 20, "rectanglelabels": ["Car"]}},
  {"from_name": "weather", "to_name": "image", "type": "choices", "value": {"choices": ["Rain"]}}
]`
)

type fixture struct {
	t   *testing.T
	pg  *testenv.PG
	s3  *testenv.S3
	org db.Organization
	pr  db.Project
	h   *score.Handler
	n   atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pg := testenv.Postgres(t)
	s3 := testenv.MinIO(t)
	org := pg.Org(t)
	f := &fixture{t: t, pg: pg, s3: s3, org: org, pr: pg.Project(t, org.ID)}
	f.exec(`UPDATE projects SET label_config = $1 WHERE id = $2`, config, f.pr.ID)
	res := testenv.StorageResolver(t, pg, s3, testenv.StorageKeyring(t))
	f.h = score.NewHandler(score.Deps{Pool: pg.Pool, Storages: res, Log: testenv.Quiet()})
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

// job makes a dataset file with an annotation job, with the gold answer when
// one is given (written as the scoring worker's role would find it).
func (f *fixture) job(goldAnswer string) int64 {
	f.t.Helper()
	file := f.pg.File(f.t, f.pr, "")
	v := f.pg.Upload(f.t, f.s3, file, []byte("x"), testenv.Declared{})
	id := f.scalar(`INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id, gold) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		f.org.ID, f.pr.ID, file.ID, v.ID, goldAnswer != "")
	if goldAnswer != "" {
		f.exec(`INSERT INTO gold_answers (job_id, org_id, project_id, result) VALUES ($1, $2, $3, $4)`, id, f.org.ID, f.pr.ID, goldAnswer)
	}
	return id
}

// result stores a validated annotation_results version.
func (f *fixture) result(body string) int64 {
	f.t.Helper()
	file, err := f.pg.Q.FileCreate(context.Background(), db.FileCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, Name: fmt.Sprintf("result-%d.json", f.n.Add(1)), FileType: db.FileTypeAnnotationResults,
	})
	require.NoError(f.t, err)
	v := f.pg.Upload(f.t, f.s3, file, []byte(body), testenv.Declared{})
	f.exec(`UPDATE file_versions SET validation_status = 'valid', checksum = $1, size_bytes = $2, validated_at = now() WHERE id = $3`,
		testenv.SHA256Hex([]byte(body)), len(body), v.ID)
	return v.ID
}

func (f *fixture) submission(job, user, version int64, kind string) int64 {
	f.t.Helper()
	return f.scalar(`INSERT INTO submissions (org_id, project_id, job_id, user_id, result_version_id, kind) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		f.org.ID, f.pr.ID, job, user, version, kind)
}

func (f *fixture) user() db.User { return f.pg.User(f.t, f.org.ID, testenv.Annotator) }

// TestGoldScoreFeedsTheQARate: an annotator who always matches gold and one who
// never does, 20 gold jobs each: every submission completes with score 1 or 0
// (the box's F1 and the choice's accuracy, averaged), passes or fails, and
// after each one the annotator's qa_approval_rate is the Beta(2, 2) posterior
// mean of the passes and failures so far and skill_score the mean gold score;
// the good one ranks first.
func TestGoldScoreFeedsTheQARate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good, bad := f.user(), f.user()
	rightV, wrongV := f.result(right), f.result(wrong)
	ctx := context.Background()
	for i := 1; i <= 20; i++ {
		job := f.job(gold)
		for _, c := range []struct {
			u       db.User
			version int64
			score   float64
		}{{good, rightV, 1}, {bad, wrongV, 0}} {
			out, err := f.h.Run(ctx, f.submission(job, c.u.ID, c.version, "gold"))
			require.NoError(t, err)
			s := out.Submission
			require.Equal(t, db.SubmissionStatusCompleted, s.Status, "reason: %v", s.Reason)
			require.InDelta(t, c.score, *s.Score, 1e-9)
			require.Equal(t, c.score == 1, *s.Passed)
			require.Equal(t, "mean(label:f1@iou0.5,weather:accuracy)", *s.Metric)
			passes := 0 // the good one passes every time, the bad one never
			if c.score == 1 {
				passes = i
			}
			want := (2 + float64(passes)) / (4 + float64(i))
			require.InDelta(t, want, *out.QA, 1e-12, "user %d after %d gold jobs", c.u.ID, i)
			require.InDelta(t, c.score, *out.Skill, 1e-12)
			u, err := f.pg.Q.UserGet(ctx, db.UserGetParams{ID: c.u.ID, OrgID: f.org.ID})
			require.NoError(t, err)
			require.InDelta(t, want, *u.QaApprovalRate, 1e-12)
		}
	}
	// 22/24 and 2/24, as Beta(2+20, 2) and Beta(2, 2+20) say.
	require.InDelta(t, 22.0/24, score.Posterior(2, 2, 20, 0), 1e-15)
	var rank int32
	require.NoError(t, f.pg.Pool.QueryRow(ctx, `SELECT rank FROM submissions WHERE user_id = $1 ORDER BY id DESC LIMIT 1`, good.ID).Scan(&rank))
	require.Equal(t, int32(1), rank)
	require.NoError(t, f.pg.Pool.QueryRow(ctx, `SELECT rank FROM submissions WHERE user_id = $1 ORDER BY id DESC LIMIT 1`, bad.ID).Scan(&rank))
	require.Equal(t, int32(2), rank)
	// Every scored gold submission wrote one quality_updated event on its user.
	require.Equal(t, int64(40), f.scalar(`SELECT count(*) FROM event_log WHERE event_type = 'quality_updated' AND entity_id IN ($1, $2)`, good.ID, bad.ID))
}

// TestRedeliveredTaskChangesNothing: a second run of a completed submission
// writes nothing.
func TestRedeliveredTaskChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := f.user()
	id := f.submission(f.job(gold), u.ID, f.result(right), "gold")
	_, err := f.h.Run(context.Background(), id)
	require.NoError(t, err)
	out, err := f.h.Run(context.Background(), id)
	require.NoError(t, err)
	require.True(t, out.Skipped)
	require.Equal(t, int64(1), f.scalar(`SELECT count(*) FROM event_log WHERE event_type = 'quality_updated' AND entity_id = $1`, u.ID))
	require.Equal(t, int64(1), f.scalar(`SELECT attempts FROM submissions WHERE id = $1`, id))
}

// TestUnscorableResultsFail: results that can never be scored end failed with
// a reason a person can act on, and no QA rate changes.
func TestUnscorableResultsFail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := f.user()
	cases := []struct {
		name, body, want string
		noGold           bool
	}{
		{"not JSON", `not json`, "is not a Label Studio result", false},
		{"unknown label", `[{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 2, "height": 2, "rectanglelabels": ["Truck"]}}]`, "does not fit the project's label config", false},
		{"x = 140", `[{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": {"x": 140, "y": 1, "width": 2, "height": 2, "rectanglelabels": ["Car"]}}]`, "value.x", false},
		{"gold removed", right, "has no gold answer any more", true},
	}
	for _, c := range cases {
		goldAnswer := gold
		if c.noGold {
			goldAnswer = ""
		}
		id := f.submission(f.job(goldAnswer), u.ID, f.result(c.body), "gold")
		out, err := f.h.Run(context.Background(), id)
		require.NoError(t, err, c.name)
		require.Equal(t, db.SubmissionStatusFailed, out.Submission.Status, c.name)
		require.Contains(t, *out.Submission.Reason, c.want, c.name)
	}
	after, err := f.pg.Q.UserGet(context.Background(), db.UserGetParams{ID: u.ID, OrgID: f.org.ID})
	require.NoError(t, err)
	require.InDelta(t, 0.9, *after.QaApprovalRate, 1e-12, "failed submissions change no QA rate")
	require.Equal(t, int64(4), f.scalar(`SELECT count(*) FROM event_log WHERE entity_type = 'submission' AND event_type = 'failed'`+
		` AND entity_id IN (SELECT id FROM submissions WHERE user_id = $1)`, u.ID))
}

// TestChangedObjectIsNotScored: a result whose object no longer matches its
// checksum fails instead of being scored on other bytes.
func TestChangedObjectIsNotScored(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := f.user()
	v := f.result(right)
	f.exec(`UPDATE file_versions SET checksum = $1 WHERE id = $2`, testenv.SHA256Hex([]byte("other")), v)
	out, err := f.h.Run(context.Background(), f.submission(f.job(gold), u.ID, v, "gold"))
	require.NoError(t, err)
	require.Equal(t, db.SubmissionStatusFailed, out.Submission.Status)
	require.Contains(t, *out.Submission.Reason, "no longer matches its recorded checksum")
}

// TestPeerScoreIsTheMeanOverTheOtherCopies: three copies of a job, two equal
// and one different: each copy's peer score is its mean score against the
// other two.
func TestPeerScoreIsTheMeanOverTheOtherCopies(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.exec(`UPDATE projects SET overlap = 3 WHERE id = $1`, f.pr.ID)
	job := f.job("")
	users := []db.User{f.user(), f.user(), f.user()}
	versions := []int64{f.result(right), f.result(right), f.result(wrong)}
	var subs []int64
	for i, u := range users {
		f.scalar(`INSERT INTO assignments (org_id, project_id, job_id, user_id, role, status, result_version_id, submitted_at)
			VALUES ($1, $2, $3, $4, 'annotator', 'completed', $5, now()) RETURNING id`, f.org.ID, f.pr.ID, job, u.ID, versions[i])
		subs = append(subs, f.submission(job, u.ID, versions[i], "peer"))
	}
	want := []float64{0.5, 0.5, 0} // right vs {right, wrong}; wrong vs {right, right}
	for i, id := range subs {
		out, err := f.h.Run(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, db.SubmissionStatusCompleted, out.Submission.Status, "reason: %v", out.Submission.Reason)
		require.InDelta(t, want[i], *out.Submission.Score, 1e-9, "copy %d", i)
		require.Nil(t, out.Submission.Passed, "peer submissions pass nothing")
		require.Nil(t, out.QA, "peer scores leave the QA rate alone")
		var detail struct {
			Peers []struct {
				UserID int64   `json:"user_id"`
				Score  float64 `json:"score"`
			} `json:"peers"`
		}
		require.NoError(t, json.Unmarshal(out.Submission.Detail, &detail))
		require.Len(t, detail.Peers, 2)
		for _, p := range detail.Peers {
			require.NotEqual(t, users[i].ID, p.UserID)
		}
	}
}

// TestPeerScoresQueueOneConsensusPerWindow: the peer submissions completed in
// one window queue one project:consensus, due when the window closes plus the
// settle time; a completion in the next window queues the next run; gold
// submissions queue none.
func TestPeerScoresQueueOneConsensusPerWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.exec(`UPDATE projects SET overlap = 2 WHERE id = $1`, f.pr.ID)
	var now atomic.Int64
	start := time.Date(2026, 12, 7, 10, 0, 12, 0, time.UTC)
	now.Store(start.UnixNano())
	h := score.NewHandler(score.Deps{Pool: f.pg.Pool, Storages: testenv.StorageResolver(t, f.pg, f.s3, testenv.StorageKeyring(t)),
		Log: testenv.Quiet(), Now: func() time.Time { return time.Unix(0, now.Load()).UTC() }})

	// peerJob makes a job with two completed copies and their peer submissions.
	peerJob := func() []int64 {
		job := f.job("")
		var subs []int64
		for _, body := range []string{right, wrong} {
			u, v := f.user(), f.result(body)
			f.scalar(`INSERT INTO assignments (org_id, project_id, job_id, user_id, role, status, result_version_id, submitted_at)
				VALUES ($1, $2, $3, $4, 'annotator', 'completed', $5, now()) RETURNING id`, f.org.ID, f.pr.ID, job, u.ID, v)
			subs = append(subs, f.submission(job, u.ID, v, "peer"))
		}
		return subs
	}
	runs := func() []time.Time {
		rows, err := f.pg.Pool.Query(context.Background(),
			`SELECT available_at FROM outbox WHERE task_type = 'project:consensus' AND subject_id = $1 ORDER BY available_at`, f.pr.ID)
		require.NoError(t, err)
		at, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		require.NoError(t, err)
		return at
	}
	scoreAll := func(ids ...int64) {
		for _, id := range ids {
			out, err := h.Run(context.Background(), id)
			require.NoError(t, err)
			require.Equal(t, db.SubmissionStatusCompleted, out.Submission.Status, "reason: %v", out.Submission.Reason)
		}
	}

	gold := f.job(right)
	scoreAll(f.submission(gold, f.user().ID, f.result(right), "gold"))
	require.Empty(t, runs(), "a gold submission queues no consensus")

	scoreAll(peerJob()...)
	now.Store(start.Add(40 * time.Second).UnixNano()) // 10:00:52, same window
	scoreAll(peerJob()...)
	windowEnd := time.Date(2026, 12, 7, 10, 1, 0, 0, time.UTC)
	got := runs()
	require.Len(t, got, 1, "four peer completions in one window queue one run")
	require.True(t, got[0].Equal(windowEnd.Add(score.ConsensusSettle)), "due %s, want %s", got[0], windowEnd.Add(score.ConsensusSettle))

	now.Store(start.Add(70 * time.Second).UnixNano()) // 10:01:22, the next window
	scoreAll(peerJob()[0])
	got = runs()
	require.Len(t, got, 2)
	require.True(t, got[1].Equal(windowEnd.Add(score.ConsensusWindow+score.ConsensusSettle)), "due %s", got[1])
}
