package validate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/validate"
)

// The job validation creates is born with the language, priority and due date
// registered on its version; a version registered without them gets the
// defaults (no language, medium, no due date).
func TestValidatedVersionsJobHasItsRegisteredAttributes(t *testing.T) {
	t.Parallel()
	hs := newFixture(t, validate.Options{})
	ctx := context.Background()
	pg := hs.env.PG
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	due := time.Date(2027, 3, 1, 18, 0, 0, 0, time.UTC)

	registerWith := func(name string, lang *string, prio *db.JobPriority, dueDate *time.Time) db.FileVersion {
		f := pg.File(t, pr, name)
		content := []byte("id,text\n1," + name + "\n")
		key := fmt.Sprintf("orgs/%d/%s", org.ID, name)
		hs.env.S3.Put(t, key, content, minio.PutObjectOptions{})
		decl := declared(content, "text/csv")
		var v db.FileVersion
		require.NoError(t, database.Tx(ctx, pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
			if _, err := q.FileGetForUpdate(ctx, f.ID); err != nil {
				return err
			}
			var err error
			v, err = q.FileVersionCreate(ctx, db.FileVersionCreateParams{
				OrgID: f.OrgID, ProjectID: f.ProjectID, FileID: f.ID, StoragePath: key,
				ExpectedSha256: decl.SHA256, ExpectedSize: decl.Size, ExpectedMimeType: decl.MIME,
				JobLanguage: lang, JobPriority: prio, JobDueDate: dueDate,
			})
			if err != nil {
				return err
			}
			return outbox.Add(ctx, q, f.OrgID, tasks.Validate{VersionID: v.ID})
		}))
		return v
	}

	t.Run("registered attributes", func(t *testing.T) {
		v := registerWith("zh.csv", ptr("zh"), ptr(db.JobPriorityHigh), &due)
		require.NoError(t, hs.process(t, v.ID))
		jobs := hs.jobsFor(t, v)
		require.Len(t, jobs, 1)
		require.NotNil(t, jobs[0].Language)
		require.Equal(t, "zh", *jobs[0].Language)
		require.Equal(t, db.JobPriorityHigh, jobs[0].Priority)
		require.NotNil(t, jobs[0].DueDate)
		require.True(t, due.Equal(*jobs[0].DueDate), "due date %v", *jobs[0].DueDate)
		// Matching is queued in the same commit, and reads a job that already
		// has its language.
		testenv.RequireQueued(t, pg.Pool, org.ID, tasks.MatchTrigger{ProjectID: pr.ID, Run: fmt.Sprint(v.ID)})
	})
	t.Run("defaults", func(t *testing.T) {
		v := registerWith("plain.csv", nil, nil, nil)
		require.NoError(t, hs.process(t, v.ID))
		jobs := hs.jobsFor(t, v)
		require.Len(t, jobs, 1)
		require.Nil(t, jobs[0].Language)
		require.Equal(t, db.JobPriorityMedium, jobs[0].Priority)
		require.Nil(t, jobs[0].DueDate)
	})
}
