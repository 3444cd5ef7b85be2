package tasks

import (
	"time"

	"github.com/labelq/labelq/internal/queue"
)

// Quality ------------------------------------------------------------------------

// Score scores one submission (a submissions row): an annotator's result against
// the job's gold answer, or against the other annotators' results once every copy
// of the job is in. It runs on the match queue: scores feed matching, and scoring is
// short. A result that cannot be scored (not Label Studio JSON that fits the label
// config, a gold answer removed since) fails the submission with the reason and is
// not retried; storage and database errors are.
type Score struct {
	SubmissionID int64 `json:"submission_id"`
	// Run is "" for the submission's first task and distinct for the reconciler's
	// re-queue. Not part of the payload.
	Run string `json:"-"`
}

func (Score) Kind() string { return "job:score" }
func (Score) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueMatch, MaxRetry: 20, Timeout: 2 * time.Minute}
}
func (a Score) Validate() error  { return positive("submission_id", a.SubmissionID) }
func (a Score) TaskID() string   { return taskID(a.Kind(), a.SubmissionID, a.Run) }
func (a Score) SubjectID() int64 { return a.SubmissionID }

// Consensus measures a project's agreement and writes each job's consensus:
// every job with two or more submitted copies, its agreement, its majority and
// Dawid–Skene labels and its consensus result (a version the exports pack with
// include_consensus), and the project's report (Cohen's κ, Fleiss' κ,
// Krippendorff's α, the annotator × annotator matrix). A project without a
// label config has nothing to compare and is not retried.
type Consensus struct {
	ProjectID int64 `json:"project_id"`
	// Run makes each request's task id unique. Not part of the payload.
	Run string `json:"-"`
}

func (Consensus) Kind() string { return "project:consensus" }
func (Consensus) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueMatch, MaxRetry: 10, Timeout: 30 * time.Minute}
}
func (a Consensus) Validate() error  { return positive("project_id", a.ProjectID) }
func (a Consensus) TaskID() string   { return taskID(a.Kind(), a.ProjectID, a.Run) }
func (a Consensus) SubjectID() int64 { return a.ProjectID }
