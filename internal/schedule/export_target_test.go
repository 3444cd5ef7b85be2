package schedule_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/schedule"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// TestScheduledExportGoesToTheSchedulesStorage: a tick's export carries the
// schedule's storage_id (its export storage), and a schedule without one makes
// exports to labelq's bucket.
func TestScheduledExportGoesToTheSchedulesStorage(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	var storageID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO storages (org_id, project_id, kind, name, prefix)
		VALUES ($1, $2, 'export', 'out', $3) RETURNING id`, org.ID, pr.ID, storage.OwnPrefix(org.ID)+"out/").Scan(&storageID))
	at := time.Date(2026, 11, 22, 10, 0, 3, 0, time.UTC)
	h := &schedule.Handler{Pool: pg.Pool, Log: quiet, Now: func() time.Time { return at }}
	for _, want := range []*int64{&storageID, nil} {
		s, err := pg.Q.ExportScheduleCreate(ctx, db.ExportScheduleCreateParams{
			OrgID: org.ID, ProjectID: pr.ID, CronSpec: "0 * * * *", Timezone: "UTC", Options: json.RawMessage(`{}`), Enabled: true,
			StorageID: want,
		})
		require.NoError(t, err)
		require.NoError(t, tasks.Handle(h.Work).ProcessTask(ctx, task(s.ID)))
		var got *int64
		require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT storage_id FROM export_logs WHERE schedule_id = $1", s.ID).Scan(&got))
		require.Equal(t, want, got)
	}
}
