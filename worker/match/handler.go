package match

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/matching"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
)

// Event types this worker writes to event_log.
const (
	// EventAssigned is written once per assignment row, on the assignment.
	EventAssigned = "assigned"
	// EventMatchCompleted is written once per run that changed something or whose
	// list of unassignable jobs differs from the last one reported, on the project.
	EventMatchCompleted = "match_completed"
)

// maxAttempts bounds how often one run re-solves after finding that another
// project's run used up capacity it counted on (see reserve). Each attempt locks
// the people it assigns, so a second attempt nearly always succeeds.
const maxAttempts = 3

// maxLoggedJobs caps the job ids one log line lists per unassigned reason.
const maxLoggedJobs = 100

// errProjectNotFound: the task names a project that does not exist (or was deleted).
var errProjectNotFound = errors.New("project not found")

// Deps are the handler's dependencies.
type Deps struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	// Metrics is optional: without it the handler reports nothing to Prometheus.
	Metrics *metrics.Metrics
	// Now is the clock the run's phases are timed with; nil means time.Now.
	Now func() time.Time
}

// Handler is the project:match handler.
type Handler struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	now  func() time.Time
	col  *collectors
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler {
	h := &Handler{pool: d.Pool, log: d.Log, now: d.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if d.Metrics != nil {
		h.col = newCollectors(d.Metrics, h.log)
	}
	return h
}

// Work runs one matching pass for the task's project (tasks.Match and
// tasks.MatchTrigger share the kind and the payload). A project that does not
// exist is permanent: asynq archives the task instead of retrying it. Mount it
// with tasks.Register.
func (h *Handler) Work(ctx context.Context, args tasks.Match) error {
	_, err := h.run(ctx, args.ProjectID, false)
	if errors.Is(err, errBusy) {
		// Another run of this project holds the lock. Waiting would hold a worker
		// slot for as long as that run takes (a burst of triggers once filled every
		// slot); the retry still catches whatever the running pass did not see.
		return queue.RetryAfter(queue.Backoff(0, 2*time.Second, 10*time.Second), err)
	}
	return err
}

// errBusy says another run of the project holds its lock.
var errBusy = errors.New("another project:match run of this project is in progress")

// Report describes one run, for logs, tests and benchmarks.
type Report struct {
	ProjectID int64
	// Skipped says why the run considered no jobs (the project is completed or
	// archived); empty otherwise.
	Skipped string
	// Annotators and Reviewers are the two sides matched; Reviewers is zero
	// unless the project assigns reviewers.
	Annotators Side
	Reviewers  Side
	// Gold is the honeypot side, matched before the annotators when the
	// project has a gold_rate: gold jobs, each to every annotator once, within
	// each annotator's share of gold work. Its jobs are never "unassigned":
	// a honeypot open to more people is no backlog.
	Gold Side
	// EventWritten is whether the run wrote a match_completed event.
	EventWritten bool
	// Attempts counts solves, summed over both sides; more than one per side
	// means another project's run took capacity this one had counted on.
	Attempts int
	// Load, Solve and Write split the run's time: reading jobs and people,
	// the solver, and locking people plus writing rows and events. Total is
	// the whole run, including the wait for the project lock and the commit.
	Load, Solve, Write, Total time.Duration

	// created are the assignment.created webhook events of the assignments
	// written, both sides, sent in one statement before the summary.
	created []webhook.Event
}

// Side is the matching of one role in a run: what the solver was given (in its
// last attempt) and what it answered.
type Side struct {
	Jobs       []matching.Job
	Candidates []matching.Candidate
	Options    matching.Options
	Result     matching.Result
	// Written counts the assignment rows inserted; it equals
	// len(Result.Assignments) unless someone bypassed the project lock.
	Written int
}

// side is what differs between matching annotators and matching reviewers.
type side struct {
	name           string // for logs, metrics and event metadata
	userRole       db.UserRole
	assignmentRole db.AssignmentRole
	jobs           func(context.Context, *db.Queries, db.Project) ([]matching.Job, error)
	solve          func(context.Context, []matching.Job, []matching.Candidate, matching.Options) (matching.Result, error)
	// honeypot: each job may go to every candidate once, and a candidate's
	// capacity is their share of gold work (goldQuota).
	honeypot bool
}

var (
	annotatorSide = side{
		name: "annotator", userRole: db.UserRoleAnnotator, assignmentRole: db.AssignmentRoleAnnotator,
		jobs: loadAnnotatorJobs, solve: matching.Solve,
	}
	reviewerSide = side{
		name: "reviewer", userRole: db.UserRoleQc, assignmentRole: db.AssignmentRoleReviewer,
		jobs: loadReviewerJobs, solve: matching.SolveReviewers,
	}
	goldSide = side{
		name: "gold", userRole: db.UserRoleAnnotator, assignmentRole: db.AssignmentRoleAnnotator,
		jobs: loadGoldJobs, solve: matching.Solve, honeypot: true,
	}
)

// Run matches the project's open jobs (and, when the project asks, its reviewers)
// and commits the assignments, their events and the run's summary event in one
// transaction.
//
// The transaction first takes the project's advisory lock, so two runs of one
// project take turns; the second then sees the first's assignments and assigns
// only what is still open. It runs at READ COMMITTED on purpose: a REPEATABLE
// READ snapshot would be taken by the lock statement itself, before the wait, and
// would not see the assignments of the run it waited for. Under the lock nothing
// else adds assignments to the project, so the reads that follow agree on what
// is open and who works on which side. What may still move between two reads is
// harmless or checked: a revoke, a new job or an edited person only makes the
// view slightly older (and queues a run of its own), while the remaining
// capacity of people another project's run is assigning at the same moment is
// counted again under row locks before writing (reserve).
func (h *Handler) Run(ctx context.Context, projectID int64) (Report, error) {
	return h.run(ctx, projectID, true)
}

// run is Run; with wait false it returns errBusy instead of waiting for the lock.
func (h *Handler) run(ctx context.Context, projectID int64, wait bool) (Report, error) {
	rep := Report{ProjectID: projectID}
	log := logging.From(ctx, h.log).With(slog.Int64("project_id", projectID))
	start := h.now()
	err := database.Tx(ctx, h.pool, func(q *db.Queries, _ pgx.Tx) error {
		if wait {
			if err := q.AssignmentLockProjectForMatching(ctx, projectID); err != nil {
				return fmt.Errorf("lock project %d for matching: %w", projectID, err)
			}
		} else {
			got, err := q.AssignmentTryLockProjectForMatching(ctx, projectID)
			if err != nil {
				return fmt.Errorf("lock project %d for matching: %w", projectID, err)
			}
			if !got {
				return errBusy
			}
		}
		pr, err := q.ProjectGetByID(ctx, projectID)
		if errors.Is(err, pgx.ErrNoRows) {
			return errProjectNotFound
		}
		if err != nil {
			return fmt.Errorf("read project %d: %w", projectID, err)
		}
		if pr.Status == db.ProjectStatusCompleted || pr.Status == db.ProjectStatusArchived {
			rep.Skipped = "project is " + string(pr.Status)
			return nil
		}
		opts := matching.ProjectOptions(pr.MinLanguageProficiency)
		if pr.GoldRate > 0 {
			// Before the annotators: each annotator's share of gold work is
			// taken out of their capacity first.
			if rep.Gold, err = h.matchSide(ctx, q, pr, goldSide, opts, &rep, log); err != nil {
				return err
			}
		}
		if rep.Annotators, err = h.matchSide(ctx, q, pr, annotatorSide, opts, &rep, log); err != nil {
			return err
		}
		if pr.AssignReviewers {
			// After the annotators: jobs assigned a moment ago get their
			// reviewer in the same run.
			if rep.Reviewers, err = h.matchSide(ctx, q, pr, reviewerSide, opts, &rep, log); err != nil {
				return err
			}
		}
		writeStart := h.now()
		if _, err := webhook.EmitMany(ctx, q, rep.created); err != nil {
			return fmt.Errorf("notify %d assignments of project %d: %w", len(rep.created), projectID, err)
		}
		rep.EventWritten, err = writeSummary(ctx, q, pr, &rep)
		rep.Write += h.now().Sub(writeStart)
		return err
	})
	rep.Total = h.now().Sub(start)
	switch {
	case errors.Is(err, errProjectNotFound):
		return rep, queue.Permanent(fmt.Errorf("match project %d: %w", projectID, err))
	case errors.Is(err, matching.ErrInvalidInput):
		// The rows break an invariant the schema should have kept; retrying
		// reads the same rows.
		return rep, queue.Permanent(fmt.Errorf("match project %d: %w", projectID, err))
	case err != nil:
		return rep, fmt.Errorf("match project %d: %w", projectID, err)
	}
	h.logRun(ctx, log, &rep)
	return rep, nil
}

// matchSide loads one side's jobs and candidates, solves, reserves the capacity it
// gives out and writes the assignments with one event each.
func (h *Handler) matchSide(ctx context.Context, q *db.Queries, pr db.Project, s side, opts matching.Options, rep *Report, log *slog.Logger) (Side, error) {
	for attempt := 1; ; attempt++ {
		rep.Attempts++
		loadStart := h.now()
		jobs, err := s.jobs(ctx, q, pr)
		if err != nil {
			return Side{}, err
		}
		if len(jobs) == 0 {
			rep.Load += h.now().Sub(loadStart)
			return Side{Options: opts}, nil
		}
		cands, err := loadCandidates(ctx, q, pr, s, log)
		rep.Load += h.now().Sub(loadStart)
		if err != nil {
			return Side{}, err
		}
		if s.honeypot {
			if jobs = honeypotNeeds(jobs, len(cands)); len(jobs) == 0 {
				return Side{Options: opts}, nil
			}
		}

		solveStart := h.now()
		res, err := s.solve(ctx, jobs, cands, opts)
		solved := h.now().Sub(solveStart)
		rep.Solve += solved
		if err != nil {
			return Side{}, fmt.Errorf("solve %ss: %w", s.name, err)
		}
		if h.col != nil {
			h.col.solveSeconds.WithLabelValues(s.name).Observe(solved.Seconds())
		}

		writeStart := h.now()
		short, err := reserve(ctx, q, res.Assignments)
		if err != nil {
			rep.Write += h.now().Sub(writeStart)
			return Side{}, err
		}
		if len(short) > 0 {
			rep.Write += h.now().Sub(writeStart)
			if h.col != nil {
				h.col.capacityRetries.Inc()
			}
			log.InfoContext(ctx, "capacity changed under another project's run; solving again",
				slog.String("side", s.name), slog.Any("user_ids", short), slog.Int("attempt", attempt))
			if attempt == maxAttempts {
				return Side{}, queue.RetryAfter(time.Second, fmt.Errorf(
					"%ss: people %v kept losing capacity to concurrent runs after %d attempts", s.name, short, attempt))
			}
			continue
		}
		written, err := writeAssignments(ctx, q, pr, s, res.Assignments, &rep.created)
		rep.Write += h.now().Sub(writeStart)
		if err != nil {
			return Side{}, err
		}
		if written < len(res.Assignments) {
			log.WarnContext(ctx, "some jobs already had a live assignment written outside project:match",
				slog.String("side", s.name), slog.Int("planned", len(res.Assignments)), slog.Int("written", written))
		}
		if h.col != nil {
			h.col.assignments.WithLabelValues(s.name).Add(float64(written))
			for _, u := range res.Unassigned {
				if s.honeypot {
					break // a honeypot open to more people is no backlog
				}
				h.col.unassigned.WithLabelValues(s.name, string(u.Reason)).Inc()
			}
		}
		return Side{Jobs: jobs, Candidates: cands, Options: opts, Result: res, Written: written}, nil
	}
}

// loadAnnotatorJobs: the open jobs with copies to give, each needing the
// project's overlap less the copies it has (live or done).
func loadAnnotatorJobs(ctx context.Context, q *db.Queries, pr db.Project) ([]matching.Job, error) {
	rows, err := q.AnnotationJobListOpenForMatching(ctx, db.AnnotationJobListOpenForMatchingParams{
		ProjectID: pr.ID, Overlap: pr.Overlap, Honeypots: pr.GoldRate > 0,
	})
	if err != nil {
		return nil, fmt.Errorf("list open jobs of project %d: %w", pr.ID, err)
	}
	jobs := make([]matching.Job, len(rows))
	for i, r := range rows {
		jobs[i] = matching.Job{
			ID: r.ID, Language: deref(r.Language), Priority: matching.Priority(r.Priority),
			DueDate: r.DueDate, PreviousAnnotators: r.PreviousAnnotatorIds,
			Need: int(pr.Overlap) - len(r.CurrentAnnotatorIds), CurrentAnnotators: r.CurrentAnnotatorIds,
		}
	}
	return jobs, nil
}

// loadGoldJobs: the project's open gold jobs; honeypotNeeds sets their Need
// once the candidates are known.
func loadGoldJobs(ctx context.Context, q *db.Queries, pr db.Project) ([]matching.Job, error) {
	rows, err := q.AnnotationJobListGoldForMatching(ctx, pr.ID)
	if err != nil {
		return nil, fmt.Errorf("list gold jobs of project %d: %w", pr.ID, err)
	}
	jobs := make([]matching.Job, len(rows))
	for i, r := range rows {
		jobs[i] = matching.Job{
			ID: r.ID, Language: deref(r.Language), Priority: matching.Priority(r.Priority),
			DueDate: r.DueDate, PreviousAnnotators: r.PreviousAnnotatorIds, CurrentAnnotators: r.CurrentAnnotatorIds,
		}
	}
	return jobs, nil
}

// honeypotNeeds gives each gold job a copy for every candidate who has not
// had it, within the solver's limit on copies per run (the jobs share it
// evenly; the next run hands out the rest), and drops the jobs everyone has.
func honeypotNeeds(jobs []matching.Job, candidates int) []matching.Job {
	perJob := candidates
	if len(jobs) > 0 {
		perJob = min(perJob, matching.MaxCopies/len(jobs))
	}
	out := jobs[:0]
	for _, j := range jobs {
		if n := min(perJob, candidates-len(j.CurrentAnnotators)); n > 0 {
			j.Need = n
			out = append(out, j)
		}
	}
	return out
}

// goldQuota is how many gold copies a person may get in this run so that,
// with the capacity they have left filled, the share of gold among their
// copies in the project is the project's gold rate: rate × (copies +
// remaining), rounded, less the gold copies they have, within 0..remaining.
func goldQuota(rate float64, copies, goldCopies, remaining int) int {
	if remaining <= 0 {
		return 0
	}
	want := int(math.Floor(rate*float64(copies+remaining)+0.5)) - goldCopies
	return max(0, min(want, remaining))
}

func loadReviewerJobs(ctx context.Context, q *db.Queries, pr db.Project) ([]matching.Job, error) {
	projectID := pr.ID
	rows, err := q.AnnotationJobListNeedingReviewer(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("list jobs needing a reviewer in project %d: %w", projectID, err)
	}
	jobs := make([]matching.Job, len(rows))
	for i, r := range rows {
		jobs[i] = matching.Job{
			ID: r.ID, Language: deref(r.Language), Priority: matching.Priority(r.Priority),
			DueDate: r.DueDate, PreviousAnnotators: r.ExcludedUserIds, AnnotatorID: r.AnnotatorID,
		}
	}
	return jobs, nil
}

// loadCandidates reads the organization's active users of one role. A user whose
// stored JSON cannot be read is left out with a warning rather than failing the
// whole project's run.
func loadCandidates(ctx context.Context, q *db.Queries, pr db.Project, s side, log *slog.Logger) ([]matching.Candidate, error) {
	role := s.userRole
	rows, err := q.UserListCandidates(ctx, db.UserListCandidatesParams{ProjectID: pr.ID, OrgID: pr.OrgID, Role: role})
	if err != nil {
		return nil, fmt.Errorf("list %s candidates of project %d: %w", role, pr.ID, err)
	}
	cands := make([]matching.Candidate, 0, len(rows))
	for _, r := range rows {
		c, err := candidate(r)
		if err != nil {
			log.WarnContext(ctx, "user left out of matching", slog.Int64("user_id", r.ID), slog.String("error", err.Error()))
			continue
		}
		if s.honeypot {
			c.Remaining = goldQuota(pr.GoldRate, int(r.ProjectCopies), int(r.ProjectGoldCopies), c.Remaining)
		}
		cands = append(cands, c)
	}
	return cands, nil
}

// candidate maps a user row onto the solver's input. The query only returns
// active users, so Active is always true here.
func candidate(r db.UserListCandidatesRow) (matching.Candidate, error) {
	avail, err := hasAvailability(r.Availability)
	if err != nil {
		return matching.Candidate{}, err
	}
	prof, err := matching.ParseProficiency(r.LanguageExpertise)
	if err != nil {
		return matching.Candidate{}, err
	}
	return matching.Candidate{
		ID: r.ID, Role: matching.Role(r.Role), Active: true, HasAvailability: avail,
		Proficiency: prof, SkillScore: r.SkillScore, QAApprovalRate: r.QaApprovalRate,
		Remaining: int(r.MaxActiveJobs) - int(r.LiveAssignments), Load: int(r.LiveAssignments),
		AnnotatesInProject: r.AnnotatesInProject, ReviewsInProject: r.ReviewsInProject,
	}, nil
}

// hasAvailability reports whether an availability document
// ({"timezone": "Europe/Paris", "monday": ["09:00-12:00"], ...}) has at least one
// window on any day. Which day or hour does not matter: matching hands out work
// for the coming days, not for this instant.
func hasAvailability(raw json.RawMessage) (bool, error) {
	if len(raw) == 0 {
		return false, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return false, fmt.Errorf("read availability: %w", err)
	}
	for key, v := range doc {
		if key == "timezone" {
			continue
		}
		var windows []string
		if err := json.Unmarshal(v, &windows); err != nil {
			return false, fmt.Errorf("read availability of %q: %w", key, err)
		}
		for _, w := range windows {
			if w != "" {
				return true, nil
			}
		}
	}
	return false, nil
}

// reserve locks the people the solution gives work to and checks, on fresh
// counts, that each still has room for it. The project lock does not cover this:
// runs of two projects share the organization's people, and each counted their
// live assignments before the other committed. Locking the user rows (in id
// order, so two runs cannot deadlock) and counting again afterwards closes that
// gap: a run that waited on the lock sees the other's committed assignments. It
// returns the ids of people who no longer have room; empty means the solution can
// be written. (A second attempt may lock people with lower ids than it already
// holds; should that ever close a cycle with another run, Postgres fails one of
// the two with a deadlock error and asynq retries it.)
func reserve(ctx context.Context, q *db.Queries, as []matching.Assignment) ([]int64, error) {
	if len(as) == 0 {
		return nil, nil
	}
	want := make(map[int64]int32)
	for _, a := range as {
		want[a.UserID]++
	}
	ids := make([]int64, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if err := q.UserLockForAssignment(ctx, ids); err != nil {
		return nil, fmt.Errorf("lock %d people for assignment: %w", len(ids), err)
	}
	caps, err := q.UserCapacityList(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("count live assignments of %d people: %w", len(ids), err)
	}
	var short []int64
	for _, c := range caps {
		if c.LiveAssignments+want[c.ID] > c.MaxActiveJobs {
			short = append(short, c.ID)
		}
	}
	if len(caps) != len(ids) {
		// A user vanished between the read and the lock (hard delete); the
		// foreign key would fail the insert, so solve again without them.
		found := make(map[int64]bool, len(caps))
		for _, c := range caps {
			found[c.ID] = true
		}
		for _, id := range ids {
			if !found[id] {
				short = append(short, id)
			}
		}
	}
	return short, nil
}

// writeAssignments inserts the assignments and one "assigned" event per row
// written, adds each row's assignment.created webhook event to created, and returns
// how many rows were written.
func writeAssignments(ctx context.Context, q *db.Queries, pr db.Project, s side, as []matching.Assignment, created *[]webhook.Event) (int, error) {
	if len(as) == 0 {
		return 0, nil
	}
	arg := db.AssignmentCreateBatchParams{
		OrgID: pr.OrgID, ProjectID: pr.ID, Role: s.assignmentRole,
		JobIds: make([]int64, len(as)), UserIds: make([]int64, len(as)), Scores: make([]float64, len(as)),
	}
	for i, a := range as {
		arg.JobIds[i], arg.UserIds[i], arg.Scores[i] = a.JobID, a.UserID, a.Score
	}
	rows, err := q.AssignmentCreateBatch(ctx, arg)
	if err != nil {
		return 0, fmt.Errorf("write %d %s assignments: %w", len(as), s.name, err)
	}
	ev := db.EventLogInsertBatchParams{
		OrgID: pr.OrgID, EntityType: db.EntityTypeAssignment, EventType: EventAssigned,
		EntityIds: make([]int64, len(rows)), UserIds: make([]int64, len(rows)),
		DedupKeys: make([]string, len(rows)), Metadata: make([]json.RawMessage, len(rows)),
	}
	for i, r := range rows {
		meta, err := json.Marshal(map[string]any{
			"project_id": pr.ID, "job_id": r.JobID, "user_id": r.UserID, "role": s.assignmentRole, "score": r.Score,
		})
		if err != nil {
			return 0, fmt.Errorf("encode assignment event: %w", err)
		}
		ev.EntityIds[i], ev.UserIds[i], ev.Metadata[i] = r.ID, r.UserID, meta
		// The assignment id makes the key unique per row, so a person given the
		// same job again later (a reopened job) still gets an event; a run that
		// writes no new row writes no event.
		ev.DedupKeys[i] = fmt.Sprintf("assignment:%d:%s:%d:%d", r.JobID, s.assignmentRole, r.UserID, r.ID)
		*created = append(*created, webhook.Event{
			OrgID: pr.OrgID, ProjectID: &pr.ID, Type: webhook.AssignmentCreated,
			EntityType: db.EntityTypeAssignment, EntityID: r.ID, DedupKey: ev.DedupKeys[i],
			Data: webhook.AssignmentData{
				AssignmentID: r.ID, JobID: r.JobID, ProjectID: pr.ID, UserID: r.UserID, Role: string(s.assignmentRole),
				FileID: &r.FileID, Status: string(db.AssignmentStatusAssigned), Score: &r.Score,
			},
		})
	}
	if err := q.EventLogInsertBatch(ctx, ev); err != nil {
		return 0, fmt.Errorf("write %d assignment events: %w", len(rows), err)
	}
	return len(rows), nil
}

// maxMatchAssignmentIDs caps the assignment ids a match.completed event lists;
// the assignment.created events carry every one.
const maxMatchAssignmentIDs = 1000

// sideSummary is one side's part of the match_completed event.
type sideSummary struct {
	Jobs       int              `json:"jobs"`
	Candidates int              `json:"candidates"`
	Assigned   int              `json:"assigned"`
	Unassigned map[string]int   `json:"unassigned"`
	TotalScore float64          `json:"total_score"`
	Stats      matching.Stats   `json:"-"`
	Reasons    []unassignedJobs `json:"-"`
}

type unassignedJobs struct {
	reason matching.Reason
	jobIDs []int64
}

func summarize(s Side) sideSummary {
	sum := sideSummary{
		Jobs: len(s.Jobs), Candidates: len(s.Candidates), Assigned: s.Written,
		Unassigned: map[string]int{}, TotalScore: s.Result.TotalScore, Stats: s.Result.Stats,
	}
	byReason := map[matching.Reason][]int64{}
	for _, u := range s.Result.Unassigned {
		sum.Unassigned[string(u.Reason)]++
		byReason[u.Reason] = append(byReason[u.Reason], u.JobID)
	}
	for _, r := range []matching.Reason{matching.ReasonNoAvailableAnnotator, matching.ReasonNoLanguageMatch,
		matching.ReasonAllConflict, matching.ReasonCapacityExhausted} {
		if ids := byReason[r]; len(ids) > 0 {
			sum.Reasons = append(sum.Reasons, unassignedJobs{reason: r, jobIDs: ids})
			delete(byReason, r)
		}
	}
	for r, ids := range byReason { // a reason this worker does not know yet
		sum.Reasons = append(sum.Reasons, unassignedJobs{reason: r, jobIDs: ids})
	}
	return sum
}

// unassignedDigest fingerprints which jobs a run left open and why, so a run that
// finds the same situation as the last report does not report it again.
func unassignedDigest(sides ...Side) string {
	h := sha256.New()
	for i, s := range sides {
		fmt.Fprintf(h, "side %d\n", i)
		for _, u := range s.Result.Unassigned {
			fmt.Fprintf(h, "%d %s %d\n", u.JobID, u.Reason, u.Open)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeSummary writes the run's match_completed event on the project when the run
// assigned someone, or when the jobs it could not assign (and why) differ from the
// last event's. A run that finds nothing to do, or exactly the situation already
// reported (a redelivered task, a second trigger), writes nothing.
func writeSummary(ctx context.Context, q *db.Queries, pr db.Project, rep *Report) (bool, error) {
	ann, rev, gold := summarize(rep.Annotators), summarize(rep.Reviewers), summarize(rep.Gold)
	assigned := ann.Assigned + rev.Assigned + gold.Assigned
	unassigned := len(rep.Annotators.Result.Unassigned) + len(rep.Reviewers.Result.Unassigned)
	if assigned == 0 && unassigned == 0 {
		return false, nil
	}
	digest := unassignedDigest(rep.Annotators, rep.Reviewers)
	var prevID int64
	last, err := q.EventLogLatestOfType(ctx, db.EventLogLatestOfTypeParams{
		OrgID: pr.OrgID, EntityType: db.EntityTypeProject, EntityID: pr.ID, EventType: EventMatchCompleted,
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return false, fmt.Errorf("read last match event of project %d: %w", pr.ID, err)
	default:
		prevID = last.ID
		var prev struct {
			Digest string `json:"unassigned_digest"`
		}
		if json.Unmarshal(last.Metadata, &prev) == nil && prev.Digest == digest && assigned == 0 {
			return false, nil
		}
	}
	meta := map[string]any{
		"assigned": ann.Assigned, "unassigned": ann.Unassigned, "jobs": ann.Jobs,
		"candidates": ann.Candidates, "total_score": ann.TotalScore, "unassigned_digest": digest,
	}
	if pr.AssignReviewers {
		meta["reviewers"] = rev
	}
	if pr.GoldRate > 0 {
		meta["gold_assigned"] = gold.Assigned
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return false, fmt.Errorf("encode match event: %w", err)
	}
	// The previous event's id chains the key: the same outcome reported again
	// after a different one is a new event, a replay of this one is not.
	key := "match_completed:" + strconv.FormatInt(pr.ID, 10) + ":" + strconv.FormatInt(prevID, 10) + ":" + digest
	if err := q.EventLogInsert(ctx, db.EventLogInsertParams{
		OrgID: pr.OrgID, EntityType: db.EntityTypeProject, EntityID: pr.ID, EventType: EventMatchCompleted,
		DedupKey: &key, Metadata: b,
	}); err != nil {
		return false, fmt.Errorf("write match event of project %d: %w", pr.ID, err)
	}
	ids := make([]int64, 0, min(len(rep.created), maxMatchAssignmentIDs))
	for _, ev := range rep.created[:cap(ids)] {
		ids = append(ids, ev.EntityID)
	}
	if _, err := webhook.Emit(ctx, q, webhook.Event{
		OrgID: pr.OrgID, ProjectID: &pr.ID, Type: webhook.MatchCompleted, EntityType: db.EntityTypeProject, EntityID: pr.ID,
		DedupKey: key, Data: webhook.MatchData{
			ProjectID: pr.ID, Assigned: assigned, Unassigned: unassigned,
			Objective: ann.TotalScore + rev.TotalScore + gold.TotalScore, AssignmentIDs: ids,
		},
	}); err != nil {
		return false, fmt.Errorf("notify the match of project %d: %w", pr.ID, err)
	}
	return true, nil
}

func (h *Handler) logRun(ctx context.Context, log *slog.Logger, rep *Report) {
	if rep.Skipped != "" {
		log.InfoContext(ctx, "project:match skipped", slog.String("reason", rep.Skipped))
		return
	}
	for _, s := range []struct {
		name string
		side Side
	}{{goldSide.name, rep.Gold}, {annotatorSide.name, rep.Annotators}, {reviewerSide.name, rep.Reviewers}} {
		if len(s.side.Jobs) == 0 {
			continue
		}
		sum := summarize(s.side)
		log.InfoContext(ctx, "project:match side done", slog.String("side", s.name),
			slog.Int("jobs", sum.Jobs), slog.Int("candidates", sum.Candidates), slog.Int("assigned", sum.Assigned),
			slog.Int("unassigned", len(s.side.Result.Unassigned)), slog.Float64("total_score", sum.TotalScore),
			slog.Int("pivots", sum.Stats.Pivots), slog.Int("rounds", sum.Stats.Rounds))
		for _, u := range sum.Reasons {
			if s.name == goldSide.name {
				break
			}
			ids := u.jobIDs[:min(len(u.jobIDs), maxLoggedJobs)]
			log.InfoContext(ctx, "jobs left unassigned", slog.String("side", s.name), slog.String("reason", string(u.reason)),
				slog.Int("count", len(u.jobIDs)), slog.Any("job_ids", ids))
		}
	}
	log.InfoContext(ctx, "project:match done", slog.Int("attempts", rep.Attempts), slog.Bool("event", rep.EventWritten),
		slog.Duration("load", rep.Load), slog.Duration("solve", rep.Solve), slog.Duration("write", rep.Write),
		slog.Duration("total", rep.Total))
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
