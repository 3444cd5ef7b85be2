// Package heartbeat shows that a long task's worker is still there. While an
// export or a sync run runs, a goroutine tied to the task's context writes the
// row's heartbeat_at every interval (LABELQ_HEARTBEAT_INTERVAL); a worker that
// is killed, frozen or cut off stops writing it, and the API answers "stalled"
// for a running row whose heartbeat is older than StallBeats intervals, long
// before asynq's lease on the task runs out and another worker takes it over.
package heartbeat

import (
	"cmp"
	"context"
	"log/slog"
	"time"
)

const (
	// DefaultInterval is how often a running task beats.
	DefaultInterval = 5 * time.Second
	// StallBeats is how many intervals a running row may go without a beat
	// before it is reported stalled: one missed beat is a slow statement or a
	// busy database, three are a worker that is gone.
	StallBeats = 3
)

// StallAfter is how old a running row's heartbeat may be before it is stalled:
// StallBeats intervals (interval 0 is DefaultInterval).
func StallAfter(interval time.Duration) time.Duration {
	return StallBeats * cmp.Or(interval, DefaultInterval)
}

// Stalled reports whether a running row whose last beat was at beat looks, at
// now, as if its worker were gone. A row with no beat (zero time) is not judged.
func Stalled(beat, now time.Time, interval time.Duration) bool {
	return !beat.IsZero() && now.Sub(beat) > StallAfter(interval)
}

// Beat writes one heartbeat; owned false means the row is no longer the run's
// (cancelled, finished or taken over by a newer run), and the beating stops.
type Beat func(ctx context.Context) (owned bool, err error)

// Start calls beat every interval (0 is DefaultInterval) on a goroutine of its
// own until ctx is done or stop is called; stop waits for the goroutine. The
// run's own start wrote the first heartbeat, so the first beat is one interval
// in. A failed beat is logged and the next one is tried on time: a row is
// reported stalled only after StallBeats missed beats.
func Start(ctx context.Context, interval time.Duration, log *slog.Logger, beat Beat) (stop func()) {
	interval = cmp.Or(interval, DefaultInterval)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// A beat that waits longer than the row may go without one is
			// abandoned; the next tick tries again.
			bctx, bcancel := context.WithTimeout(ctx, StallAfter(interval))
			owned, err := beat(bctx)
			bcancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				log.WarnContext(ctx, "could not write the heartbeat", slog.String("error", err.Error()))
			case !owned:
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
