package api

import (
	"fmt"
	"net/http"

	"github.com/labelq/labelq/internal/db"
)

// AdmissionBacklog is how much of one task type's work of the caller's
// organization waits for admission (LABELQ_ADMIT_PER_ORG): the relay moves a row
// into the queue only while the organization has fewer than Limit tasks of the
// type admitted and not finished.
type AdmissionBacklog struct {
	TaskType string `json:"task_type"`
	// Waiting rows are due now and hold no slot: they wait for a slot of
	// their type to free (or, when the type is not held back, for the relay).
	Waiting int64 `json:"waiting"`
	// Scheduled rows are due later (a retry's backoff, a delayed task).
	Scheduled int64 `json:"scheduled"`
	// Admitted rows hold a slot: in the queue, or on their way there, and not
	// finished.
	Admitted int64 `json:"admitted"`
	// Limit is the type's limit times the organization's weight; 0 when the
	// type is not held back.
	Limit int32 `json:"limit"`
	// Weight is the organization's admission_weight, which an operator sets.
	Weight int32 `json:"weight"`
	// OldestWaitSeconds is how long the longest-waiting row has been due.
	OldestWaitSeconds float64 `json:"oldest_wait_seconds"`
}

func admissionBacklogFromRow(r db.OutboxBacklogRow) AdmissionBacklog {
	return AdmissionBacklog{
		TaskType: r.TaskType, Waiting: r.Waiting, Scheduled: r.Scheduled, Admitted: r.Admitted,
		Limit: r.Limit, Weight: r.Weight, OldestWaitSeconds: r.OldestWaitSeconds,
	}
}

// getAdmission answers the caller's organization's work per task type: waiting,
// scheduled, admitted, and its limit. Only task types with rows waiting or
// admitted are listed.
func getAdmission(c *Call) (int, any, error) {
	kinds, limits, def := c.S.Quotas.Admission.SQLArgs()
	rows, err := c.Q.OutboxBacklog(c.R.Context(), db.OutboxBacklogParams{
		OrgID: c.OrgID, Kinds: kinds, Limits: limits, DefaultLimit: def,
	})
	if err != nil {
		return 0, nil, fmt.Errorf("read the admission backlog: %w", err)
	}
	out := List[AdmissionBacklog]{Items: make([]AdmissionBacklog, 0, len(rows))}
	for _, r := range rows {
		out.Items = append(out.Items, admissionBacklogFromRow(r))
	}
	return http.StatusOK, out, nil
}
