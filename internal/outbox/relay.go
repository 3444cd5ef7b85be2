package outbox

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/admission"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/queue"
)

// Channel is the LISTEN/NOTIFY channel the outbox trigger signals on every insert.
const Channel = "labelq_outbox"

// DefaultRetention keeps a finished task's id reserved in Redis for this long, so a
// relay that enqueued a row and died before marking it cannot make a second task.
const DefaultRetention = time.Hour

// Defaults for a Relay's zero fields.
const (
	DefaultPollInterval = time.Second
	DefaultBatchSize    = 500
	// DefaultLease is how long a claimed batch is the claiming relay's. It is far
	// below DefaultRetention, so a batch taken again after a crash still meets its
	// tasks' ids in Redis.
	DefaultLease = time.Minute
)

// Relay moves committed outbox rows into asynq. Any number may run at once: each
// batch is claimed (with FOR UPDATE SKIP LOCKED, committed before Redis is
// called) for a lease, and task ids are deterministic.
type Relay struct {
	Pool         *pgxpool.Pool
	Client       *asynq.Client
	Log          *slog.Logger
	Metrics      *metrics.Metrics
	PollInterval time.Duration
	BatchSize    int
	// Lease is how long a claimed batch stays this relay's before another may
	// take it; default DefaultLease.
	Lease time.Duration
	// Admission holds an organization's rows back while it has its limit of
	// tasks of their type admitted and not finished (LABELQ_ADMIT_PER_ORG); the
	// zero value relays every row at once, oldest first. Every relay of a
	// deployment must have the same.
	Admission admission.Limits

	// ListenPool, when set, gives the LISTEN connection instead of Pool: one whose
	// connections are sessions on the server itself (LABELQ_DATABASE_DIRECT_URL),
	// for when Pool goes through a transaction pooler, which hands a session to
	// other clients after each statement, LISTEN and the notifications with it.
	ListenPool *pgxpool.Pool

	// Listening, when set, is called each time the LISTEN connection is up: a
	// test signal, so a test waits for it instead of sleeping.
	Listening func()

	// Wake, when set, is called after a batch is enqueued: it tells idle workers
	// to look now (queue.PublishWake) instead of at their next idle poll.
	Wake func(context.Context) error

	// afterEnqueue lets tests kill the relay between enqueue and marking the row.
	afterEnqueue func(db.Outbox) error

	// idle is set when this relay's last admission round found no organization's
	// rows held back: a finished task's wake-up then has nothing to admit and is
	// let go (rows that arrive wake the relay themselves).
	idle atomic.Bool
}

// Run relays until ctx ends: woken by NOTIFY, with polling as the fallback for a
// lost notification or a dropped LISTEN connection.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	go r.listen(ctx, wake)
	poll := cmp.Or(r.PollInterval, DefaultPollInterval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-timer.C:
		}
		for {
			n, err := r.RelayOnce(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.Log.WarnContext(ctx, "outbox relay failed; will retry", slog.String("error", err.Error()))
				break
			}
			if n < r.batch() {
				break
			}
		}
		timer.Reset(poll)
	}
}

// FreedGather is how long a relay gathers the admission slots finished tasks
// free before it admits the next rows: a round per gathering instead of a round
// per finished task.
const FreedGather = 25 * time.Millisecond

func (r *Relay) batch() int {
	return cmp.Or(r.BatchSize, DefaultBatchSize)
}

func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	for ctx.Err() == nil {
		err := func() error {
			pooled, err := cmp.Or(r.ListenPool, r.Pool).Acquire(ctx)
			if err != nil {
				return err
			}
			// The connection leaves the pool for good: LISTEN state must not be
			// handed to another user of the pool.
			conn := pooled.Hijack()
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
				return err
			}
			if r.Listening != nil {
				r.Listening()
			}
			var gathering atomic.Bool
			for {
				n, err := conn.WaitForNotification(ctx)
				if err != nil {
					return err
				}
				if n.Payload == "finished" && r.Admission.On() {
					if r.idle.Load() {
						continue
					}
					// A finished task frees one slot, and hundreds finish a second
					// under load: one admission round per slot kept PostgreSQL busy
					// with the round's queries (0.75x of the FIFO relay's throughput
					// at 50,000 versions). The slots freed within FreedGather go
					// into one round.
					if !gathering.Swap(true) {
						time.AfterFunc(FreedGather, func() {
							gathering.Store(false)
							select {
							case wake <- struct{}{}:
							default:
							}
						})
					}
					continue
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		r.Log.WarnContext(ctx, "outbox LISTEN connection lost; polling until it is back", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// RelayOnce moves one batch and returns how many rows it claimed. It claims the
// batch in one short transaction, enqueues outside any transaction, and marks the
// rows relayed in another, so no outbox row is locked while Redis is called. A
// relay that dies in between leaves claims that expire after Lease; the rows are
// then taken again, and their task ids make the second enqueue a no-op.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	lease := cmp.Or(r.Lease, DefaultLease)
	claim := newClaimID()
	q := db.New(r.Pool)
	rows, err := r.claim(ctx, q, claim, lease)
	if err != nil {
		return 0, fmt.Errorf("claim outbox rows: %w", err)
	}
	// Past the lease another relay may take these rows: stop before then rather
	// than race it (which would be harmless, but wasted).
	ectx, cancel := context.WithTimeout(ctx, lease)
	defer cancel()
	done := make([]int64, 0, len(rows))
	var failed error
	for _, row := range rows {
		if err := r.enqueue(ectx, row); err != nil {
			if ectx.Err() != nil {
				// Cut off, not refused: the enqueue may or may not have happened.
				failed = fmt.Errorf("enqueue outbox row %d: %w", row.ID, err)
				break
			}
			r.noteFailed(ctx, q, claim, row, err)
			continue
		}
		if r.afterEnqueue != nil {
			if err := r.afterEnqueue(row); err != nil {
				failed = err
				break
			}
		}
		done = append(done, row.ID)
	}
	if len(done) > 0 && r.Wake != nil {
		// Before the rows are marked: the workers start while the relay writes.
		// A lost wake-up costs the batch at most the workers' idle wait.
		if err := r.Wake(ctx); err != nil {
			r.Log.DebugContext(ctx, "wake the workers", slog.String("error", err.Error()))
		}
	}
	if len(done) > 0 {
		n, err := q.OutboxMarkEnqueued(context.WithoutCancel(ctx), db.OutboxMarkEnqueuedParams{Ids: done, ClaimedBy: claim})
		if err != nil {
			// The rows stay claimed and are relayed again once the lease ends.
			return len(rows), errors.Join(failed, fmt.Errorf("mark outbox rows enqueued: %w", err))
		}
		if r.Metrics != nil {
			r.Metrics.OutboxRelayed.Add(float64(n))
			for _, row := range rows {
				if slices.Contains(done, row.ID) {
					r.Metrics.OutboxLag.Observe(time.Since(row.CreatedAt).Seconds())
				}
			}
		}
	}
	if failed != nil {
		// A relay that stops mid-batch gives its rows back at once rather than
		// after the lease. Some may be in Redis already; taking them again is
		// safe, their task ids make the enqueue a no-op. (A relay that dies
		// outright cannot: its claims expire.)
		ids := make([]int64, 0, len(rows))
		for _, row := range rows {
			ids = append(ids, row.ID)
		}
		if err := q.OutboxReleaseClaims(context.WithoutCancel(ctx), db.OutboxReleaseClaimsParams{Ids: ids, ClaimedBy: claim}); err != nil {
			failed = errors.Join(failed, fmt.Errorf("release outbox claims: %w", err))
		}
	}
	return len(rows), failed
}

// claim takes the next batch: with admission off every available row, oldest
// first; with admission on, the rows admitted now, in round-robin order.
func (r *Relay) claim(ctx context.Context, q *db.Queries, claim string, lease time.Duration) ([]db.Outbox, error) {
	if !r.Admission.On() {
		rows, err := q.OutboxClaimBatch(ctx, db.OutboxClaimBatchParams{
			ClaimedBy: claim, LeaseSeconds: lease.Seconds(), MaxRows: int32(r.batch()),
		})
		// The update returns its rows in no particular order; relay the oldest first.
		slices.SortFunc(rows, func(a, b db.Outbox) int {
			return cmp.Or(a.AvailableAt.Compare(b.AvailableAt), cmp.Compare(a.ID, b.ID))
		})
		return rows, err
	}
	var claimed []db.OutboxAdmitBatchRow
	err := database.Tx(ctx, r.Pool, func(q *db.Queries, _ pgx.Tx) error {
		kinds, limits, def := r.Admission.SQLArgs()
		groups, err := q.OutboxAdmissionGroups(ctx, db.OutboxAdmissionGroupsParams{Kinds: kinds, Limits: limits, DefaultLimit: def})
		if err != nil {
			return fmt.Errorf("find waiting organizations: %w", err)
		}
		p := db.OutboxAdmitBatchParams{ClaimedBy: claim, LeaseSeconds: lease.Seconds(), MaxRows: int32(r.batch())}
		r.idle.Store(!slices.ContainsFunc(groups, func(g db.OutboxAdmissionGroupsRow) bool { return g.Lim > 0 }))
		for _, g := range groups {
			lim := int32(-1) // not held back
			if g.Lim > 0 {
				if !g.Locked {
					continue // another relay is admitting this organization's work of this type
				}
				lim = g.Lim
			}
			p.OrgKeys, p.TaskTypes, p.Groupeds = append(p.OrgKeys, g.OrgKey), append(p.TaskTypes, g.TaskType), append(p.Groupeds, g.Grouped)
			p.Lims, p.Weights = append(p.Lims, lim), append(p.Weights, max(g.Weight, 1))
		}
		if len(p.OrgKeys) == 0 {
			return nil
		}
		claimed, err = q.OutboxAdmitBatch(ctx, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(claimed, func(a, b db.OutboxAdmitBatchRow) int { return cmp.Compare(a.Ord, b.Ord) })
	rows := make([]db.Outbox, len(claimed))
	for i, c := range claimed {
		rows[i] = c.Outbox
	}
	return rows, nil
}

// noteFailed records a refused enqueue on its row and gives the claim back, with
// a backoff before the next try.
func (r *Relay) noteFailed(ctx context.Context, q *db.Queries, claim string, row db.Outbox, err error) {
	delay := queue.Backoff(int(row.Attempts), time.Second, 5*time.Minute)
	r.Log.WarnContext(ctx, "outbox row not enqueued; will retry",
		slog.Int64("outbox_id", row.ID), slog.String("task_type", row.TaskType),
		slog.String("task_id", row.TaskID), slog.String("error", err.Error()))
	msg := err.Error()
	if err := q.OutboxMarkFailed(ctx, db.OutboxMarkFailedParams{
		ID: row.ID, ClaimedBy: claim, LastError: &msg, AvailableAt: time.Now().Add(delay),
	}); err != nil && ctx.Err() == nil {
		// The claim expires instead; the row is retried then.
		r.Log.WarnContext(ctx, "could not note the enqueue error on the outbox row",
			slog.Int64("outbox_id", row.ID), slog.String("error", err.Error()))
	}
}

// newClaimID names one batch's claim, so that only the relay holding it marks
// the rows.
func newClaimID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (r *Relay) enqueue(ctx context.Context, row db.Outbox) error {
	var o Options
	if err := json.Unmarshal(row.Options, &o); err != nil {
		return fmt.Errorf("decode options: %w", err)
	}
	opts := []asynq.Option{asynq.Queue(row.Queue), asynq.TaskID(row.TaskID)}
	if o.MaxRetry != nil {
		opts = append(opts, asynq.MaxRetry(*o.MaxRetry))
	}
	if o.Timeout > 0 {
		opts = append(opts, asynq.Timeout(o.Timeout))
	}
	retention := o.Retention
	if retention <= 0 {
		retention = DefaultRetention
	}
	opts = append(opts, asynq.Retention(retention))
	if o.Group != "" {
		opts = append(opts, asynq.Group(o.Group))
	}
	if row.AvailableAt.After(time.Now()) {
		opts = append(opts, asynq.ProcessAt(row.AvailableAt))
	}
	var headers map[string]string
	if Priority(row.Priority) == PriorityBulk {
		headers = map[string]string{headerPriority: PriorityBulk.String()}
	}
	_, err := r.Client.EnqueueContext(ctx, asynq.NewTaskWithHeaders(row.TaskType, row.Payload, headers), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		// Already queued by an earlier attempt of this row (or of a relay that died
		// before marking it): the task exists once, which is the point.
		return nil
	}
	return err
}
