// Package schedule turns export_schedules into exports and storages' sync
// schedules into sync runs. The scheduler process runs asynq's periodic task
// manager with a config provider that reads both tables (re-synced every
// LABELQ_SCHEDULE_SYNC); each firing is a schedule:export (schedule:storage_sync)
// task whose handler works out which cron tick it stands for and creates that
// tick's export (sync run) under a unique key. asynq's scheduler has no leader
// election, so two scheduler copies both fire: the key makes the second firing a
// no-op.
package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/robfig/cron/v3"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
)

// Parser accepts what the API accepts: five fields or a descriptor (@daily, @every 1h).
var Parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec is the cron spec with its time zone, as asynq's scheduler (robfig/cron) reads it.
func Spec(cronSpec, timezone string) string {
	if timezone == "" {
		timezone = "UTC"
	}
	return "CRON_TZ=" + timezone + " " + cronSpec
}

// Provider is asynq's PeriodicTaskConfigProvider over export_schedules and the
// import storages' sync schedules, plus any static tasks (maintenance).
type Provider struct {
	Pool   *pgxpool.Pool
	Log    *slog.Logger
	Static func() ([]*asynq.PeriodicTaskConfig, error)
	// MinInterval (LABELQ_SCHEDULE_MIN_INTERVAL) skips schedules that fire more
	// often: the API refuses them, but a row may predate the limit or have been
	// written by hand. Zero checks nothing.
	MinInterval time.Duration

	mu       sync.Mutex
	tooOften map[string]error // by time zone and spec: CheckInterval's verdict
}

// checkInterval is CheckInterval, remembered per spec: GetConfigs runs every
// sync over every schedule, and specs repeat.
func (p *Provider) checkInterval(cronSpec, timezone string) error {
	if p.MinInterval <= 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := timezone + " " + cronSpec
	if err, ok := p.tooOften[key]; ok {
		return err
	}
	if p.tooOften == nil || len(p.tooOften) > 10000 {
		p.tooOften = map[string]error{}
	}
	err := CheckInterval(cronSpec, timezone, p.MinInterval, time.Now())
	p.tooOften[key] = err
	return err
}

// GetConfigs lists one periodic task per enabled export schedule and one per
// import storage with a sync schedule.
func (p *Provider) GetConfigs() ([]*asynq.PeriodicTaskConfig, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*asynq.PeriodicTaskConfig
	if p.Static != nil {
		static, err := p.Static()
		if err != nil {
			return nil, err
		}
		out = append(out, static...)
	}
	q := db.New(p.Pool)
	rows, err := q.ExportScheduleListEnabled(ctx)
	if err != nil {
		return nil, fmt.Errorf("read export schedules: %w", err)
	}
	for _, s := range rows {
		cfg, err := p.periodic("export schedule", slog.Int64("schedule_id", s.ID), s.CronSpec, s.Timezone, tasks.ScheduleExport{ScheduleID: s.ID})
		if err != nil {
			return nil, err
		}
		if cfg != nil {
			out = append(out, cfg)
		}
	}
	storages, err := q.StorageListScheduled(ctx)
	if err != nil {
		return nil, fmt.Errorf("read storage sync schedules: %w", err)
	}
	for _, s := range storages {
		cfg, err := p.periodic("storage sync schedule", slog.Int64("storage_id", s.ID), s.SyncCron, s.SyncTimezone, tasks.ScheduleSync{StorageID: s.ID})
		if err != nil {
			return nil, err
		}
		if cfg != nil {
			out = append(out, cfg)
		}
	}
	return out, nil
}

// periodic is the periodic task of one schedule, or nil (logged) for a spec that
// cannot be scheduled: invalid, or firing more often than MinInterval allows.
func (p *Provider) periodic(what string, id slog.Attr, cronSpec, timezone string, args tasks.Args) (*asynq.PeriodicTaskConfig, error) {
	spec := Spec(cronSpec, timezone)
	sched, err := Parser.Parse(spec)
	if err != nil {
		// The API validates specs; a row edited by hand must not stop the others.
		p.Log.Error(what+" has an invalid cron spec; skipped",
			id, slog.String("cron_spec", cronSpec), slog.String("error", err.Error()))
		return nil, nil
	}
	if err := p.checkInterval(cronSpec, timezone); err != nil {
		p.Log.Warn(what+" fires more often than LABELQ_SCHEDULE_MIN_INTERVAL allows; skipped",
			id, slog.String("cron_spec", cronSpec), slog.String("error", err.Error()))
		return nil, nil
	}
	// The options must be the same on every sync: asynq re-registers (and so
	// restarts the timer of) any periodic task whose config changed.
	ref := sched.Next(time.Unix(0, 0))
	period := sched.Next(ref).Sub(ref)
	if period < time.Second {
		period = time.Second
	}
	payload, err := tasks.Payload(args)
	if err != nil {
		return nil, err
	}
	return &asynq.PeriodicTaskConfig{
		Cronspec: spec,
		Task:     asynq.NewTask(args.Kind(), payload),
		// Fewer duplicate firings to process; the database key is what guarantees one
		// export (one sync run) per tick.
		Opts: append(args.InsertOpts().Options(), asynq.Unique(min(period, time.Minute))),
	}, nil
}

// Handler creates the export of the tick a firing stands for.
type Handler struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	// Now, when set, is the clock (tests); else the database's (DatabaseNow).
	Now func() time.Time
}

// clock is now: now() when set, else PostgreSQL's clock. Which tick a firing
// stands for must not depend on the worker that runs it: a worker whose clock is
// 30 s ahead would otherwise make each tick's export 30 s early, for a tick that
// has not come yet (labelq-chaos -netns found it).
func clock(ctx context.Context, pool *pgxpool.Pool, now func() time.Time) (time.Time, error) {
	if now != nil {
		return now(), nil
	}
	t, err := db.New(pool).DatabaseNow(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", err)
	}
	return t, nil
}

// LatestTick is the newest tick of spec at or before now, looking back from `from`
// (the last firing) or a day, whichever is later.
func LatestTick(spec string, from, now time.Time) (time.Time, error) {
	s, err := Parser.Parse(spec)
	if err != nil {
		return time.Time{}, err
	}
	// "@every d" counts from whenever a scheduler started, so two schedulers would
	// disagree on its ticks; aligned to the epoch, every copy names the same tick.
	if cd, ok := s.(cron.ConstantDelaySchedule); ok {
		return now.Truncate(cd.Delay), nil
	}
	start := now.Add(-24 * time.Hour)
	if from.After(start) && from.Before(now) {
		start = from.Add(-time.Second)
	}
	var tick time.Time
	for t := s.Next(start); !t.After(now); t = s.Next(t) {
		tick = t
	}
	return tick, nil
}

// Work creates the export of the tick a firing stands for. Mount it with
// tasks.Register.
func (h *Handler) Work(ctx context.Context, p tasks.ScheduleExport) error {
	log := logging.From(ctx, h.Log)
	now, err := clock(ctx, h.Pool, h.Now)
	if err != nil {
		return err
	}
	// A firing is processed shortly after its tick; allow for the clock skew between
	// the scheduler's machine and this one.
	now = now.Add(2 * time.Second)
	return database.Tx(ctx, h.Pool, func(q *db.Queries, _ pgx.Tx) error {
		s, err := q.ExportScheduleGetByID(ctx, p.ScheduleID)
		if errors.Is(err, pgx.ErrNoRows) {
			log.InfoContext(ctx, "schedule was deleted; firing ignored", slog.Int64("schedule_id", p.ScheduleID))
			return nil
		}
		if err != nil {
			return err
		}
		if !s.Enabled {
			return nil
		}
		from := time.Time{}
		if s.LastFiredAt != nil {
			from = *s.LastFiredAt
		}
		tick, err := LatestTick(Spec(s.CronSpec, s.Timezone), from, now)
		if err != nil {
			return queue.Permanent(fmt.Errorf("schedule %d: cron spec %q: %w", s.ID, s.CronSpec, err))
		}
		if tick.IsZero() {
			return nil
		}
		e, err := q.ExportLogCreateForTick(ctx, db.ExportLogCreateForTickParams{
			OrgID: s.OrgID, ProjectID: s.ProjectID, ScheduleID: &s.ID, ScheduledFor: &tick, Options: s.Options,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // this tick's export exists: another scheduler fired it too
		}
		if err != nil {
			return err
		}
		if err := q.ExportScheduleSetLastFired(ctx, db.ExportScheduleSetLastFiredParams{ID: s.ID, FiredAt: &tick}); err != nil {
			return err
		}
		// A schedule's tick is bulk work: an export asked for now goes first.
		if err := outbox.Add(ctx, q, s.OrgID, tasks.Export{ExportID: e.ID}, outbox.As(outbox.PriorityBulk)); err != nil {
			return err
		}
		meta, _ := json.Marshal(map[string]any{"schedule_id": s.ID, "scheduled_for": tick})
		key := fmt.Sprintf("export:%d:requested", e.ID)
		return q.EventLogInsert(ctx, db.EventLogInsertParams{
			OrgID: s.OrgID, EntityType: db.EntityTypeExport, EntityID: e.ID, EventType: "export_requested",
			DedupKey: &key, Metadata: meta,
		})
	})
}

// gapHorizon and gapTicks bound how far CheckInterval looks ahead: a year
// catches month ends and DST changes, and any spec with more ticks than that
// within the year has had every chance to show a short gap.
const (
	gapHorizon = 366 * 24 * time.Hour
	gapTicks   = 2000
)

// TooFrequentError says a spec fires more often than the operator allows.
type TooFrequentError struct {
	Gap, Min time.Duration
	At       time.Time
}

func (e *TooFrequentError) Error() string {
	return fmt.Sprintf("fires %s apart (at %s); schedules may fire at most once every %s",
		e.Gap, e.At.Format(time.RFC3339), e.Min)
}

// CheckInterval refuses a cron spec (in its time zone) two of whose consecutive
// ticks are less than min apart, over the ticks after from (up to a year ahead or
// gapTicks ticks): "@every 1s", "*/5 * * * *", but also "0,30 2 * * *", whose
// ticks are a day apart on average and half an hour at worst. It returns a
// *TooFrequentError for a spec that fires too often.
func CheckInterval(cronSpec, timezone string, min time.Duration, from time.Time) error {
	s, err := Parser.Parse(Spec(cronSpec, timezone))
	if err != nil {
		return err
	}
	if min <= 0 {
		return nil
	}
	if cd, ok := s.(cron.ConstantDelaySchedule); ok {
		if cd.Delay < min {
			return &TooFrequentError{Gap: cd.Delay, Min: min, At: from}
		}
		return nil
	}
	end := from.Add(gapHorizon)
	prev := s.Next(from)
	for range gapTicks {
		if prev.IsZero() || prev.After(end) {
			return nil
		}
		next := s.Next(prev)
		if next.IsZero() {
			return nil
		}
		if gap := next.Sub(prev); gap < min {
			return &TooFrequentError{Gap: gap, Min: min, At: prev}
		}
		prev = next
	}
	return nil
}
