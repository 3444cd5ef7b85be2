package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
)

// Assertions over the outbox, after River's rivertest.RequireInserted: tests name
// the task they expect by its args (tasks.Validate{VersionID: v.ID}, …), never by a
// kind string, a queue name or a task id format of their own.

// RequireQueued asserts that orgID's outbox holds args' task: a row with its task
// id whose kind, queue, subject, payload (JSON-equal to tasks.Payload(args)) and
// options are those outbox.Add writes for args. It returns the newest such row.
// q is a pool, a connection or a transaction.
func RequireQueued(t testing.TB, q db.DBTX, orgID int64, args tasks.Queued) db.Outbox {
	t.Helper()
	row, err := db.New(q).OutboxGetByTaskID(context.Background(), db.OutboxGetByTaskIDParams{TaskID: args.TaskID(), OrgID: &orgID})
	if errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("testenv: no %s task %q in the outbox of org %d; it holds %s", args.Kind(), args.TaskID(), orgID, listRows(t, q, orgID))
	}
	require.NoError(t, err, "testenv: read the outbox")
	requireRowOf(t, row, orgID, args)
	return row
}

// RequireNotQueued asserts that no outbox row of orgID carries args' task id.
func RequireNotQueued(t testing.TB, q db.DBTX, orgID int64, args tasks.Queued) {
	t.Helper()
	row, err := db.New(q).OutboxGetByTaskID(context.Background(), db.OutboxGetByTaskIDParams{TaskID: args.TaskID(), OrgID: &orgID})
	if errors.Is(err, pgx.ErrNoRows) {
		return
	}
	require.NoError(t, err, "testenv: read the outbox")
	t.Fatalf("testenv: %s task %q is in the outbox of org %d (row %d, payload %s), and should not be", args.Kind(), row.TaskID, orgID, row.ID, row.Payload)
}

// RequireLatestQueued asserts that the newest outbox row of args' kind for args'
// subject (the row the reconciler looks at) is args' task in all but its task id,
// as RequireQueued checks it, and returns it. For tasks queued with a run the test
// cannot know (the reconciler's requeues): check the returned row's TaskID as
// needed.
func RequireLatestQueued(t testing.TB, q db.DBTX, orgID int64, args tasks.Queued) db.Outbox {
	t.Helper()
	row, err := db.New(q).OutboxLatestForSubject(context.Background(), db.OutboxLatestForSubjectParams{TaskType: args.Kind(), SubjectID: args.SubjectID()})
	if errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("testenv: no %s task for subject %d in the outbox; org %d's holds %s", args.Kind(), args.SubjectID(), orgID, listRows(t, q, orgID))
	}
	require.NoError(t, err, "testenv: read the outbox")
	requireRowOf(t, row, orgID, args)
	return row
}

// OutboxRows lists orgID's outbox rows, oldest first: for tests that check what was
// queued and nothing else, or that a replay queued nothing more.
func OutboxRows(t testing.TB, q db.DBTX, orgID int64) []db.Outbox {
	t.Helper()
	// No generated query lists an organization's rows: production code never needs to.
	rows, err := q.Query(context.Background(), "SELECT * FROM outbox WHERE org_id = $1 ORDER BY id", orgID)
	require.NoError(t, err, "testenv: list the outbox")
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[db.Outbox])
	require.NoError(t, err, "testenv: list the outbox")
	return out
}

// Kinds are the rows' task kinds, in order.
func Kinds(rows []db.Outbox) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.TaskType)
	}
	return out
}

// rowOptions mirrors outbox.Options, the JSON the relay reads back (its names never
// change: rows written before a deploy are relayed after it).
type rowOptions struct {
	MaxRetry  *int          `json:"max_retry"`
	Timeout   time.Duration `json:"timeout"`
	Retention time.Duration `json:"retention"`
	Group     string        `json:"group"`
}

func requireRowOf(t testing.TB, row db.Outbox, orgID int64, args tasks.Queued) {
	t.Helper()
	what := fmt.Sprintf("outbox row %d (%s)", row.ID, row.TaskID)
	require.Equal(t, args.Kind(), row.TaskType, "%s: task kind", what)
	opts := args.InsertOpts()
	require.Equal(t, opts.Queue, row.Queue, "%s: queue", what)
	require.NotNil(t, row.OrgID, "%s: org", what)
	require.Equal(t, orgID, *row.OrgID, "%s: org", what)
	require.NotNil(t, row.SubjectID, "%s: subject", what)
	require.Equal(t, args.SubjectID(), *row.SubjectID, "%s: subject", what)
	want, err := tasks.Payload(args)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(row.Payload), "%s: payload", what)
	var got rowOptions
	require.NoError(t, json.Unmarshal(row.Options, &got), "%s: options %s", what, row.Options)
	require.NotNil(t, got.MaxRetry, "%s: options %s carry no max_retry", what, row.Options)
	require.Equal(t, rowOptions{MaxRetry: &opts.MaxRetry, Timeout: opts.Timeout, Retention: opts.Retention, Group: opts.Group}, got,
		"%s: options", what)
}

// listRows describes orgID's outbox for a failure message.
func listRows(t testing.TB, q db.DBTX, orgID int64) string {
	t.Helper()
	rows := OutboxRows(t, q, orgID)
	if len(rows) == 0 {
		return "nothing"
	}
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = fmt.Sprintf("%s (%s)", r.TaskID, r.Payload)
	}
	return strings.Join(parts, ", ")
}
