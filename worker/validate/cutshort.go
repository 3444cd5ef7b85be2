package validate

import (
	"fmt"
	"io"
)

// errCutShort is a read of the object that ended before the object did.
var errCutShort = fmt.Errorf("object read ended before the end of the object: %w", io.ErrUnexpectedEOF)

// cutShort turns io.ErrUnexpectedEOF from the source into errCutShort. A minio Object
// reports a connection cut before Content-Length as io.ErrUnexpectedEOF, and
// verify.Measure (like io.ReadFull) takes that value for a normal end of stream: the
// bytes read so far would be judged, and a network hiccup would become a "corrupt"
// verdict instead of a retry. errCutShort is not that value, so Measure returns it.
type cutShort struct{ r io.Reader }

func (c cutShort) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.ErrUnexpectedEOF { //nolint:errorlint // the exact value is what Measure compares
		err = errCutShort
	}
	return n, err
}
