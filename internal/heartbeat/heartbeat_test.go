package heartbeat_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/heartbeat"
)

var quiet = slog.New(slog.DiscardHandler)

func TestStalled(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		age      time.Duration
		interval time.Duration
		want     bool
	}{
		{"fresh", time.Second, 5 * time.Second, false},
		{"one beat missed", 6 * time.Second, 5 * time.Second, false},
		{"exactly three beats old", 15 * time.Second, 5 * time.Second, false},
		{"past three beats", 15*time.Second + time.Millisecond, 5 * time.Second, true},
		{"default interval", 16 * time.Second, 0, true},
		{"short interval", 700 * time.Millisecond, 200 * time.Millisecond, true},
		{"ahead of the reader's clock", -time.Minute, 5 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, heartbeat.Stalled(now.Add(-tc.age), now, tc.interval))
		})
	}
	require.False(t, heartbeat.Stalled(time.Time{}, now, time.Second), "no beat: not judged")
	require.Equal(t, 15*time.Second, heartbeat.StallAfter(0))
}

// TestStartBeatsUntilStopped: beats keep coming after a failed one, stop ends
// them and waits for the goroutine.
func TestStartBeatsUntilStopped(t *testing.T) {
	var n atomic.Int32
	third := make(chan struct{})
	stop := heartbeat.Start(context.Background(), time.Millisecond, quiet, func(context.Context) (bool, error) {
		if n.Add(1) == 3 {
			close(third)
		}
		if n.Load() == 1 {
			return true, errors.New("database blip")
		}
		return true, nil
	})
	<-third
	stop()
	after := n.Load()
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, after, n.Load(), "a beat after stop returned")
}

// TestStartStopsWhenNotOwned: a beat that finds the row no longer the run's
// ends the beating by itself.
func TestStartStopsWhenNotOwned(t *testing.T) {
	var n atomic.Int32
	ended := make(chan struct{})
	stop := heartbeat.Start(context.Background(), time.Millisecond, quiet, func(context.Context) (bool, error) {
		if n.Add(1) == 2 {
			close(ended)
		}
		return n.Load() < 2, nil
	})
	<-ended
	time.Sleep(20 * time.Millisecond)
	require.EqualValues(t, 2, n.Load(), "beats went on after the row was no longer the run's")
	stop()
}
