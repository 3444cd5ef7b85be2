package export

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/storage"
)

// DefaultSpillAfter is how many deflated bytes of the archive's central
// directory, and of a converted export's manifest, a run holds in memory
// before it moves them to the bucket (zipstream.Spiller).
const DefaultSpillAfter = 1 << 20

// spillStore is a run's zipstream.Spiller: it keeps the pieces as objects
// beside the archive, <archive key>.spill/<piece>, in the bucket the archive
// goes to, so an export of any number of entries holds at most SpillAfter
// bytes of each in memory and writes nothing to local disk. The run removes
// them when it ends; what a killed run leaves is under the export's prefix,
// which the next run's removeArchives and retention's orphan sweep clear.
type spillStore struct {
	ctx    context.Context
	st     *storage.Store
	prefix string
	keys   []string
	bytes  int64
}

func newSpillStore(ctx context.Context, st *storage.Store, archiveKey string) *spillStore {
	return &spillStore{ctx: ctx, st: st, prefix: archiveKey + ".spill/"}
}

func (s *spillStore) Spill(name string, r io.Reader, size int64) error {
	key := s.prefix + name
	if _, err := s.st.Client.PutObject(s.ctx, s.st.Bucket, key, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream", DisableMultipart: true,
	}); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	s.keys = append(s.keys, key)
	s.bytes += size
	return nil
}

func (s *spillStore) Unspill(name string) (io.ReadCloser, error) {
	key := s.prefix + name
	o, err := s.st.Client.GetObject(s.ctx, s.st.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return o, nil
}

// removeAll deletes the pieces, detached from the run's context (they must
// go whether the run succeeded, failed or was cancelled).
func (s *spillStore) removeAll(ctx context.Context, log *slog.Logger) {
	if len(s.keys) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, k := range s.keys {
		if err := s.st.Client.RemoveObject(rctx, s.st.Bucket, k, minio.RemoveObjectOptions{}); err != nil && !storage.IsNotFound(err) {
			log.WarnContext(ctx, "could not delete a spilled piece of the archive; the next run or retention's orphan sweep deletes it",
				slog.String("key", k), slog.String("error", err.Error()))
		}
	}
}
