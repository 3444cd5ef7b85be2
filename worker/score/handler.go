package score

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/quality"
	"github.com/labelq/labelq/internal/resultcheck"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
)

// EventQualityUpdated is written on a user when a scored gold submission sets
// their qa_approval_rate and skill_score.
const EventQualityUpdated = "quality_updated"

// Deps are the handler's dependencies.
type Deps struct {
	Pool *pgxpool.Pool
	// Storages reaches the bucket of each result version.
	Storages *storage.Resolver
	Log      *slog.Logger
	// Now stamps events; nil means time.Now.
	Now func() time.Time
}

// Handler is the job:score handler.
type Handler struct {
	pool     *pgxpool.Pool
	storages *storage.Resolver
	log      *slog.Logger
	now      func() time.Time
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler {
	h := &Handler{pool: d.Pool, storages: d.Storages, log: d.Log, now: d.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// unscorable is a result that can never be scored: the submission fails with
// the reason and the task is not retried.
type unscorable struct{ reason string }

func (e *unscorable) Error() string { return e.reason }

func badf(format string, args ...any) error { return &unscorable{reason: fmt.Sprintf(format, args...)} }

// Outcome is what one run did, for tests and logs.
type Outcome struct {
	Submission db.Submission
	// Skipped: the submission was already completed or failed (a redelivered
	// task), and nothing was written.
	Skipped bool
	// QA and Skill are the annotator's values after a scored gold submission.
	QA, Skill *float64
}

// Work scores the task's submission. Mount it with tasks.Register.
func (h *Handler) Work(ctx context.Context, args tasks.Score) error {
	_, err := h.Run(ctx, args.SubmissionID)
	return err
}

// Run scores submission id.
func (h *Handler) Run(ctx context.Context, id int64) (Outcome, error) {
	sub, err := db.New(h.pool).SubmissionStart(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		// Completed or failed already, or no such row (its job was deleted).
		return Outcome{Skipped: true}, nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("start submission %d: %w", id, err)
	}
	log := h.log.With(slog.Int64("submission_id", id), slog.Int64("job_id", sub.JobID), slog.Int64("user_id", sub.UserID), slog.String("kind", string(sub.Kind)))
	res, err := h.score(ctx, sub)
	var bad *unscorable
	if errors.As(err, &bad) {
		out, ferr := h.fail(ctx, sub, bad.reason)
		if ferr != nil {
			return Outcome{}, ferr
		}
		log.WarnContext(ctx, "submission failed", slog.String("reason", bad.reason))
		return out, nil
	}
	if err != nil {
		if sub.Attempts >= int32(tasks.Score{}.InsertOpts().MaxRetry)+1 {
			out, ferr := h.fail(ctx, sub, "could not be scored after "+fmt.Sprint(sub.Attempts)+" attempts: "+err.Error())
			if ferr != nil {
				return Outcome{}, ferr
			}
			return out, nil
		}
		return Outcome{}, err
	}
	out, err := h.complete(ctx, sub, res)
	if err != nil {
		return Outcome{}, err
	}
	log.InfoContext(ctx, "submission scored", slog.Float64("score", res.Score), slog.String("metric", res.Metric))
	return out, nil
}

// scored is a submission's score before it is written.
type scored struct {
	Score  float64
	Metric string
	Detail json.RawMessage
	inputs db.SubmissionScoringInputsRow
}

// score reads what the submission needs and computes its score; it writes
// nothing.
func (h *Handler) score(ctx context.Context, sub db.Submission) (scored, error) {
	q := db.New(h.pool)
	in, err := q.SubmissionScoringInputs(ctx, sub.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return scored{}, badf("the job, project or result version of submission %d no longer exists", sub.ID)
	}
	if err != nil {
		return scored{}, fmt.Errorf("read submission %d's job and project: %w", sub.ID, err)
	}
	if len(in.LabelConfig) == 0 || string(in.LabelConfig) == "null" {
		return scored{}, badf("project %d has no label config: results are scored per control of the label config; set it with PUT /v1/projects/%d/label-config", sub.ProjectID, sub.ProjectID)
	}
	cfg, err := labelconfig.Parse(in.LabelConfig)
	if err != nil {
		return scored{}, badf("project %d's label config is not valid (%v); set it again", sub.ProjectID, err)
	}
	got, err := h.readRegions(ctx, cfg, "result version "+fmt.Sprint(sub.ResultVersionID), in.StorageID, in.StoragePath, in.Checksum, in.SizeBytes)
	if err != nil {
		return scored{}, err
	}
	opts := quality.Options{IoUThreshold: in.QualityIouThreshold}
	switch sub.Kind {
	case db.SubmissionKindGold:
		raw := in.GoldResult
		if len(raw) == 0 {
			return scored{}, badf("job %d has no gold answer any more (it was removed after the result was submitted)", sub.JobID)
		}
		ref, err := labelconfig.ParseResult(raw)
		if err != nil {
			return scored{}, badf("the gold answer of job %d is not a Label Studio result (%v); set it again with PUT /v1/jobs/%d/gold", sub.JobID, err, sub.JobID)
		}
		r, err := quality.Score(cfg, got, ref, opts)
		if err != nil {
			return scored{}, badf("result version %d cannot be scored against the gold answer: %v", sub.ResultVersionID, err)
		}
		detail, err := json.Marshal(r)
		if err != nil {
			return scored{}, fmt.Errorf("encode the score detail: %w", err)
		}
		return scored{Score: r.Score, Metric: r.Metric, Detail: detail, inputs: in}, nil
	default: // peer
		peers, err := q.SubmissionPeerResults(ctx, db.SubmissionPeerResultsParams{JobID: sub.JobID, UserID: sub.UserID})
		if err != nil {
			return scored{}, fmt.Errorf("read the other copies of job %d: %w", sub.JobID, err)
		}
		if len(peers) == 0 {
			return scored{}, badf("job %d has no other submitted copy to compare with", sub.JobID)
		}
		type peerScore struct {
			UserID          int64          `json:"user_id"`
			ResultVersionID int64          `json:"result_version_id"`
			Score           float64        `json:"score"`
			Detail          quality.Result `json:"detail"`
		}
		var sum float64
		var metric string
		ps := make([]peerScore, 0, len(peers))
		for _, p := range peers {
			ref, err := h.readRegions(ctx, cfg, fmt.Sprintf("user %d's result version %d", p.UserID, p.ResultVersionID), p.StorageID, p.StoragePath, p.Checksum, p.SizeBytes)
			if err != nil {
				var bad *unscorable
				if errors.As(err, &bad) {
					// Another copy's fault: its own submission says so.
					continue
				}
				return scored{}, err
			}
			r, err := quality.Score(cfg, got, ref, opts)
			if err != nil {
				return scored{}, badf("result version %d cannot be scored against user %d's: %v", sub.ResultVersionID, p.UserID, err)
			}
			sum += r.Score
			metric = r.Metric
			ps = append(ps, peerScore{UserID: p.UserID, ResultVersionID: p.ResultVersionID, Score: r.Score, Detail: r})
		}
		if len(ps) == 0 {
			return scored{}, badf("no other copy of job %d is a result that can be scored", sub.JobID)
		}
		detail, err := json.Marshal(map[string]any{"peers": ps})
		if err != nil {
			return scored{}, fmt.Errorf("encode the score detail: %w", err)
		}
		return scored{Score: sum / float64(len(ps)), Metric: "peer_mean:" + metric, Detail: detail, inputs: in}, nil
	}
}

// readRegions reads a result version from its bucket, checked against its
// recorded checksum, and parses it under the config
// (resultcheck.ReadMeasured); a result that cannot be read as it is makes the
// submission unscorable.
func (h *Handler) readRegions(ctx context.Context, cfg labelconfig.Config, what string, storageID *int64, key string, checksum *string, size *int64) ([]labelconfig.Region, error) {
	regions, err := resultcheck.ReadMeasured(ctx, h.storages, cfg, resultcheck.Measured{What: what, StorageID: storageID, Key: key, Checksum: checksum, Size: size})
	var bad *resultcheck.Unreadable
	if errors.As(err, &bad) {
		return nil, badf("%s", bad.Reason)
	}
	return regions, err
}

// complete writes the score, the rank and, for gold, the annotator's new QA
// rate and skill score, with their events, in one transaction.
func (h *Handler) complete(ctx context.Context, sub db.Submission, s scored) (Outcome, error) {
	var out Outcome
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		var passed *bool
		if sub.Kind == db.SubmissionKindGold {
			p := s.Score >= s.inputs.QualityPassThreshold
			passed = &p
		}
		metric := s.Metric
		row, err := q.SubmissionComplete(ctx, db.SubmissionCompleteParams{ID: sub.ID, Score: &s.Score, Passed: passed, Metric: &metric, Detail: s.Detail})
		if errors.Is(err, pgx.ErrNoRows) {
			out.Skipped = true // another run finished it meanwhile
			return nil
		}
		if err != nil {
			return fmt.Errorf("complete submission %d: %w", sub.ID, err)
		}
		rank, err := q.ScoreTallyAdd(ctx, db.ScoreTallyAddParams{ProjectID: sub.ProjectID, UserID: sub.UserID, OrgID: sub.OrgID, Score: s.Score})
		if err != nil {
			return fmt.Errorf("rank user %d: %w", sub.UserID, err)
		}
		if err := q.SubmissionSetRank(ctx, db.SubmissionSetRankParams{ID: sub.ID, Rank: &rank}); err != nil {
			return fmt.Errorf("rank submission %d: %w", sub.ID, err)
		}
		row.Rank = &rank
		if sub.Kind == db.SubmissionKindGold {
			if out.QA, out.Skill, err = h.updateUser(ctx, q, sub, s.inputs); err != nil {
				return err
			}
		}
		out.Submission = row
		if sub.Kind == db.SubmissionKindPeer {
			if err := queueConsensus(ctx, q, sub, h.now()); err != nil {
				return err
			}
		}
		return emit(ctx, q, row, out.QA, out.Skill)
	})
	return out, err
}

// ConsensusWindow debounces the project:consensus that peer scoring queues: the
// peer submissions completed in one window of a project queue one run, which
// starts ConsensusSettle after the window closes, so a burst of completions is
// measured once, with all of them in.
const (
	ConsensusWindow = time.Minute
	ConsensusSettle = 5 * time.Second
)

// queueConsensus queues the project's automatic consensus run for the window
// now falls in, unless a peer submission of the window already did: the
// agreement report and consensus results follow the copies that come in
// without anyone asking (POST /v1/projects/{id}/consensus still runs one at
// once).
func queueConsensus(ctx context.Context, q *db.Queries, sub db.Submission, now time.Time) error {
	end := now.Truncate(ConsensusWindow).Add(ConsensusWindow)
	next := tasks.Consensus{ProjectID: sub.ProjectID, Run: fmt.Sprintf("auto-%d", end.Unix())}
	queued, err := q.OutboxHasTask(ctx, next.TaskID())
	if err != nil {
		return fmt.Errorf("look for project %d's consensus run: %w", sub.ProjectID, err)
	}
	if queued {
		return nil
	}
	return outbox.Add(ctx, q, sub.OrgID, next, outbox.At(end.Add(ConsensusSettle)))
}

// updateUser sets the annotator's QA rate to the Beta posterior mean of their
// gold passes and failures in the project, and their skill score to their mean
// gold score.
func (h *Handler) updateUser(ctx context.Context, q *db.Queries, sub db.Submission, in db.SubmissionScoringInputsRow) (*float64, *float64, error) {
	st, err := q.SubmissionGoldStats(ctx, db.SubmissionGoldStatsParams{ProjectID: sub.ProjectID, UserID: sub.UserID})
	if err != nil {
		return nil, nil, fmt.Errorf("read user %d's gold results: %w", sub.UserID, err)
	}
	qa := Posterior(in.QualityPriorAlpha, in.QualityPriorBeta, int(st.Passed), int(st.Failed))
	skill := st.MeanScore
	u, err := q.UserSetQuality(ctx, db.UserSetQualityParams{ID: sub.UserID, QaApprovalRate: &qa, SkillScore: &skill})
	if err != nil {
		return nil, nil, fmt.Errorf("update user %d's QA rate: %w", sub.UserID, err)
	}
	meta, err := json.Marshal(map[string]any{
		"by": "job:score", "submission_id": sub.ID, "project_id": sub.ProjectID,
		"qa_approval_rate": qa, "skill_score": skill, "gold_passed": st.Passed, "gold_failed": st.Failed,
		"prior": []float64{in.QualityPriorAlpha, in.QualityPriorBeta}, "pass_threshold": in.QualityPassThreshold,
	})
	if err != nil {
		return nil, nil, err
	}
	key := fmt.Sprintf("submission:%d:quality", sub.ID)
	if err := q.EventLogInsert(ctx, db.EventLogInsertParams{OrgID: u.OrgID, EntityType: db.EntityTypeUser, EntityID: u.ID, EventType: EventQualityUpdated, DedupKey: &key, Metadata: meta}); err != nil {
		return nil, nil, fmt.Errorf("write user %d's quality event: %w", sub.UserID, err)
	}
	return &qa, &skill, nil
}

// Posterior is the mean of the Beta(alpha, beta) prior updated with passes and
// failures: (alpha + passes) / (alpha + beta + passes + failures).
func Posterior(alpha, beta float64, passes, failures int) float64 {
	return (alpha + float64(passes)) / (alpha + beta + float64(passes) + float64(failures))
}

// fail ends the submission with a reason, and its events.
func (h *Handler) fail(ctx context.Context, sub db.Submission, reason string) (Outcome, error) {
	var out Outcome
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		row, err := q.SubmissionFail(ctx, db.SubmissionFailParams{ID: sub.ID, Reason: &reason})
		if errors.Is(err, pgx.ErrNoRows) {
			out.Skipped = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("fail submission %d: %w", sub.ID, err)
		}
		out.Submission = row
		return emit(ctx, q, row, nil, nil)
	})
	if err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// emit writes the submission's event_log row and its webhook event.
func emit(ctx context.Context, q *db.Queries, s db.Submission, qa, skill *float64) error {
	typ, evType := webhook.SubmissionScored, "scored"
	if s.Status == db.SubmissionStatusFailed {
		typ, evType = webhook.SubmissionFailed, "failed"
	}
	data := webhook.SubmissionData{
		SubmissionID: s.ID, ProjectID: s.ProjectID, JobID: s.JobID, UserID: s.UserID, ResultVersionID: s.ResultVersionID,
		Kind: string(s.Kind), Status: string(s.Status), Score: s.Score, Passed: s.Passed, Metric: s.Metric, Rank: s.Rank,
		Reason: s.Reason, QAApprovalRate: qa, SkillScore: skill,
	}
	meta, err := json.Marshal(data)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("submission:%d:%s", s.ID, evType)
	if err := q.EventLogInsert(ctx, db.EventLogInsertParams{OrgID: s.OrgID, EntityType: db.EntityTypeSubmission, EntityID: s.ID, EventType: evType, DedupKey: &key, Metadata: meta}); err != nil {
		return fmt.Errorf("write submission %d's event: %w", s.ID, err)
	}
	_, err = webhook.Emit(ctx, q, webhook.Event{
		OrgID: s.OrgID, ProjectID: &s.ProjectID, Type: typ, EntityType: db.EntityTypeSubmission, EntityID: s.ID, DedupKey: key, Data: data,
	})
	return err
}
