package storagesync_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	storagesync "github.com/labelq/labelq/worker/sync"
)

// TestSyncBeatsBetweenPages: while an attempt is held between two pages
// (a slow listing, say), it keeps writing the run's heartbeat_at, so the API
// does not call a live sync stalled; the pages themselves beat too.
func TestSyncBeatsBetweenPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := f.ownStorage(t, nil)
	f.putN(t, st.Prefix, 7)
	id := f.newRun(t, st)

	h := f.handler(storagesync.Deps{PageSize: 5, Heartbeat: 20 * time.Millisecond})
	var beats []time.Time
	storagesync.SetHooks(h, nil, func(_ context.Context, page int) {
		r := f.run(t, id)
		require.Equal(t, db.SyncRunStatusRunning, r.Status)
		require.NotNil(t, r.HeartbeatAt, "the page beat")
		beats = append(beats, *r.HeartbeatAt)
		// No page commits while this hook holds the attempt: only the
		// heartbeat can move heartbeat_at.
		for deadline := time.Now().Add(30 * time.Second); len(beats) < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b := *f.run(t, id).HeartbeatAt; b.After(beats[len(beats)-1]) {
				beats = append(beats, b)
			}
		}
	})
	require.NoError(t, process(t, h, id))
	require.Len(t, beats, 3, "the heartbeat did not move while the attempt was held between pages")
	r := f.run(t, id)
	require.Equal(t, db.SyncRunStatusCompleted, r.Status)
	require.False(t, r.HeartbeatAt.Before(beats[2]), "the last page beat too")
}
