package storagesync

import "context"

// SetHooks sets the handler's test hooks: beforeCommit runs inside each page's
// transaction just before it commits, afterPage after a page that does not end
// the run has committed (pages count from 1 in each attempt).
func SetHooks(h *Handler, beforeCommit, afterPage func(ctx context.Context, page int)) {
	h.beforeCommit, h.afterPage = beforeCommit, afterPage
}
