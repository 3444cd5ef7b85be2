package resultcheck

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/storage"
)

// Unreadable is a result that cannot be read as it is, whatever the retries:
// not validated yet, too large, gone, changed since validation, not a Label
// Studio result, or not fitting the label config. Reason says which, for a
// person.
type Unreadable struct{ Reason string }

func (e *Unreadable) Error() string { return e.Reason }

func unreadablef(format string, args ...any) error {
	return &Unreadable{Reason: fmt.Sprintf(format, args...)}
}

// Measured is a validated result version: where its object is and what
// validation measured of it.
type Measured struct {
	// What names the version in reasons ("result version 41").
	What      string
	StorageID *int64
	Key       string
	Checksum  *string
	Size      *int64
}

// ReadMeasured reads a validated result version through its storage, checks
// the bytes against the size and SHA-256 validation recorded, and parses them
// under cfg (spans without their text, as validateWithoutText does). A result that can never be read as
// it is comes back as *Unreadable; anything else (an outage) is an error worth
// retrying.
func ReadMeasured(ctx context.Context, res *storage.Resolver, cfg labelconfig.Config, m Measured) ([]labelconfig.Region, error) {
	if m.Checksum == nil || m.Size == nil {
		return nil, unreadablef("%s has not been validated; results are read once validation has measured them", m.What)
	}
	if *m.Size > MaxResultBytes {
		return nil, unreadablef("%s is %d bytes; results over %d MiB are not read", m.What, *m.Size, MaxResultBytes>>20)
	}
	src, err := res.Resolve(ctx, m.StorageID)
	if err != nil {
		var unusable *storage.UnusableError
		if errors.As(err, &unusable) {
			return nil, unreadablef("%s: %v", m.What, err)
		}
		return nil, fmt.Errorf("find the storage of %s: %w", m.What, err)
	}
	body, _, _, err := minio.Core{Client: src.Client}.GetObject(ctx, src.Bucket, m.Key, minio.GetObjectOptions{})
	if err != nil {
		if reason := src.Refusal("read", m.Key, err); reason != "" {
			return nil, unreadablef("%s: %s", m.What, reason)
		}
		return nil, fmt.Errorf("read %s: %w", m.What, err)
	}
	defer func() { _ = body.Close() }()
	b, err := io.ReadAll(io.LimitReader(body, *m.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", m.What, err)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != *m.Size || !strings.EqualFold(hex.EncodeToString(sum[:]), *m.Checksum) {
		return nil, unreadablef("%s no longer matches its recorded checksum (its object changed after validation); upload it again", m.What)
	}
	regions, err := labelconfig.ParseResult(b)
	if err != nil {
		return nil, unreadablef("%s is not a Label Studio result: %v", m.What, err)
	}
	// Spans are checked without the text (which is not read here): their
	// offsets and labels, not the characters they quote.
	if err := ValidateRegions(cfg, regions); err != nil {
		return nil, unreadablef("%s does not fit the project's label config: %v", m.What, err)
	}
	return regions, nil
}

// ValidateRegions checks parsed regions against cfg without the text they
// annotate: spans by their offsets and labels (see validateWithoutText).
func ValidateRegions(cfg labelconfig.Config, regions []labelconfig.Region) error {
	if !NeedsText(cfg) {
		return cfg.Validate(regions, "")
	}
	return validateWithoutText(cfg, regions)
}
