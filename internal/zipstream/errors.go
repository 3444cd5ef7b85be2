package zipstream

import (
	"errors"
	"fmt"
)

// ErrInvalidEntry is wrapped by errors about entries that can never be packed
// as given (unsafe or duplicate path, negative size, missing opener, malformed
// checksum). Pack reports them before writing anything.
var ErrInvalidEntry = errors.New("invalid entry")

// ChecksumMismatchError reports an entry whose bytes hash to something other
// than its recorded SHA-256: the stored object changed or was corrupted.
type ChecksumMismatchError struct {
	Path      string
	VersionID int64
	Expected  string
	Got       string
}

func (e *ChecksumMismatchError) Error() string {
	return fmt.Sprintf("zipstream: %s (version %d): sha256 mismatch: recorded %s, read %s",
		e.Path, e.VersionID, e.Expected, e.Got)
}

// SizeMismatchError reports an entry whose byte count differs from its
// declared size. Reading stops one byte past the declared size, so when Got
// is larger than Expected the object is at least that long.
type SizeMismatchError struct {
	Path      string
	VersionID int64
	Expected  int64
	Got       int64
}

func (e *SizeMismatchError) Error() string {
	if e.Got > e.Expected {
		return fmt.Sprintf("zipstream: %s (version %d): size mismatch: declared %d bytes, object is longer",
			e.Path, e.VersionID, e.Expected)
	}
	return fmt.Sprintf("zipstream: %s (version %d): size mismatch: declared %d bytes, read %d",
		e.Path, e.VersionID, e.Expected, e.Got)
}

// EntryError wraps a failure to open or read one entry, naming it so that the
// export's error message says which object broke.
type EntryError struct {
	Path      string
	VersionID int64
	Op        string // "open" or "read"
	Err       error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("zipstream: %s %s (version %d): %v", e.Op, e.Path, e.VersionID, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }
