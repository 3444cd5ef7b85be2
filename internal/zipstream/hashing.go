package zipstream

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// HashingWriter forwards writes and keeps the SHA-256 and length of what was
// written, so the caller learns the archive's own checksum and size without
// reading the upload back. Wrap the upload pipe with it and pass it to
// [Pack] or [NewWriter].
type HashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

// NewHashingWriter returns a HashingWriter writing to w.
func NewHashingWriter(w io.Writer) *HashingWriter {
	return &HashingWriter{w: w, h: sha256.New()}
}

// Write forwards p and hashes the part that was accepted.
func (hw *HashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// Size is the number of bytes written so far.
func (hw *HashingWriter) Size() int64 { return hw.n }

// SHA256 is the hex SHA-256 of the bytes written so far.
func (hw *HashingWriter) SHA256() string { return hex.EncodeToString(hw.h.Sum(nil)) }
