package matching

import (
	"errors"
	"time"
)

// DefaultMinProficiency is the minimum language proficiency (of 5) a
// candidate needs for a job in that language when the project sets none.
const DefaultMinProficiency = 3.0

// Limits on one run. They keep every intermediate sum of the solver's int64
// costs far from overflow (see cost.go); a project's open backlog is orders of
// magnitude smaller. MaxCopies bounds the copies the jobs ask for together:
// the sum over the jobs of Need, counting a Need of 0 as 1.
const (
	MaxJobs       = 1 << 18
	MaxCopies     = 1 << 18
	MaxCandidates = 1 << 18
	MaxLoad       = 1 << 30
)

// Priority of an annotation job; it multiplies the job's score.
type Priority string

// Priorities as stored in annotation_jobs.priority.
const (
	PriorityLow    Priority = "low"
	PriorityMedium Priority = "medium"
	PriorityHigh   Priority = "high"
)

// Weight is the factor the priority puts on a job's score: 1, 2 or 3, and 0
// for an unknown priority (which Solve rejects).
func (p Priority) Weight() int64 {
	switch p {
	case PriorityLow:
		return 1
	case PriorityMedium:
		return 2
	case PriorityHigh:
		return 3
	}
	return 0
}

// Role is a user's platform role as stored in users.role; only the two that
// can be matched matter here.
type Role string

// Roles the solver matches: annotators for Solve, QC users for
// SolveReviewers. Candidates with any other role are never assigned.
const (
	RoleAnnotator Role = "annotator"
	RoleQC        Role = "qc"
)

// Job is an open annotation job that needs a person, or with overlap several
// different people, each annotating their own copy of it.
type Job struct {
	ID int64
	// Language is the job's language code ("en", "zh", ...), compared
	// case-insensitively; empty means the job has none.
	Language string
	Priority Priority
	// DueDate is nil when the job has none; such jobs lose ties to dated ones.
	DueDate *time.Time
	// PreviousAnnotators never get this job again (job_previous_annotators).
	PreviousAnnotators []int64
	// Need is how many annotators the job still needs in this run: the
	// project's overlap minus the job's copies that are live or done (see
	// CurrentAnnotators). 0 and 1 both ask for one, exactly as before overlap
	// existed; a negative Need is invalid. Only Solve reads it: SolveReviewers
	// gives every job one reviewer and rejects a Need above 1.
	Need int
	// CurrentAnnotators are the people who hold or held a copy of the job (a
	// live or completed annotator assignment, not a revoked one). Nobody
	// annotates one job twice, so they never get another copy; SolveReviewers
	// excludes them too, as it does AnnotatorID.
	CurrentAnnotators []int64
	// AnnotatorID is the user who annotated the job (0 if none). Only
	// SolveReviewers uses it: nobody reviews their own work.
	AnnotatorID int64
}

// Candidate is a user who might take jobs in this run.
type Candidate struct {
	ID   int64
	Role Role
	// Active mirrors users.active; inactive users are never assigned.
	Active bool
	// HasAvailability is false when the user has no availability windows,
	// which makes them unavailable.
	HasAvailability bool
	// Proficiency maps language code (case-insensitive) to 0..5. A language
	// that is missing counts as 0.
	Proficiency map[string]float64
	// SkillScore and QAApprovalRate are 0..1; nil counts as 0.
	SkillScore     *float64
	QAApprovalRate *float64
	// Remaining is max_active_jobs minus live assignments: the most jobs this
	// run may give the user. Values below zero count as zero.
	Remaining int
	// Load is the user's current number of live assignments; among equally
	// good choices the less loaded user wins.
	Load int
	// AnnotatesInProject and ReviewsInProject say which side of this project
	// the user already works on. A person is an annotator or a reviewer/QC
	// in one project, never both, so a reviewer is in conflict for Solve and
	// an annotator for SolveReviewers.
	AnnotatesInProject bool
	ReviewsInProject   bool
}

// Options tune one run. The zero value is valid.
type Options struct {
	// MinProficiency is the project's minimum proficiency (0..5] for a job
	// with a language; 0 selects DefaultMinProficiency.
	MinProficiency float64
}

// Reason says why a job was left without a person.
type Reason string

// Reasons for an unassigned job, checked in this order: the first that
// applies is reported.
const (
	// ReasonNoAvailableAnnotator: no candidate of the right role is active
	// and available.
	ReasonNoAvailableAnnotator Reason = "no_available_annotator"
	// ReasonNoLanguageMatch: nobody available reaches the minimum
	// proficiency in the job's language.
	ReasonNoLanguageMatch Reason = "no_language_match"
	// ReasonAllConflict: everyone otherwise eligible works on the other side
	// of the project or is excluded from this job (previous annotator,
	// current annotator, one given a copy of it in this very run, or the
	// job's own annotator when matching reviewers). With overlap this is why
	// a job that needs more copies than it has eligible people keeps the
	// rest open.
	ReasonAllConflict Reason = "all_conflict"
	// ReasonCapacityExhausted: eligible people exist, but they have no
	// remaining capacity or the optimum gave their capacity to other jobs.
	ReasonCapacityExhausted Reason = "capacity_exhausted"
)

// Assignment gives one job (one copy of it) to one user.
type Assignment struct {
	JobID  int64
	UserID int64
	// Score is score(job, user) as defined in the package documentation.
	Score float64
}

// Unassigned is a job the run left with copies open: all of them, or with
// overlap some.
type Unassigned struct {
	JobID  int64
	Reason Reason
	// Open is how many of the job's copies stay open: its Need (1 when Need
	// is 0) minus the assignments it got in this run.
	Open int
}

// Result of one run. Assignments are ordered by JobID, then UserID, with one
// entry per copy given (so one job may have several, to different users);
// Unassigned is ordered by JobID. Every input job is in at least one of the
// two, and in both only when it got some but not all of its copies.
type Result struct {
	Assignments []Assignment
	Unassigned  []Unassigned
	// TotalScore is the sum of the assignments' scores: the maximised
	// objective.
	TotalScore float64
	Stats      Stats
}

// Stats describe the size of the problem the solver actually ran, for logs
// and benchmarks. Classes, Nodes and Arcs are those of the last round.
type Stats struct {
	Classes int // job classes after compression
	Nodes   int // network nodes
	Arcs    int // network arcs
	Pivots  int // network simplex pivots, summed over rounds
	Rounds  int // flow problems solved: more than one only when exclusions bind
}

// ErrInvalidInput wraps every error caused by the input rather than the run;
// retrying with the same input cannot succeed.
var ErrInvalidInput = errors.New("matching: invalid input")
