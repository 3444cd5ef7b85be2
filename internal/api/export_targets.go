package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
)

// exportTarget checks an export's or schedule's storage_id: an export storage
// (kind "export") of project pid in the caller's organization. Nil is labelq's
// bucket. A storage of another project or organization is "not a storage of the
// project", like one that does not exist, so its existence is not revealed.
func (c *Call) exportTarget(pid int64, id *int64) (*int64, error) {
	if id == nil {
		return nil, nil
	}
	if *id <= 0 {
		return nil, invalid("storage_id", "must be the id of an export storage of the project (or left out for labelq's bucket)")
	}
	st, err := c.Q.StorageGetForExport(c.R.Context(), db.StorageGetForExportParams{ID: *id, OrgID: c.OrgID, ProjectID: pid})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, invalid("storage_id", fmt.Sprintf("storage %d is not a storage of project %d", *id, pid))
	}
	if err != nil {
		return nil, err
	}
	if st.Kind != db.StorageKindExport {
		return nil, invalid("storage_id", fmt.Sprintf("storage %d is an import storage; an export goes to a storage created with kind \"export\"", *id))
	}
	return id, nil
}

// exportStore is the bucket an export's archive is in: labelq's, or its export
// storage's (through the workers' resolver, so the link is presigned for that
// storage's endpoint and credentials). A storage that can no longer be used is
// the caller's to fix: 409 with the reason.
func (c *Call) exportStore(ctx context.Context, e db.ExportLog) (*storage.Store, error) {
	if e.StorageID == nil || c.S.Storages == nil {
		if e.StorageID != nil {
			return nil, errors.New("the API has no storage resolver (Server.Storages)")
		}
		return c.S.Store, nil
	}
	src, err := c.S.Storages.Resolve(ctx, e.StorageID)
	var ue *storage.UnusableError
	if errors.As(err, &ue) {
		return nil, problem(http.StatusConflict, "Export storage unusable",
			fmt.Sprintf("export %d's archive is in storage %d, which cannot be used now: %s", e.ID, *e.StorageID, ue.Error()))
	}
	if err != nil {
		return nil, fmt.Errorf("find the storage of export %d: %w", e.ID, err)
	}
	return src.Store, nil
}
