package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The -netns invariants. Every task a cut-off worker held is followed by its
// subject (the version, export, delivery or sync run it works on) from the cut
// to the end of the run:
//
//   - its effects happen once: one outcome event for a version, one LLM output
//     for a pre-annotated version, one outcome event for an export, whoever ran
//     it (the cut worker, or the one that took the task over);
//   - once it is terminal it stays as it was: the fingerprint first seen terminal
//     (twice in a row, half a second apart) is the one at the end, so a commit
//     the cut worker makes after reconnecting changes nothing.
//
// Beside them, over every row: no version and no export with two outcome
// events, no version with two LLM outputs, and no schedule tick exported before
// its time (a worker whose clock is ahead must not run tomorrow's tick today).

// watched is one subject followed.
type watched struct {
	Subject        subject
	Task           string // type and id of the task that held it
	Worker, Target string
	// First is the fingerprint first seen terminal (seen is the previous poll's).
	First   string
	FirstAt time.Time
	seen    string
}

// watchSubjects follows the subjects of a cut's tasks (see watchLoop).
func (r *run) watchSubjects(rec *cutRecord) {
	r.part.mu.Lock()
	if r.part.subjects == nil {
		r.part.subjects = map[subject]*watched{}
	}
	for _, t := range rec.Held {
		if t.Subject.Kind == "" || r.part.subjects[t.Subject] != nil {
			continue
		}
		r.part.subjects[t.Subject] = &watched{Subject: t.Subject, Task: t.Type + " " + t.ID, Worker: rec.Worker, Target: rec.Target}
	}
	r.part.mu.Unlock()
	r.part.watchOnce.Do(func() {
		r.part.stop, r.part.done = make(chan struct{}), make(chan struct{})
		go r.watchLoop()
	})
}

// watchLoop polls the subjects not yet seen terminal until stopWatching.
func (r *run) watchLoop() {
	defer close(r.part.done)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.part.stop:
			return
		case <-tick.C:
		}
		r.part.mu.Lock()
		var unseen []*watched
		for _, w := range r.part.subjects {
			if w.FirstAt.IsZero() {
				unseen = append(unseen, w)
			}
		}
		r.part.mu.Unlock()
		for _, w := range unseen {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			fp, err := fingerprint(ctx, r.pool, w.Subject)
			cancel()
			if err != nil {
				continue // Postgres restarting: look again
			}
			r.part.mu.Lock()
			switch {
			case fp.Terminal && fp.Text == w.seen:
				w.First, w.FirstAt = fp.Text, time.Now()
			case fp.Terminal:
				w.seen = fp.Text
			default:
				w.seen = ""
			}
			r.part.mu.Unlock()
		}
	}
}

func (r *run) stopWatching() {
	if r.part.stop == nil {
		return
	}
	close(r.part.stop)
	<-r.part.done
	r.part.stop = nil
}

// subjectState is a subject's fingerprint: the columns its task decides and the
// effects counted, as text.
type subjectState struct {
	Terminal bool
	Text     string
	// Effects is what its task produced (outcome events, LLM outputs); Want is
	// how many it must be, -1 when the kind has no effect counted.
	Effects, Want int
}

// fingerprints are the queries, by subject kind: terminal, text, effects, want.
var fingerprints = map[string]string{
	subjectVersion: `SELECT v.validation_status <> 'pending',
		concat_ws(' ', 'status=' || v.validation_status, 'checksum=' || coalesce(left(v.checksum, 12), '-'),
		'size=' || coalesce(v.size_bytes::text, '-'), 'validated_at=' || coalesce(v.validated_at::text, '-'),
		'duplicate_of=' || coalesce(v.duplicate_of::text, '-'), 'attempts=' || v.validation_attempts,
		'error=' || coalesce(left(v.validation_error, 60), '-'), 'events=' || o.n),
		o.n, CASE WHEN v.validation_status = 'pending' THEN 0 ELSE 1 END
		FROM file_versions v, LATERAL (SELECT count(*)::int AS n FROM event_log e WHERE e.entity_type = 'file_version'
		AND e.entity_id = v.id AND e.event_type IN ('validated', 'corrupt', 'missing', 'rejected')) o WHERE v.id = $1`,
	subjectPreannotation: `SELECT coalesce(v.preannotation_status::text, '') IN ('succeeded', 'failed', 'skipped'),
		concat_ws(' ', 'status=' || coalesce(v.preannotation_status::text, '-'), 'reason=' || coalesce(left(v.preannotation_reason, 60), '-'),
		'paid_runs=' || (SELECT count(*) FROM llm_runs l WHERE l.file_version_id = v.id AND l.status = 'succeeded' AND l.cached_from_id IS NULL),
		'events=' || (SELECT count(*) FROM event_log e WHERE e.entity_type = 'file_version' AND e.entity_id = v.id
		AND e.event_type IN ('preannotated', 'preannotation_failed', 'preannotation_skipped')), 'outputs=' || o.n),
		o.n, CASE WHEN v.preannotation_status = 'succeeded' THEN 1 ELSE 0 END
		FROM file_versions v, LATERAL (SELECT count(*)::int AS n FROM file_versions x WHERE x.source_file_version_id = v.id
		AND x.generation_method = 'llm') o WHERE v.id = $1`,
	subjectExport: `SELECT x.status IN ('completed', 'failed', 'cancelled'),
		concat_ws(' ', 'status=' || x.status, 'path=' || coalesce(x.storage_path, '-'), 'sha256=' || coalesce(left(x.archive_sha256, 12), '-'),
		'size=' || coalesce(x.size_bytes::text, '-'), 'files=' || coalesce(x.file_count::text, '-'),
		'completed_at=' || coalesce(x.completed_at::text, '-'), 'attempts=' || x.attempts, 'events=' || o.n),
		o.n, CASE WHEN x.status IN ('completed', 'failed') THEN 1 ELSE 0 END
		FROM export_logs x, LATERAL (SELECT count(*)::int AS n FROM event_log e WHERE e.entity_type = 'export'
		AND e.entity_id = x.id AND e.event_type IN ('exported', 'export_failed')) o WHERE x.id = $1`,
	subjectDelivery: `SELECT d.status <> 'pending',
		concat_ws(' ', 'status=' || d.status, 'attempts=' || d.attempts, 'code=' || coalesce(d.last_status_code::text, '-'),
		'finished_at=' || coalesce(d.finished_at::text, '-')), 0, -1
		FROM webhook_deliveries d WHERE d.id = $1`,
	subjectSyncRun: `SELECT s.status IN ('completed', 'failed', 'cancelled'),
		concat_ws(' ', 'status=' || s.status, 'listed=' || s.keys_listed, 'new=' || s.keys_new, 'changed=' || s.keys_changed,
		'gone=' || s.keys_gone, 'completed_at=' || coalesce(s.completed_at::text, '-')), 0, -1
		FROM sync_runs s WHERE s.id = $1`,
}

func fingerprint(ctx context.Context, db querier, s subject) (subjectState, error) {
	q, ok := fingerprints[s.Kind]
	if !ok {
		return subjectState{}, fmt.Errorf("no fingerprint for %s", s.Kind)
	}
	var st subjectState
	err := db.QueryRow(ctx, q, s.ID).Scan(&st.Terminal, &st.Text, &st.Effects, &st.Want)
	if errors.Is(err, pgx.ErrNoRows) {
		return subjectState{Text: "row missing"}, nil
	}
	if err != nil {
		return subjectState{}, fmt.Errorf("read %s: %w", s, err)
	}
	return st, nil
}

// partitionFigures are the -netns figures (none without it).
func (r *run) partitionFigures(ctx context.Context) []Figure {
	if !r.cfg.Netns {
		return nil
	}
	r.stopWatching()
	r.part.mu.Lock()
	cuts := slices.Clone(r.part.cuts)
	subjects := make([]*watched, 0, len(r.part.subjects))
	for _, w := range r.part.subjects {
		c := *w
		subjects = append(subjects, &c)
	}
	skewed := r.part.skewed
	r.part.mu.Unlock()
	slices.SortFunc(subjects, func(a, b *watched) int { return strings.Compare(a.Subject.String(), b.Subject.String()) })

	figs := cutFigures(cuts, r.cfg)
	figs = append(figs, subjectFigures(ctx, r.pool, subjects)...)
	figs = append(figs, effectsOnceFigures(ctx, r.pool, r.scheduleID)...)
	if skewed != "" {
		figs = append(figs, Figure{"clock_skewed_worker", fmt.Sprintf("%s %+v (LABELQ_CLOCK_SKEW)", skewed, r.cfg.ClockSkew), "", true})
	}
	return figs
}

// cutFigures say what each cut did; a cut that found nothing to cut off fails
// (it proved nothing).
func cutFigures(cuts []*cutRecord, cfg Config) []Figure {
	var figs []Figure
	for _, c := range cuts {
		name := "netns_cut_" + c.Target
		if c.Err != "" || c.Worker == "" {
			figs = append(figs, Figure{name, "not made: " + cmpStr(c.Err, "the run ended first"), "made", false})
			continue
		}
		taken := 0
		for _, t := range c.Held {
			if !t.TakenOver.IsZero() {
				taken++
			}
		}
		secs := c.End.Sub(c.Start).Seconds()
		if c.End.IsZero() {
			secs = -1
		}
		switch c.Target {
		case cutRedis:
			figs = append(figs,
				Figure{name, fmt.Sprintf("%s for %.1fs, %d tasks held (%s)", c.Worker, secs, len(c.Held), heldTypes(c.Held)),
					"tasks held > 0", len(c.Held) > 0 && secs > 0},
				Figure{"netns_cut_redis_tasks_taken_over_while_cut_off", fmt.Sprintf("%d/%d", taken, len(c.Held)),
					fmt.Sprintf("(lease 30 s + 30 s, cut %s)", cfg.RedisCut), true})
		case cutPostgres:
			figs = append(figs, Figure{name, fmt.Sprintf("%s for %.1fs, %d transactions open at the cut, %d tasks held (%s)",
				c.Worker, secs, c.OpenTx, len(c.Held), heldTypes(c.Held)), "transactions open > 0", c.OpenTx > 0 && secs > 0})
		}
	}
	return figs
}

func cmpStr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// subjectFigures check each followed subject: terminal, effects once, and
// unchanged since it was first seen terminal.
func subjectFigures(ctx context.Context, db querier, subjects []*watched) []Figure {
	var notTerminal, notOnce, changed []string
	tracked := 0
	for _, w := range subjects {
		tracked++
		st, err := fingerprint(ctx, db, w.Subject)
		if err != nil {
			return []Figure{
				failedFigure("partition_subjects_not_terminal", "0", err),
				failedFigure("partition_subjects_effects_not_once", "0", err),
				failedFigure("partition_subjects_changed_after_terminal", "0", err),
			}
		}
		who := fmt.Sprintf("%s (%s, held by %s when cut off from %s)", w.Subject, w.Task, w.Worker, w.Target)
		if !st.Terminal {
			notTerminal = append(notTerminal, who+": "+st.Text)
		}
		if st.Terminal && st.Want >= 0 && st.Effects != st.Want {
			notOnce = append(notOnce, fmt.Sprintf("%s: %d effects, want %d: %s", who, st.Effects, st.Want, st.Text))
		}
		if !w.FirstAt.IsZero() && st.Text != w.First {
			changed = append(changed, fmt.Sprintf("%s: %s at %s, then %s", who, w.First, w.FirstAt.UTC().Format(time.RFC3339), st.Text))
		}
	}
	named := func(lines []string) string {
		return strings.Join(append([]string{fmt.Sprint(len(lines))}, lines...), "\n")
	}
	return []Figure{
		{"partition_subjects_followed (of the tasks the cut workers held)", fmt.Sprint(tracked), "", true},
		{"partition_subjects_not_terminal", named(notTerminal), "0", len(notTerminal) == 0},
		{"partition_subjects_effects_not_once", named(notOnce), "0", len(notOnce) == 0},
		{"partition_subjects_changed_after_terminal", named(changed), "0", len(changed) == 0},
	}
}

// effectsOnceFigures hold over every row, not only the followed ones.
func effectsOnceFigures(ctx context.Context, db querier, scheduleID int64) []Figure {
	figs := []Figure{
		zeroFigure(ctx, db, "versions_with_two_outcome_events", `SELECT count(*) FROM (SELECT 1 FROM event_log
			WHERE entity_type = 'file_version' AND event_type IN ('validated', 'corrupt', 'missing', 'rejected')
			GROUP BY entity_id HAVING count(*) > 1) d`),
		zeroFigure(ctx, db, "exports_with_two_outcome_events", `SELECT count(*) FROM (SELECT 1 FROM event_log
			WHERE entity_type = 'export' AND event_type IN ('exported', 'export_failed') GROUP BY entity_id HAVING count(*) > 1) d`),
		zeroFigure(ctx, db, "versions_with_two_llm_outputs", `SELECT count(*) FROM (SELECT 1 FROM file_versions
			WHERE generation_method = 'llm' AND source_file_version_id IS NOT NULL GROUP BY source_file_version_id HAVING count(*) > 1) d`),
	}
	return append(figs, earlyTicks(ctx, db, scheduleID))
}

// earlyTicks: a schedule tick's export is made at its tick or after it (the
// schedule handler allows 2 s for the scheduler's clock), never before, whatever
// the clock of the worker that handled the firing. Each one is named.
func earlyTicks(ctx context.Context, db querier, scheduleID int64) Figure {
	const name = "schedule_ticks_exported_before_their_tick"
	rows, err := db.Query(ctx, `SELECT id, scheduled_for, created_at FROM export_logs WHERE schedule_id = $1
		AND scheduled_for > created_at + interval '2.5 seconds' ORDER BY id`, scheduleID)
	if err != nil {
		return failedFigure(name, "0", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id int64
		var tick, created time.Time
		if err := rows.Scan(&id, &tick, &created); err != nil {
			return failedFigure(name, "0", err)
		}
		lines = append(lines, fmt.Sprintf("export %d for the tick %s made at %s (%.1fs early)", id,
			tick.UTC().Format(time.RFC3339), created.UTC().Format("15:04:05.000"), tick.Sub(created).Seconds()))
	}
	if err := rows.Err(); err != nil {
		return failedFigure(name, "0", err)
	}
	return Figure{name, strings.Join(append([]string{fmt.Sprint(len(lines))}, lines...), "\n"), "0", len(lines) == 0}
}
