package validate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/resultcheck"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/verify"
)

// Codes of the label config check.
const (
	codeResultInvalid  verify.Code = resultcheck.CodeInvalid
	codeResultTooLarge verify.Code = resultcheck.CodeTooLarge
)

// resultHead is how much of an oversized result is kept to tell whether it is
// JSON at all.
const resultHead = 512

// results is the label config check of an annotation_results version: the
// project's config, and the version's bytes as the one streaming pass reads
// them (up to resultcheck.MaxResultBytes; past that only the first resultHead
// are kept, to say whether the result was JSON).
type results struct {
	cfg  labelconfig.Config
	buf  []byte
	over bool
}

// Write keeps what the pass reads; it never fails the pass.
func (r *results) Write(p []byte) (int, error) {
	switch {
	case r.over:
	case len(r.buf)+len(p) <= resultcheck.MaxResultBytes:
		r.buf = append(r.buf, p...)
	default:
		r.over = true
		if len(r.buf) < resultHead {
			r.buf = append(r.buf, p[:min(len(p), resultHead-len(r.buf))]...)
		}
		r.buf = r.buf[:min(len(r.buf), resultHead)]
	}
	return len(p), nil
}

// resultsFor is the check a version needs: nil unless it is an
// annotation_results version of a project with a label config (the others are
// validated as before).
func (h *Handler) resultsFor(ctx context.Context, row db.FileVersionGetForValidationRow, size int64) (*results, error) {
	if row.FileType != db.FileTypeAnnotationResults {
		return nil, nil
	}
	p, err := db.New(h.pool).ProjectGetByID(ctx, row.FileVersion.ProjectID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil // the project is deleted: the version is judged, nothing follows
	}
	if err != nil {
		return nil, fmt.Errorf("read the label config of project %d: %w", row.FileVersion.ProjectID, err)
	}
	if len(p.LabelConfig) == 0 || string(p.LabelConfig) == "null" {
		return nil, nil
	}
	cfg, err := labelconfig.Parse(p.LabelConfig)
	if err != nil {
		// Stored by the API after the same check: a config that no longer
		// parses is labelq's bug, not this version's fault.
		return nil, fmt.Errorf("project %d: stored label config: %w", p.ID, err)
	}
	return &results{cfg: cfg, buf: make([]byte, 0, min(max(size, 0), resultcheck.MaxResultBytes)+1)}, nil
}

// tee is body with every byte read also kept by r.
func (r *results) tee(body io.Reader) io.Reader { return io.TeeReader(body, r) }

// check holds the read result to the label config and adds what it finds to
// rep: a result that is not JSON (a mask, a CSV) is not checked (a note says
// so); a JSON one larger than resultcheck.MaxResultBytes, or one with a
// region that does not fit the config, is rejected naming the region and
// field. Spans are checked against the text of the dataset version the result
// annotates (its source version, else the job whose result it is), read for
// configs with a text object only, at most resultcheck.MaxTextBytes; without
// that text they are checked for everything but their bounds, and a note says
// why. An error is a transient failure reading the text: the task is retried.
func (h *Handler) check(ctx context.Context, log *slog.Logger, row db.FileVersionGetForValidationRow, r *results, rep verify.Report) (verify.Report, error) {
	if !resultcheck.IsJSON(r.buf) {
		rep.Notes = append(rep.Notes, "not checked against the project's label config: the results are not Label Studio result JSON")
		return rep, nil
	}
	if r.over {
		return rep.Merge(verify.Report{Findings: []verify.Finding{{Verdict: verify.Rejected, Code: codeResultTooLarge,
			Message: fmt.Sprintf("the results are larger than %d MiB, the most checked against the project's label config; split them into one result per task",
				resultcheck.MaxResultBytes>>20)}}}), nil
	}
	var text *string
	if resultcheck.NeedsText(r.cfg) {
		t, note, err := h.subjectText(ctx, row)
		if err != nil {
			return rep, err
		}
		if note != "" {
			rep.Notes = append(rep.Notes, note)
			log.InfoContext(ctx, "results checked without the task's text", slog.String("why", note))
		}
		text = t
	}
	if err := resultcheck.Check(r.cfg, r.buf, text); err != nil {
		return rep.Merge(verify.Report{Findings: []verify.Finding{{Verdict: verify.Rejected, Code: codeResultInvalid,
			Message: fmt.Sprintf("the results do not fit the project's label config: %v; fix them and register them again", err)}}}), nil
	}
	return rep, nil
}

// subjectText reads the text the result annotates; nil with a note when it is
// not known or cannot be read for a reason retrying does not fix.
func (h *Handler) subjectText(ctx context.Context, row db.FileVersionGetForValidationRow) (*string, string, error) {
	v := row.FileVersion
	const without = "spans not checked against the task's text: "
	sub, err := db.New(h.pool).FileVersionResultSubject(ctx, db.FileVersionResultSubjectParams{OrgID: v.OrgID, ResultVersionID: v.ID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, without + "no dataset version is known for these results yet (set them as a job's result, then validate them again)", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("find the task of results %d: %w", v.ID, err)
	}
	src, err := h.storages.Resolve(ctx, sub.StorageID)
	var ue *storage.UnusableError
	switch {
	case errors.As(err, &ue):
		return nil, without + fmt.Sprintf("version %d, which holds it, cannot be read: %s", sub.ID, ue.Error()), nil
	case err != nil:
		return nil, "", fmt.Errorf("find the storage of version %d: %w", sub.ID, err)
	}
	b, err := resultcheck.Read(ctx, src, sub.StoragePath, deref(sub.ObjectEtag), resultcheck.MaxTextBytes)
	switch {
	case errors.Is(err, resultcheck.ErrTooLarge):
		return nil, without + fmt.Sprintf("it is larger than %d MiB", resultcheck.MaxTextBytes>>20), nil
	case err != nil && storage.IsNotFound(err):
		return nil, without + fmt.Sprintf("version %d, which holds it, has no object at %q", sub.ID, sub.StoragePath), nil
	case err != nil && objectChanged(err):
		return nil, without + fmt.Sprintf("the object of version %d changed since it was validated", sub.ID), nil
	case err != nil && src.Refusal("read", sub.StoragePath, err) != "":
		return nil, without + src.Refusal("read", sub.StoragePath, err), nil
	case err != nil:
		return nil, "", fmt.Errorf("read the text of version %d: %w", sub.ID, err)
	}
	s := string(b)
	return &s, "", nil
}

// objectChanged is a read If-Match the measured ETag that found another object.
func objectChanged(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && er.StatusCode == http.StatusPreconditionFailed
}
