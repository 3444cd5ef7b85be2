package consensus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/quality"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/resultcheck"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
)

// EventCompleted is written on the project when a run has written its report.
const EventCompleted = "consensus_completed"

// readers is how many copies one run reads at a time.
const readers = 8

// writeBatch is how many jobs one transaction writes.
const writeBatch = 500

// maxListedUnreadable caps the unreadable copies a report lists.
const maxListedUnreadable = 100

// Deps are the handler's dependencies.
type Deps struct {
	Pool *pgxpool.Pool
	// Store is labelq's bucket, where consensus results are written.
	Store *storage.Store
	// Storages reaches the bucket of each result version.
	Storages *storage.Resolver
	Log      *slog.Logger
	// Now stamps the run; nil means time.Now.
	Now func() time.Time
}

// Handler is the project:consensus handler.
type Handler struct {
	pool     *pgxpool.Pool
	store    *storage.Store
	storages *storage.Resolver
	log      *slog.Logger
	now      func() time.Time
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler {
	h := &Handler{pool: d.Pool, store: d.Store, storages: d.Storages, log: d.Log, now: d.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// Work runs the task's project. Mount it with tasks.Register.
func (h *Handler) Work(ctx context.Context, args tasks.Consensus) error {
	_, err := h.Run(ctx, args.ProjectID, args.Run)
	return err
}

// Report is a project's agreement, as project_agreement.report holds it and
// GET /v1/projects/{id}/agreement answers it.
type Report struct {
	RunID string `json:"run_id"`
	// Jobs is how many jobs had two or more readable copies; Copies how many
	// copies they had together.
	Jobs   int `json:"jobs"`
	Copies int `json:"copies"`
	// MeanAgreement is the mean over those jobs of their agreement (the mean
	// score of every two copies); 0 without jobs.
	MeanAgreement float64 `json:"mean_agreement"`
	// Controls has the nominal statistics of each choices control.
	Controls []ControlAgreement `json:"controls"`
	// Scores is the annotator × annotator mean score over the jobs both did,
	// every control.
	Scores ScoreMatrix `json:"scores"`
	// Versions is how many consensus versions this run wrote (an unchanged
	// consensus writes none).
	Versions int `json:"versions"`
	// Unreadable counts the copies left out; UnreadableCopies lists the first.
	Unreadable       int              `json:"unreadable"`
	UnreadableCopies []UnreadableCopy `json:"unreadable_copies"`
}

// ControlAgreement is one choices control's agreement over the project.
type ControlAgreement struct {
	Control    string   `json:"control"`
	Jobs       int      `json:"jobs"`
	Annotators int      `json:"annotators"`
	Categories []string `json:"categories"`
	// CohenKappa is set when exactly two annotators answered the control.
	CohenKappa *quality.Kappa `json:"cohen_kappa"`
	// FleissKappa is set when every job has the same number of answers.
	FleissKappa *quality.Kappa `json:"fleiss_kappa"`
	// KrippendorffAlpha (nominal) allows jobs with different numbers of
	// answers; nil when no job has two.
	KrippendorffAlpha *quality.Alpha `json:"krippendorff_alpha"`
	// Matrix is every two annotators' observed agreement and Cohen's κ over
	// the jobs both answered.
	Matrix quality.AgreementMatrix `json:"matrix"`
	// DawidSkene is the fitted model: iterations, whether it converged, and
	// each annotator's estimated accuracy (by user id).
	DawidSkene DawidSkeneFit `json:"dawid_skene"`
	// Disagreements is how many jobs majority vote and Dawid–Skene label
	// differently.
	Disagreements int `json:"majority_vs_dawid_skene_disagreements"`
}

// DawidSkeneFit summarises a Dawid–Skene fit.
type DawidSkeneFit struct {
	Iterations int               `json:"iterations"`
	Converged  bool              `json:"converged"`
	Accuracy   []AnnotatorWeight `json:"accuracy"`
}

// AnnotatorWeight is one annotator's figure.
type AnnotatorWeight struct {
	UserID int64   `json:"user_id"`
	Value  float64 `json:"value"`
}

// ScoreMatrix is the annotator × annotator mean score: Mean[a][b] over Jobs[a][b]
// jobs both did (null when none); the diagonal is null.
type ScoreMatrix struct {
	Annotators []int64      `json:"annotators"`
	Mean       [][]*float64 `json:"mean"`
	Jobs       [][]int      `json:"jobs"`
}

// UnreadableCopy is a copy the run left out, and why.
type UnreadableCopy struct {
	JobID     int64  `json:"job_id"`
	UserID    int64  `json:"user_id"`
	VersionID int64  `json:"version_id"`
	Reason    string `json:"reason"`
}

// JobDetail is consensus_results.detail: how the job's consensus was reached.
type JobDetail struct {
	// Labels has one entry per choices control the copies answered.
	Labels []JobLabel `json:"labels"`
	// Medoid is the user whose copy gave the regions of the other controls:
	// the copy with the highest mean score against the others.
	Medoid int64 `json:"medoid_user_id"`
	// Users are the annotators whose copies were compared.
	Users []int64 `json:"user_ids"`
}

// JobLabel is one choices control's consensus on one job.
type JobLabel struct {
	Control       string  `json:"control"`
	Majority      string  `json:"majority"`
	MajorityShare float64 `json:"majority_share"`
	DawidSkene    string  `json:"dawid_skene"`
	Probability   float64 `json:"dawid_skene_probability"`
}

// copyOf is one annotator's readable copy of a job.
type copyOf struct {
	row     db.ConsensusCopiesRow
	regions []labelconfig.Region
}

// jobOf is a job's copies, by user id.
type jobOf struct {
	id, fileID, fileVersionID int64
	fileName                  string
	copies                    []copyOf
	agreement                 float64
	medoid                    int
	detail                    JobDetail
}

// Run measures project projectID's agreement and writes its consensus. runID
// names the run in what it writes.
func (h *Handler) Run(ctx context.Context, projectID int64, runID string) (Report, error) {
	rep := Report{RunID: runID, Controls: []ControlAgreement{}, UnreadableCopies: []UnreadableCopy{}}
	q := db.New(h.pool)
	pr, err := q.ProjectGetByID(ctx, projectID)
	if errors.Is(err, pgx.ErrNoRows) {
		return rep, queue.Permanent(fmt.Errorf("consensus of project %d: no such project", projectID))
	}
	if err != nil {
		return rep, fmt.Errorf("read project %d: %w", projectID, err)
	}
	if len(pr.LabelConfig) == 0 {
		return rep, queue.Permanent(fmt.Errorf("consensus of project %d: the project has no label config, so its results cannot be compared", projectID))
	}
	var cfg labelconfig.Config
	if err := json.Unmarshal(pr.LabelConfig, &cfg); err != nil {
		return rep, queue.Permanent(fmt.Errorf("consensus of project %d: read the label config: %w", projectID, err))
	}
	log := h.log.With(slog.Int64("project_id", projectID), slog.String("run", runID))
	rows, err := q.ConsensusCopies(ctx, projectID)
	if err != nil {
		return rep, fmt.Errorf("list the copies of project %d: %w", projectID, err)
	}
	jobs, err := h.read(ctx, cfg, rows, &rep)
	if err != nil {
		return rep, err
	}
	opts := quality.Options{IoUThreshold: pr.QualityIouThreshold}
	if err := agree(ctx, cfg, opts, jobs, &rep); err != nil {
		return rep, err
	}
	if err := h.write(ctx, pr, cfg, jobs, &rep); err != nil {
		return rep, err
	}
	log.InfoContext(ctx, "consensus done", slog.Int("jobs", rep.Jobs), slog.Int("copies", rep.Copies),
		slog.Int("versions", rep.Versions), slog.Int("unreadable", rep.Unreadable), slog.Float64("mean_agreement", rep.MeanAgreement))
	return rep, nil
}

// read reads every copy, readers at a time, and groups the readable ones by
// job, keeping jobs with two or more.
func (h *Handler) read(ctx context.Context, cfg labelconfig.Config, rows []db.ConsensusCopiesRow, rep *Report) ([]*jobOf, error) {
	regions := make([][]labelconfig.Region, len(rows))
	reasons := make([]string, len(rows))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readers)
	for i, r := range rows {
		g.Go(func() error {
			rs, err := resultcheck.ReadMeasured(gctx, h.storages, cfg, resultcheck.Measured{
				What:      fmt.Sprintf("user %d's result version %d of job %d", r.UserID, r.VersionID, r.JobID),
				StorageID: r.StorageID, Key: r.StoragePath, Checksum: r.Checksum, Size: r.SizeBytes,
			})
			var bad *resultcheck.Unreadable
			switch {
			case errors.As(err, &bad):
				reasons[i] = bad.Reason
			case err != nil:
				return err
			default:
				regions[i] = rs
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var jobs []*jobOf
	for i, r := range rows {
		if reasons[i] != "" {
			rep.Unreadable++
			if len(rep.UnreadableCopies) < maxListedUnreadable {
				rep.UnreadableCopies = append(rep.UnreadableCopies, UnreadableCopy{JobID: r.JobID, UserID: r.UserID, VersionID: r.VersionID, Reason: reasons[i]})
			}
			continue
		}
		if len(jobs) == 0 || jobs[len(jobs)-1].id != r.JobID {
			jobs = append(jobs, &jobOf{id: r.JobID, fileID: r.FileID, fileVersionID: r.FileVersionID, fileName: r.FileName})
		}
		j := jobs[len(jobs)-1]
		j.copies = append(j.copies, copyOf{row: r, regions: regions[i]})
	}
	return slices.DeleteFunc(jobs, func(j *jobOf) bool { return len(j.copies) < 2 }), nil
}

// agree scores every two copies of each job, picks each job's medoid, and
// computes each choices control's statistics and consensus labels.
func agree(ctx context.Context, cfg labelconfig.Config, opts quality.Options, jobs []*jobOf, rep *Report) error {
	users := map[int64]int{}
	for _, j := range jobs {
		for _, c := range j.copies {
			users[c.row.UserID] = 0
		}
	}
	ids := make([]int64, 0, len(users))
	for u := range users {
		ids = append(ids, u)
	}
	slices.Sort(ids)
	for i, u := range ids {
		users[u] = i
	}
	n := len(ids)
	sum := make([][]float64, n)
	count := make([][]int, n)
	for i := range sum {
		sum[i], count[i] = make([]float64, n), make([]int, n)
	}
	total := 0.0
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := len(j.copies)
		mean := make([]float64, k)
		pairs, pairSum := 0, 0.0
		for a := range k {
			for b := a + 1; b < k; b++ {
				res, err := quality.Score(cfg, j.copies[a].regions, j.copies[b].regions, opts)
				if err != nil {
					return fmt.Errorf("compare copies of job %d: %w", j.id, err)
				}
				mean[a] += res.Score
				mean[b] += res.Score
				pairs++
				pairSum += res.Score
				ua, ub := users[j.copies[a].row.UserID], users[j.copies[b].row.UserID]
				sum[ua][ub] += res.Score
				sum[ub][ua] += res.Score
				count[ua][ub]++
				count[ub][ua]++
			}
		}
		j.agreement = min(1, max(0, pairSum/float64(pairs)))
		for a := range k {
			if mean[a] > mean[j.medoid] {
				j.medoid = a
			}
		}
		j.detail = JobDetail{Labels: []JobLabel{}, Medoid: j.copies[j.medoid].row.UserID}
		for _, c := range j.copies {
			j.detail.Users = append(j.detail.Users, c.row.UserID)
		}
		total += j.agreement
		rep.Copies += k
	}
	rep.Jobs = len(jobs)
	if len(jobs) > 0 {
		rep.MeanAgreement = total / float64(len(jobs))
	}
	rep.Scores = ScoreMatrix{Annotators: ids, Mean: make([][]*float64, n), Jobs: count}
	for a := range n {
		rep.Scores.Mean[a] = make([]*float64, n)
		for b := range n {
			if a != b && count[a][b] > 0 {
				m := sum[a][b] / float64(count[a][b])
				rep.Scores.Mean[a][b] = &m
			}
		}
	}
	for _, k := range cfg.Controls {
		if k.Type != labelconfig.Choices {
			continue
		}
		ca, err := choices(ctx, k, jobs)
		if err != nil {
			return err
		}
		if ca != nil {
			rep.Controls = append(rep.Controls, *ca)
		}
	}
	return nil
}

// choiceOf is a copy's answer to a choices control: its choices, sorted and
// joined with "|" (a multi-select answer is one nominal value), and whether
// it answered at all.
func choiceOf(k labelconfig.Control, regions []labelconfig.Region) (string, bool) {
	var got []string
	answered := false
	for _, r := range regions {
		if r.FromName != k.Name || r.Type != labelconfig.Choices {
			continue
		}
		v, err := r.DecodeValue()
		if err != nil {
			continue // Validate passed it; nothing to read
		}
		got = append(got, v.Choices...)
		answered = true
	}
	slices.Sort(got)
	return strings.Join(slices.Compact(got), "|"), answered
}

// choices computes one choices control's agreement and labels each job by
// majority vote and Dawid–Skene; nil when no job has two answers to it.
func choices(ctx context.Context, k labelconfig.Control, jobs []*jobOf) (*ControlAgreement, error) {
	var answers []quality.Answer
	for _, j := range jobs {
		for _, c := range j.copies {
			if v, ok := choiceOf(k, c.regions); ok {
				answers = append(answers, quality.Answer{Item: j.id, Annotator: c.row.UserID, Value: v})
			}
		}
	}
	if len(answers) == 0 {
		return nil, nil
	}
	r, err := quality.NewRatings(answers)
	if err != nil {
		return nil, fmt.Errorf("control %q: %w", k.Name, err)
	}
	ca := &ControlAgreement{
		Control: k.Name, Jobs: len(r.Items), Annotators: len(r.Annotators), Categories: r.Categories,
		Matrix: r.PairwiseAgreement(),
	}
	if alpha, err := quality.KrippendorffAlpha(r.ReliabilityData(), quality.Nominal); err == nil {
		ca.KrippendorffAlpha = &alpha
	}
	counts := r.CategoryCounts()
	equal := true
	for i := range counts {
		if sumInts(counts[i]) != sumInts(counts[0]) {
			equal = false
			break
		}
	}
	if equal && sumInts(counts[0]) >= 2 {
		if fk, err := quality.FleissKappa(counts); err == nil {
			ca.FleissKappa = &fk
		}
	}
	if len(r.Annotators) == 2 {
		var a, b []int
		for _, row := range r.Codes {
			if row[0] != quality.NoAnswer && row[1] != quality.NoAnswer {
				a, b = append(a, row[0]), append(b, row[1])
			}
		}
		if len(a) > 0 {
			if ck, err := quality.CohenKappa(a, b); err == nil {
				ca.CohenKappa = &ck
			}
		}
	}
	m, err := quality.NewVoteMatrix(len(r.Items), len(r.Annotators), len(r.Categories), r.Votes())
	if err != nil {
		return nil, fmt.Errorf("control %q: %w", k.Name, err)
	}
	maj, err := quality.MajorityVote(m, nil)
	if err != nil {
		return nil, fmt.Errorf("control %q: %w", k.Name, err)
	}
	ds, err := quality.DawidSkene(ctx, m, quality.DawidSkeneOptions{})
	if err != nil {
		return nil, fmt.Errorf("control %q: %w", k.Name, err)
	}
	ca.DawidSkene = DawidSkeneFit{Iterations: ds.Iterations, Converged: ds.Converged, Accuracy: make([]AnnotatorWeight, len(r.Annotators))}
	for a, u := range r.Annotators {
		ca.DawidSkene.Accuracy[a] = AnnotatorWeight{UserID: u, Value: ds.Accuracy[a]}
	}
	byID := make(map[int64]*jobOf, len(jobs))
	for _, j := range jobs {
		byID[j.id] = j
	}
	for i, item := range r.Items {
		if maj[i].Class < 0 {
			continue
		}
		if maj[i].Class != ds.Labels[i].Class {
			ca.Disagreements++
		}
		j := byID[item]
		j.detail.Labels = append(j.detail.Labels, JobLabel{
			Control: k.Name, Majority: r.Categories[maj[i].Class], MajorityShare: maj[i].Share,
			DawidSkene: r.Categories[ds.Labels[i].Class], Probability: ds.Labels[i].Prob,
		})
	}
	return ca, nil
}

func sumInts(s []int) int {
	t := 0
	for _, v := range s {
		t += v
	}
	return t
}

// result is a job's consensus result: the Dawid–Skene label of each choices
// control with one, and the medoid copy's regions of every other control.
func result(cfg labelconfig.Config, j *jobOf) ([]byte, error) {
	decided := map[string]string{}
	for _, l := range j.detail.Labels {
		decided[l.Control] = l.DawidSkene
	}
	var regions []labelconfig.Region
	for _, r := range j.copies[j.medoid].regions {
		if _, ok := decided[r.FromName]; ok {
			continue
		}
		regions = append(regions, r)
	}
	for _, k := range cfg.Controls {
		label, ok := decided[k.Name]
		if !ok || label == "" {
			continue // no label, or "no choice" won
		}
		value, err := json.Marshal(map[string]any{"choices": strings.Split(label, "|")})
		if err != nil {
			return nil, err
		}
		regions = append(regions, labelconfig.Region{
			ID: "consensus-" + k.Name, FromName: k.Name, ToName: k.ToName, Type: labelconfig.Choices, Value: value,
		})
	}
	if err := resultcheck.ValidateRegions(cfg, regions); err != nil {
		return nil, fmt.Errorf("consensus of job %d does not fit the label config: %w", j.id, err)
	}
	b, err := json.Marshal(regions)
	if err != nil {
		return nil, err
	}
	if regions == nil {
		b = []byte("[]")
	}
	return b, nil
}

// write stores each job's consensus result and row, writeBatch jobs per
// transaction, then the project's report and its event.
func (h *Handler) write(ctx context.Context, pr db.Project, cfg labelconfig.Config, jobs []*jobOf, rep *Report) error {
	type out struct {
		job      *jobOf
		key, sum string
		size     int64
		detail   json.RawMessage
	}
	for start := 0; start < len(jobs); start += writeBatch {
		batch := jobs[start:min(start+writeBatch, len(jobs))]
		outs := make([]out, len(batch))
		for i, j := range batch {
			body, err := result(cfg, j)
			if err != nil {
				return err
			}
			s := sha256.Sum256(body)
			sum := hex.EncodeToString(s[:])
			key := fmt.Sprintf("orgs/%d/projects/%d/consensus/%d/%s.json", pr.OrgID, pr.ID, j.id, sum[:16])
			// Content-addressed: a retried run writes the same object again.
			if _, err := h.store.Client.PutObject(ctx, h.store.Bucket, key, bytes.NewReader(body), int64(len(body)),
				minio.PutObjectOptions{ContentType: "application/json"}); err != nil {
				return fmt.Errorf("write the consensus of job %d: %w", j.id, err)
			}
			detail, err := json.Marshal(j.detail)
			if err != nil {
				return err
			}
			outs[i] = out{job: j, key: key, sum: sum, size: int64(len(body)), detail: detail}
		}
		err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
			for _, o := range outs {
				j := o.job
				prev, err := q.ConsensusResultChecksum(ctx, j.id)
				switch {
				case err == nil && prev != nil && *prev == o.sum:
					if err := q.ConsensusResultSetRun(ctx, db.ConsensusResultSetRunParams{
						JobID: j.id, Copies: int32(len(j.copies)), Agreement: j.agreement, Detail: o.detail, RunID: rep.RunID,
					}); err != nil {
						return fmt.Errorf("record the consensus of job %d: %w", j.id, err)
					}
					continue
				case err != nil && !errors.Is(err, pgx.ErrNoRows):
					return fmt.Errorf("read the consensus of job %d: %w", j.id, err)
				}
				f, err := resultFile(ctx, q, pr, j)
				if err != nil {
					return err
				}
				v, err := q.FileVersionCreateConsensus(ctx, db.FileVersionCreateConsensusParams{
					OrgID: pr.OrgID, ProjectID: pr.ID, FileID: f.ID, StoragePath: o.key,
					Checksum: &o.sum, SizeBytes: &o.size, SourceFileVersionID: &j.fileVersionID,
				})
				if err != nil {
					return fmt.Errorf("create the consensus version of job %d: %w", j.id, err)
				}
				if _, err := q.FileActivateVersion(ctx, db.FileActivateVersionParams{
					VersionID: v.ID, FileID: f.ID, VersionNumber: v.VersionNumber, MarkReady: true,
				}); err != nil {
					return fmt.Errorf("activate the consensus version of job %d: %w", j.id, err)
				}
				if err := q.ConsensusResultUpsert(ctx, db.ConsensusResultUpsertParams{
					JobID: j.id, OrgID: pr.OrgID, ProjectID: pr.ID, VersionID: v.ID, Copies: int32(len(j.copies)),
					Agreement: j.agreement, Detail: o.detail, RunID: rep.RunID,
				}); err != nil {
					return fmt.Errorf("record the consensus of job %d: %w", j.id, err)
				}
				rep.Versions++
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	report, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode the agreement report: %w", err)
	}
	return database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		if err := q.ProjectAgreementUpsert(ctx, db.ProjectAgreementUpsertParams{
			ProjectID: pr.ID, OrgID: pr.OrgID, RunID: rep.RunID, Jobs: int32(rep.Jobs), Report: report,
		}); err != nil {
			return fmt.Errorf("write the agreement report of project %d: %w", pr.ID, err)
		}
		meta, err := json.Marshal(map[string]any{
			"run_id": rep.RunID, "jobs": rep.Jobs, "copies": rep.Copies, "versions": rep.Versions,
			"unreadable": rep.Unreadable, "mean_agreement": rep.MeanAgreement,
		})
		if err != nil {
			return err
		}
		key := fmt.Sprintf("consensus:%d:%s", pr.ID, rep.RunID)
		return q.EventLogInsert(ctx, db.EventLogInsertParams{
			OrgID: pr.OrgID, EntityType: db.EntityTypeProject, EntityID: pr.ID, EventType: EventCompleted,
			DedupKey: &key, Metadata: meta,
		})
	})
}

// resultFile finds or creates the job's consensus file, locked for the
// caller's transaction (version numbers are allocated under that lock).
func resultFile(ctx context.Context, q *db.Queries, pr db.Project, j *jobOf) (db.File, error) {
	for _, name := range []string{j.fileName + ".consensus.json", fmt.Sprintf("%s.consensus-%d.json", j.fileName, j.id)} {
		if err := q.FileCreateConsensus(ctx, db.FileCreateConsensusParams{
			OrgID: pr.OrgID, ProjectID: pr.ID, Name: name, Description: fmt.Sprintf("Consensus of the annotators of job %d", j.id),
		}); err != nil {
			return db.File{}, fmt.Errorf("create the consensus file %q: %w", name, err)
		}
		f, err := q.FileGetByNameForUpdate(ctx, db.FileGetByNameForUpdateParams{ProjectID: pr.ID, Name: name})
		if err != nil {
			return db.File{}, fmt.Errorf("read the consensus file %q: %w", name, err)
		}
		if f.FileType == db.FileTypeAnnotationResults {
			return f, nil
		}
	}
	return db.File{}, fmt.Errorf("no free name for the consensus file of job %d: the names it would take belong to other files", j.id)
}
