package reconcile

import (
	"context"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
)

// Finders lists every kind of row that waits on a task, with the query that finds
// it stuck and the task that settles it.
func Finders() []Finder {
	return []Finder{
		{
			Kind: tasks.Validate{}.Kind(),
			Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]Item, error) {
				rows, err := q.FileVersionListStuckPending(ctx, db.FileVersionListStuckPendingParams{OlderThan: olderThan, MaxRows: limit})
				items := itemsOf(rows, func(r db.FileVersionListStuckPendingRow) Item { return Item{OrgID: r.OrgID, EntityID: r.ID} })
				return items, err
			},
			Args: func(id int64, run string) tasks.Queued { return tasks.Validate{VersionID: id, Run: run} },
		},
		{
			Kind: tasks.Export{}.Kind(),
			Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]Item, error) {
				rows, err := q.ExportLogListStuck(ctx, db.ExportLogListStuckParams{OlderThan: olderThan, MaxRows: limit})
				items := itemsOf(rows, func(r db.ExportLogListStuckRow) Item { return Item{OrgID: r.OrgID, EntityID: r.ID} })
				return items, err
			},
			Args: func(id int64, run string) tasks.Queued { return tasks.Export{ExportID: id, Run: run} },
		},
		{
			// A run's storage:sync task lost before the relay moved it, flushed from
			// Redis, or archived (a worker killed on its last retry): queued again. A
			// run that keeps dying is not re-queued forever: each task run is one more
			// of the run's attempts, and storage:sync fails the run once they are
			// spent (as project:export does with an export's).
			Kind: tasks.StorageSync{}.Kind(),
			Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]Item, error) {
				rows, err := q.SyncRunListStuck(ctx, db.SyncRunListStuckParams{OlderThan: olderThan, MaxRows: limit})
				items := itemsOf(rows, func(r db.SyncRunListStuckRow) Item { return Item{OrgID: r.OrgID, EntityID: r.ID} })
				return items, err
			},
			Args: func(id int64, run string) tasks.Queued { return tasks.StorageSync{RunID: id, Run: run} },
		},
		{
			Kind: tasks.Preannotate{}.Kind(),
			Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]Item, error) {
				rows, err := q.LLMRunListStuck(ctx, db.LLMRunListStuckParams{OlderThan: olderThan, MaxRows: limit})
				items := itemsOf(rows, func(r db.LLMRunListStuckRow) Item { return Item{OrgID: r.OrgID, EntityID: r.FileVersionID} })
				if err != nil {
					return nil, err
				}
				lost, err := q.FileVersionListPreannotationLost(ctx, db.FileVersionListPreannotationLostParams{OlderThan: olderThan, MaxRows: limit})
				return append(items, itemsOf(lost, func(r db.FileVersionListPreannotationLostRow) Item { return Item{OrgID: r.OrgID, EntityID: r.ID} })...), err
			},
			Args: func(id int64, run string) tasks.Queued { return tasks.Preannotate{VersionID: id, Run: run} },
		},
		{
			Kind: tasks.Match{}.Kind(),
			Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]Item, error) {
				rows, err := q.ProjectListWithUnmatchedJobs(ctx, db.ProjectListWithUnmatchedJobsParams{OlderThan: olderThan, MaxRows: limit})
				items := itemsOf(rows, func(r db.ProjectListWithUnmatchedJobsRow) Item { return Item{OrgID: r.OrgID, EntityID: r.ID} })
				return items, err
			},
			Args: func(id int64, run string) tasks.Queued { return tasks.Match{ProjectID: id, Run: run} },
		},
		{
			// A pending delivery due for a while whose webhook:deliver task is gone
			// (Redis flushed, archived after asynq's retries): queued again. A task
			// waiting on its schedule or its endpoint's slot is live and left alone.
			Kind: tasks.WebhookDeliver{}.Kind(),
			Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]Item, error) {
				rows, err := q.WebhookDeliveryListStuck(ctx, db.WebhookDeliveryListStuckParams{OlderThan: olderThan, MaxRows: limit})
				items := itemsOf(rows, func(r db.WebhookDeliveryListStuckRow) Item { return Item{OrgID: r.OrgID, EntityID: r.ID} })
				return items, err
			},
			Args: func(id int64, run string) tasks.Queued { return tasks.WebhookDeliver{DeliveryID: id, Run: run} },
		},
		{
			// A submission still queued or processing whose job:score task is gone.
			Kind: tasks.Score{}.Kind(),
			Stuck: func(ctx context.Context, q *db.Queries, olderThan time.Time, limit int32) ([]Item, error) {
				rows, err := q.SubmissionListStuck(ctx, db.SubmissionListStuckParams{OlderThan: olderThan, MaxRows: limit})
				items := itemsOf(rows, func(r db.SubmissionListStuckRow) Item { return Item{OrgID: r.OrgID, EntityID: r.ID} })
				return items, err
			},
			Args: func(id int64, run string) tasks.Queued { return tasks.Score{SubmissionID: id, Run: run} },
		},
	}
}

// itemsOf maps a query's rows to the items it stands for.
func itemsOf[R any](rows []R, item func(R) Item) []Item {
	items := make([]Item, len(rows))
	for i, r := range rows {
		items[i] = item(r)
	}
	return items
}
