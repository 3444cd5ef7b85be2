package api

import (
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/heartbeat"
)

// StatusStalled is the status answered for an export or a sync run that says
// running but whose worker stopped beating (killed, frozen, cut off from the
// database): its heartbeat_at is older than heartbeat.StallBeats times
// Server.HeartbeatInterval. The row itself still says running; asynq gives the
// task to another worker once its lease runs out, and the row answers running
// again as soon as that worker takes it.
const StatusStalled = "stalled"

// stalled reports whether a row with status and heartbeat (nil: the row was
// started by a worker from before heartbeats, whose progress writes kept
// updated_at fresh instead) looks abandoned now. The heartbeat is the
// database's clock; the comparison is this process's, so API hosts need
// synchronised clocks (within the StallBeats intervals' margin).
func (s *Server) stalled(status string, beat *time.Time, updated time.Time) bool {
	if status != "running" {
		return false
	}
	last := updated
	if beat != nil {
		last = *beat
	}
	return heartbeat.Stalled(last, s.now(), s.HeartbeatInterval)
}

// export maps an export row, answering stalled for a running one whose worker
// is gone.
func (s *Server) export(r db.ExportLog) Export {
	e := exportFromRow(r)
	if s.stalled(e.Status, r.HeartbeatAt, r.UpdatedAt) {
		e.Status = StatusStalled
	}
	return e
}

// syncRun maps a sync run row, answering stalled for a running one whose
// worker is gone.
func (s *Server) syncRun(r db.SyncRun) SyncRun {
	out := syncRunFromRow(r)
	if s.stalled(out.Status, r.HeartbeatAt, r.UpdatedAt) {
		out.Status = StatusStalled
	}
	return out
}
