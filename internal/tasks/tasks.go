// Package tasks holds labelq's task contracts, one exported args type per task kind,
// after River's JobArgs: the kind string (never renamed once shipped), the payload's
// fields with their JSON names, the default insert options (queue, retries, timeout,
// group) and the deterministic task id. Everything that queues a task (the API, the
// workers' next steps, the reconciler, the scheduler) builds one of these values and
// hands it to outbox.Add; every handler receives one decoded and validated by Handle.
// Nothing else formats a task id or names a queue.
//
// The package sits below the workers: it imports no worker, so the API and the
// maintenance code can queue any kind of work without linking the code that does it.
package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/queue"
)

// Args is one task kind's contract: a payload struct whose Kind names the task type.
type Args interface {
	// Kind is the asynq task type, such as "file:validate". Never renamed once
	// shipped: tasks already in Redis carry it.
	Kind() string
	// InsertOpts are the defaults a task of this kind is queued with.
	InsertOpts() InsertOpts
	// Validate says why a decoded payload can never be processed (nil when it can).
	Validate() error
}

// Queued is an Args that goes through the outbox: it has a deterministic task id
// (the same id is queued at most once while its task lives) and names the row it
// works on, which is how the reconciler finds the newest task of a stuck row.
type Queued interface {
	Args
	// TaskID is the asynq task id.
	TaskID() string
	// SubjectID is the id of the row the task works on (a version, an export, a
	// project): the outbox stores it so "is this row's task alive" is one indexed
	// look-up by (kind, subject).
	SubjectID() int64
}

// InsertOpts are the asynq options a task is queued with.
type InsertOpts struct {
	Queue string
	// MaxRetry is how many retries asynq makes before archiving the task.
	MaxRetry int
	// Timeout bounds one attempt.
	Timeout time.Duration
	// Retention keeps a finished task (and so its id) in Redis; zero means the
	// outbox's default.
	Retention time.Duration
	// Group aggregates the tasks of one group into one (project:match per project).
	Group string
}

// Options turns the insert options into asynq's.
func (o InsertOpts) Options() []asynq.Option {
	opts := []asynq.Option{asynq.Queue(o.Queue), asynq.MaxRetry(o.MaxRetry)}
	if o.Timeout > 0 {
		opts = append(opts, asynq.Timeout(o.Timeout))
	}
	if o.Retention > 0 {
		opts = append(opts, asynq.Retention(o.Retention))
	}
	if o.Group != "" {
		opts = append(opts, asynq.Group(o.Group))
	}
	return opts
}

// Payload is the JSON a task of args a carries.
func Payload(a Args) ([]byte, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", a.Kind(), err)
	}
	return b, nil
}

// NewTask builds the asynq task for a with its default options and, for a Queued
// kind, its task id. Production code queues through outbox.Add; this is for the
// scheduler's periodic tasks, tests and tools.
func NewTask(a Args, extra ...asynq.Option) (*asynq.Task, error) {
	b, err := Payload(a)
	if err != nil {
		return nil, err
	}
	opts := a.InsertOpts().Options()
	if q, ok := a.(Queued); ok {
		opts = append(opts, asynq.TaskID(q.TaskID()))
	}
	return asynq.NewTask(a.Kind(), b, append(opts, extra...)...), nil
}

// taskID is "<kind>:<subject>" with ":<run>" appended when run is set.
func taskID(kind string, subject int64, run string) string {
	id := fmt.Sprintf("%s:%d", kind, subject)
	if run != "" {
		id += ":" + run
	}
	return id
}

func positive(field string, v int64) error {
	if v <= 0 {
		return fmt.Errorf("%s is missing or not a positive integer", field)
	}
	return nil
}

// File pipeline ------------------------------------------------------------------

// Validate checks an uploaded version's bytes and decides valid, corrupt, missing
// or rejected.
type Validate struct {
	VersionID int64 `json:"version_id"`
	// Run tells apart the tasks of one version: "" for the pipeline's first
	// validation, distinct for each re-validation, so a re-run is not taken for a
	// duplicate of the finished first task. Not part of the payload.
	Run string `json:"-"`
}

func (Validate) Kind() string { return "file:validate" }
func (Validate) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueValidate, MaxRetry: 25, Timeout: 2 * time.Hour}
}
func (a Validate) Validate() error  { return positive("version_id", a.VersionID) }
func (a Validate) TaskID() string   { return taskID(a.Kind(), a.VersionID, a.Run) }
func (a Validate) SubjectID() int64 { return a.VersionID }

// Preannotate sends a valid dataset version to the project's model and stores the
// reply as an llm_output version.
type Preannotate struct {
	VersionID int64 `json:"version_id"`
	// Run is "" for the pipeline's run and distinct for each explicit re-run.
	Run string `json:"-"`
}

func (Preannotate) Kind() string { return "file:preannotate" }
func (Preannotate) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueuePreannotate, MaxRetry: 25, Timeout: 10 * time.Minute}
}
func (a Preannotate) Validate() error  { return positive("version_id", a.VersionID) }
func (a Preannotate) TaskID() string   { return taskID(a.Kind(), a.VersionID, a.Run) }
func (a Preannotate) SubjectID() int64 { return a.VersionID }

// Matching -----------------------------------------------------------------------

// Match runs assignment matching for a project now (the API's run-now, a
// revocation, the reconciler). MatchTrigger is the pipeline's aggregated form.
type Match struct {
	ProjectID int64 `json:"project_id"`
	// Run makes each request's task id unique. Not part of the payload.
	Run string `json:"-"`
}

func (Match) Kind() string { return "project:match" }
func (Match) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueMatch, MaxRetry: 10, Timeout: 5 * time.Minute}
}
func (a Match) Validate() error  { return positive("project_id", a.ProjectID) }
func (a Match) TaskID() string   { return taskID(a.Kind(), a.ProjectID, "now:"+a.Run) }
func (a Match) SubjectID() int64 { return a.ProjectID }

// MatchTrigger is "a new job exists in project P": the same task kind and payload
// as Match, aggregated per project so a burst of uploads becomes a few matching
// runs. Its handler is Match's.
type MatchTrigger struct {
	ProjectID int64 `json:"project_id"`
	// Run makes each trigger's task id unique (triggers are many; the group merges
	// them): the version that triggered it. Not part of the payload.
	Run string `json:"-"`
}

func (MatchTrigger) Kind() string { return Match{}.Kind() }
func (a MatchTrigger) InsertOpts() InsertOpts {
	o := Match{}.InsertOpts()
	o.Group = MatchGroup(a.ProjectID)
	return o
}
func (a MatchTrigger) Validate() error  { return positive("project_id", a.ProjectID) }
func (a MatchTrigger) TaskID() string   { return taskID(a.Kind(), a.ProjectID, "t:"+a.Run) }
func (a MatchTrigger) SubjectID() int64 { return a.ProjectID }

// MatchGroup is the asynq aggregation group of a project's triggers.
func MatchGroup(projectID int64) string { return fmt.Sprintf("project:%d", projectID) }

// Exports ------------------------------------------------------------------------

// Export streams a project's export (an export_logs row) into object storage.
type Export struct {
	ExportID int64 `json:"export_id"`
	// Run is "" for the export's first task and distinct for a re-queue.
	Run string `json:"-"`
}

func (Export) Kind() string { return "project:export" }
func (Export) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueExport, MaxRetry: 8, Timeout: 12 * time.Hour}
}
func (a Export) Validate() error  { return positive("export_id", a.ExportID) }
func (a Export) TaskID() string   { return taskID(a.Kind(), a.ExportID, a.Run) }
func (a Export) SubjectID() int64 { return a.ExportID }

// ScheduleExport is an export schedule firing: its handler creates the export of
// the tick. Queued by asynq's periodic task manager, not the outbox; uniqueness per
// period is added there.
type ScheduleExport struct {
	ScheduleID int64 `json:"schedule_id"`
}

func (ScheduleExport) Kind() string { return "schedule:export" }
func (ScheduleExport) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueExport, MaxRetry: 10}
}
func (a ScheduleExport) Validate() error { return positive("schedule_id", a.ScheduleID) }

// Maintenance --------------------------------------------------------------------

// Reconcile is the periodic pass that requeues rows whose task was lost. A pass
// that fails is not retried: the next one does the same work.
type Reconcile struct{}

func (Reconcile) Kind() string { return "maintenance:reconcile" }
func (Reconcile) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueDefault, MaxRetry: 0}
}
func (Reconcile) Validate() error { return nil }

// ExportRetention is the periodic pass that deletes expired export archives.
type ExportRetention struct{}

func (ExportRetention) Kind() string { return "maintenance:export_retention" }
func (ExportRetention) InsertOpts() InsertOpts {
	return InsertOpts{Queue: queue.QueueDefault, MaxRetry: 0}
}
func (ExportRetention) Validate() error { return nil }

// Periodic is the scheduler's entry for a maintenance kind: every interval, unique
// for the interval (a second scheduler's copy is a no-op), one attempt bounded by
// the interval.
func Periodic(a Args, every time.Duration) (*asynq.PeriodicTaskConfig, error) {
	b, err := Payload(a)
	if err != nil {
		return nil, err
	}
	opts := append(a.InsertOpts().Options(), asynq.Unique(every), asynq.Timeout(every))
	return &asynq.PeriodicTaskConfig{Cronspec: "@every " + every.String(), Task: asynq.NewTask(a.Kind(), b), Opts: opts}, nil
}
