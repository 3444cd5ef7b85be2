package storagesync

import (
	"context"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/ingest"
)

// lister hands out a bucket's listing in pages. It lists ahead (up to two pages
// of keys, buffered) while the previous page commits, so the walk waits on S3
// and on Postgres side by side instead of in turn.
type lister struct {
	ch   <-chan minio.ObjectInfo
	peek *minio.ObjectInfo
}

// list starts the listing of the run's storage after its checkpoint; it stops
// when ctx ends.
func (h *Handler) list(ctx context.Context, rn *run) *lister {
	noOwner := false
	src := rn.src.Client.ListObjects(ctx, rn.src.Bucket, minio.ListObjectsOptions{
		Prefix: rn.st.Prefix, StartAfter: deref(rn.Checkpoint, ""), Recursive: true,
		MaxKeys: h.pageSize, FetchOwner: &noOwner,
	})
	buf := make(chan minio.ObjectInfo, 2*h.pageSize)
	go func() {
		defer close(buf)
		for o := range src {
			select {
			case buf <- o:
			case <-ctx.Done():
				// Drain so the client's goroutine sees the cancel and ends.
				for range src {
				}
				return
			}
		}
	}()
	return &lister{ch: buf}
}

// next returns up to n objects in key order and whether they are the last of
// the listing (possibly none).
func (l *lister) next(n int) ([]ingest.Object, bool, error) {
	objs := make([]ingest.Object, 0, n)
	for len(objs) < n {
		o, ok := l.take()
		if !ok {
			return objs, true, nil
		}
		if o.Err != nil {
			return nil, false, o.Err
		}
		objs = append(objs, ingest.Object{Key: o.Key, ETag: o.ETag, Size: o.Size})
	}
	o, ok := <-l.ch
	if !ok {
		return objs, true, nil
	}
	l.peek = &o
	return objs, false, nil
}

func (l *lister) take() (minio.ObjectInfo, bool) {
	if l.peek != nil {
		o := *l.peek
		l.peek = nil
		return o, true
	}
	o, ok := <-l.ch
	return o, ok
}
