package export

import (
	"context"

	"github.com/labelq/labelq/internal/zipstream"
)

// SetProgressHook makes h call f after every progress snapshot, on the
// goroutine writing the archive and with the pack's context, so that tests can
// cancel, kill or pause a run at a chosen point of the archive.
func SetProgressHook(h *Handler, f func(ctx context.Context, p zipstream.Progress)) { h.onProgress = f }

// SetFinishHook makes h call f just before it completes an upload in the
// bucket, so that tests can hold that S3 step.
func SetFinishHook(h *Handler, f func(ctx context.Context)) { h.beforeFinish = f }
