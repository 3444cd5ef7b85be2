package export

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/zipstream"
)

// upload is the multipart upload the archive streams into: the writing side
// of a pipe whose reading side feeds PutObject with an unknown size. minio-go
// then reads one part (PartSize bytes) at a time into a buffer it reuses,
// uploads it, and completes the upload when the pipe reports EOF; when the
// pipe reports any other error it aborts the upload, and S3 never shows an
// object. So the archive appears whole, at the end, or not at all.
type upload struct {
	pw   *io.PipeWriter
	done chan struct{}
	info minio.UploadInfo
	err  error
}

// maxParts is S3's limit on the parts of one multipart upload.
const maxParts = 10_000

// partSize is the part size for a plan's archive: the configured one, unless
// the archive could need more than maxParts of it. The archive's size is known
// up to compression, which only makes it smaller; the bound adds what
// zipstream can add to each entry (headers, the data descriptor and central
// directory record with ZIP64 extras, both copies of the path, and deflate's
// worst case on data it misjudged as compressible).
func partSize(p *plan, minSize uint64) uint64 {
	bound := uint64(p.manifest.size+p.index.size) + 1<<16
	for _, it := range p.items {
		bound += uint64(it.size) + uint64(it.size)/8192 + 3*uint64(len(it.path)) + 256
	}
	return partSizeFor(bound, minSize)
}

// partSizeFor is the part size for an archive of at most bound bytes.
func partSizeFor(bound, minSize uint64) uint64 {
	need := (bound + maxParts - 1) / maxParts
	if need <= minSize {
		return minSize
	}
	const mib = 1 << 20
	return (need + mib - 1) / mib * mib
}

// abortError is what the pipe reports when an upload is aborted. It must
// never be io.EOF or io.ErrUnexpectedEOF, which minio-go reads as the end of
// the data, and would complete the upload with a truncated archive: hence a
// type of its own around the cause.
type abortError struct{ cause error }

func (e *abortError) Error() string { return "archive upload aborted: " + e.cause.Error() }
func (e *abortError) Unwrap() error { return e.cause }

// errUploadEnded is what a write into the pipe gets once PutObject returned.
var errUploadEnded = errors.New("archive upload ended")

// startUpload starts PutObject on its own goroutine. It is bound to the task's
// context: when that ends, minio-go aborts the upload (with a context of its
// own, so the abort itself still goes out).
func (h *Handler) startUpload(ctx context.Context, st *storage.Store, key string, partSize uint64) *upload {
	pr, pw := io.Pipe()
	u := &upload{pw: pw, done: make(chan struct{})}
	opts := minio.PutObjectOptions{ContentType: "application/zip", PartSize: partSize}
	go func() {
		defer close(u.done)
		u.info, u.err = st.Client.PutObject(ctx, st.Bucket, key, pr, -1, opts)
		// Nothing reads the pipe any more: a write still waiting fails now
		// instead of blocking forever.
		pr.CloseWithError(errUploadEnded)
	}()
	return u
}

// interrupt makes the upload abort, without waiting for it.
func (u *upload) interrupt(cause error) { u.pw.CloseWithError(&abortError{cause}) }

// abort makes the upload abort and waits until PutObject has returned. It is a
// no-op on an upload that already finished.
func (u *upload) abort(cause error) {
	u.interrupt(cause)
	<-u.done
}

// finish ends the data and waits for the upload to complete.
func (u *upload) finish() (minio.UploadInfo, error) {
	_ = u.pw.Close()
	<-u.done
	return u.info, u.err
}

// ownErr is the error the upload failed with by itself (the bucket refused a
// part, the network broke), or nil when it did not fail or was aborted by us.
// Call it after abort.
func (u *upload) ownErr() error {
	var ae *abortError
	if u.err == nil || errors.As(u.err, &ae) {
		return nil
	}
	return u.err
}

// monitor writes a run's progress to its row every ProgressEvery and, from the
// same update, learns whether the run is still wanted: the update matches no
// row once the export is cancelled or a newer run took it over. It runs on a
// goroutine of its own, so a cancel is seen even while the archive is stuck
// behind a slow part upload, and zipstream's progress callback only stores a
// snapshot.
type monitor struct {
	h         *Handler
	rn        *run
	interrupt func(cause error)

	mu   sync.Mutex
	last zipstream.Progress

	counted int64 // archive bytes already added to the ExportBytes metric
	quit    chan struct{}
	done    chan struct{}
}

func (h *Handler) startMonitor(ctx context.Context, rn *run, interrupt func(error)) *monitor {
	m := &monitor{h: h, rn: rn, interrupt: interrupt, quit: make(chan struct{}), done: make(chan struct{})}
	go m.loop(ctx)
	return m
}

// observe is zipstream's progress callback.
func (m *monitor) observe(p zipstream.Progress) {
	m.mu.Lock()
	m.last = p
	m.mu.Unlock()
}

func (m *monitor) loop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.h.opts.ProgressEvery)
	defer t.Stop()
	q := db.New(m.h.pool)
	for {
		select {
		case <-m.quit:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		p := m.last
		m.mu.Unlock()
		m.count(p.ArchiveBytes)
		files, bytes := m.rn.done(p)
		// Written even when nothing moved: updated_at is the run's heartbeat.
		n, err := q.ExportLogSetProgress(ctx, db.ExportLogSetProgressParams{
			ID: m.rn.id, Attempt: m.rn.attempt, FilesDone: files, BytesDone: bytes,
		})
		if err != nil {
			// Progress is best effort; a database blip must not stop the
			// archive. The completion needs the database and will retry.
			if ctx.Err() == nil {
				m.rn.log.WarnContext(ctx, "could not record export progress", slog.String("error", err.Error()))
			}
			continue
		}
		if n == 0 {
			m.interrupt(errInterrupted)
			return
		}
	}
}

// stop ends the loop and counts the archive's last bytes.
func (m *monitor) stop(archiveBytes int64) {
	close(m.quit)
	<-m.done
	m.count(archiveBytes)
}

func (m *monitor) count(archiveBytes int64) {
	if d := archiveBytes - m.counted; d > 0 {
		if m.h.metrics != nil {
			m.h.metrics.ExportBytes.Add(float64(d))
		}
		m.counted = archiveBytes
	}
}
