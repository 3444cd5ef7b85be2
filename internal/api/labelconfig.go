package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/resultcheck"
	"github.com/labelq/labelq/internal/storage"
)

// LabelConfig is a project's label config: the objects a task shows (an image
// or a text, read from a task data field such as "$image") and the controls
// that annotate them, with their labels. Annotation results are Label Studio
// result JSON checked against it.
type LabelConfig struct {
	Objects  []LabelObject  `json:"objects"`
	Controls []LabelControl `json:"controls"`
}

// LabelObject is what a task shows: type image or text, value the task data
// field it is read from ("$image").
type LabelObject struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// LabelControl annotates one object (to_name): type rectanglelabels,
// polygonlabels, keypointlabels (images), labels (text spans), choices
// (choice single or multiple) or textarea; labels are its label or choice
// values (none for textarea).
type LabelControl struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	ToName string   `json:"to_name"`
	Choice string   `json:"choice,omitempty"`
	Labels []string `json:"labels,omitempty"`
}

// LabelConfigInput is the body of PUT /v1/projects/{id}/label-config: a
// LabelConfig as JSON, or a Label Studio XML label config (<View><Image
// name="image" value="$image"/><RectangleLabels name="label"
// toName="image"><Label value="Car"/>...) with Content-Type application/xml or
// text/xml.
type LabelConfigInput LabelConfig

func (LabelConfigInput) mediaTypes() []string { return []string{"application/xml", "text/xml"} }

func labelConfigFrom(c labelconfig.Config) LabelConfig {
	out := LabelConfig{Objects: make([]LabelObject, len(c.Objects)), Controls: make([]LabelControl, len(c.Controls))}
	for i, o := range c.Objects {
		out.Objects[i] = LabelObject{Name: o.Name, Type: string(o.Type), Value: o.Value}
	}
	for i, k := range c.Controls {
		out.Controls[i] = LabelControl{Name: k.Name, Type: string(k.Type), ToName: k.ToName, Choice: k.Choice, Labels: k.Labels}
	}
	return out
}

// storedLabelConfig reads a project's stored label config; ok is false when it
// has none.
func storedLabelConfig(p db.Project) (labelconfig.Config, bool, error) {
	if len(p.LabelConfig) == 0 || string(p.LabelConfig) == "null" {
		return labelconfig.Config{}, false, nil
	}
	c, err := labelconfig.Parse(p.LabelConfig)
	if err != nil {
		return labelconfig.Config{}, false, fmt.Errorf("project %d: stored label config: %w", p.ID, err)
	}
	return c, true, nil
}

// putLabelConfig sets a project's label config from JSON or from Label
// Studio's XML, and answers it as stored.
func putLabelConfig(c *Call) (int, any, error) {
	pid, err := c.projectFromPath()
	if err != nil {
		return 0, nil, err
	}
	if len(bytes.TrimSpace(c.Body)) == 0 {
		return 0, nil, problem(http.StatusBadRequest, "Empty body",
			"send the label config as JSON ({\"objects\": [...], \"controls\": [...]}) or as Label Studio XML with Content-Type: application/xml")
	}
	var cfg labelconfig.Config
	switch mediaType(c.R.Header.Get("Content-Type")) {
	case "application/xml", "text/xml":
		cfg, err = labelconfig.FromXML(bytes.NewReader(c.Body))
	default:
		cfg, err = labelconfig.Parse(c.Body)
	}
	if err != nil {
		return 0, nil, configProblem(err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return 0, nil, fmt.Errorf("encode label config: %w", err)
	}
	if _, err := c.Q.ProjectSetLabelConfig(c.R.Context(), db.ProjectSetLabelConfigParams{LabelConfig: b, ID: pid, OrgID: c.OrgID}); err != nil {
		return 0, nil, orNotFound(err, "project")
	}
	if err := event(c.R.Context(), c, db.EntityTypeProject, pid, "label_config_set", map[string]any{
		"objects": len(cfg.Objects), "controls": len(cfg.Controls),
	}); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, labelConfigFrom(cfg), nil
}

// configProblem is a refused label config as a 422 naming the field (the JSON
// path, or label_config for the config as a whole and for XML, whose reason
// names the tag and line).
func configProblem(err error) error {
	var ce *labelconfig.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	field := ce.Field
	if field == "" {
		field = "label_config"
	}
	return problem(http.StatusUnprocessableEntity, "Invalid label config", ce.Error(), FieldError{Field: field, Message: ce.Reason})
}

func getLabelConfig(c *Call) (int, any, error) {
	pid, err := pathID(c.R, "project_id")
	if err != nil {
		return 0, nil, err
	}
	p, err := c.Q.ProjectGet(c.R.Context(), db.ProjectGetParams{ID: pid, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "project")
	}
	cfg, ok, err := storedLabelConfig(p)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, problem(http.StatusNotFound, "No label config",
			fmt.Sprintf("project %d has no label config; set one with PUT /v1/projects/%d/label-config", pid, pid))
	}
	return http.StatusOK, labelConfigFrom(cfg), nil
}

// resultReadTimeout bounds the reads checkJobResult makes.
const resultReadTimeout = 30 * time.Second

// checkJobResult holds the result a PATCH sets on a job to its project's label
// config, when the project has one (without one nothing is checked, as
// before): the version must be an annotation_results version of the job's
// project that validation has not refused, and its Label Studio result must
// fit the config, spans checked against the text of the job's own version.
// The two objects are read here, bounded (resultcheck.MaxResultBytes,
// resultcheck.MaxTextBytes), so that a region at fault is a 422 naming it
// rather than an approved result an export cannot convert.
func (c *Call) checkJobResult(ctx context.Context, job db.AnnotationJob, versionID int64) error {
	p, err := c.Q.ProjectGet(ctx, db.ProjectGetParams{ID: job.ProjectID, OrgID: c.OrgID})
	if err != nil {
		return fmt.Errorf("read project %d: %w", job.ProjectID, err)
	}
	cfg, ok, err := storedLabelConfig(p)
	if err != nil || !ok {
		return err
	}
	const field = "result_version_id"
	v, err := c.Q.FileVersionGet(ctx, db.FileVersionGetParams{ID: versionID, OrgID: c.OrgID})
	if err != nil {
		return orNotFound(err, "version")
	}
	if v.ProjectID != job.ProjectID {
		return invalid(field, fmt.Sprintf("version %d is of project %d, not of the job's project %d", v.ID, v.ProjectID, job.ProjectID))
	}
	f, err := c.Q.FileGet(ctx, db.FileGetParams{ID: v.FileID, OrgID: c.OrgID})
	if err != nil {
		return orNotFound(err, "file")
	}
	if f.FileType != db.FileTypeAnnotationResults {
		return invalid(field, fmt.Sprintf("version %d is of %s file %q; a job's result is an annotation_results version holding Label Studio result JSON", v.ID, f.FileType, f.Name))
	}
	switch v.ValidationStatus {
	case db.ValidationStatusCorrupt, db.ValidationStatusMissing, db.ValidationStatusRejected:
		return invalid(field, fmt.Sprintf("version %d is %s: %s", v.ID, v.ValidationStatus, deref(v.ValidationError)))
	}
	rctx, cancel := context.WithTimeout(ctx, resultReadTimeout)
	defer cancel()
	body, err := c.readVersion(rctx, v, resultcheck.MaxResultBytes)
	if errors.Is(err, resultcheck.ErrTooLarge) {
		return invalid(field, fmt.Sprintf("version %d is larger than %d bytes, the most a result checked against the label config may be", v.ID, resultcheck.MaxResultBytes))
	}
	if p := unreadable(field, v, err); p != nil {
		return p
	}
	if err != nil {
		return fmt.Errorf("read result version %d: %w", v.ID, err)
	}
	if !resultcheck.IsJSON(body) {
		return nil // masks, CSV, archives: nothing a label config describes
	}
	text, err := c.jobText(rctx, cfg, job, field)
	if err != nil {
		return err
	}
	if err := resultcheck.Check(cfg, body, text); err != nil {
		return problem(http.StatusUnprocessableEntity, "Result does not fit the label config",
			fmt.Sprintf("%s: version %d: %v", field, v.ID, err), FieldError{Field: field, Message: err.Error()})
	}
	return nil
}

// jobText is the text of the job's own version when cfg has spans to check
// against it; nil when it has none or the text is too large to read (spans
// are then checked without it, as file:validate does).
func (c *Call) jobText(ctx context.Context, cfg labelconfig.Config, job db.AnnotationJob, field string) (*string, error) {
	if !resultcheck.NeedsText(cfg) {
		return nil, nil
	}
	dv, err := c.Q.FileVersionGet(ctx, db.FileVersionGetParams{ID: job.FileVersionID, OrgID: c.OrgID})
	if err != nil {
		return nil, fmt.Errorf("read version %d of job %d: %w", job.FileVersionID, job.ID, err)
	}
	b, err := c.readVersion(ctx, dv, resultcheck.MaxTextBytes)
	switch {
	case errors.Is(err, resultcheck.ErrTooLarge):
		return nil, nil
	case unreadable(field, dv, err) != nil:
		return nil, unreadable(field, dv, err)
	case err != nil:
		return nil, fmt.Errorf("read the text of job %d (version %d): %w", job.ID, dv.ID, err)
	}
	s := string(b)
	return &s, nil
}

// readVersion reads a version's object through its storage, at most limit
// bytes (the object validation measured, when it recorded its ETag).
func (c *Call) readVersion(ctx context.Context, v db.FileVersion, limit int64) ([]byte, error) {
	res := c.S.Storages
	if res == nil {
		res = storage.OwnOnly(c.S.Store)
	}
	src, err := res.Resolve(ctx, v.StorageID)
	if err != nil {
		return nil, err
	}
	return resultcheck.Read(ctx, src, v.StoragePath, deref(v.ObjectEtag), limit)
}

// unreadable is a read of v that failed for a reason the caller can act on,
// as a 422 on field; nil for any other error (an outage: a 500, retried).
func unreadable(field string, v db.FileVersion, err error) *Problem {
	var er minio.ErrorResponse
	var ue *storage.UnusableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue):
		return invalid(field, fmt.Sprintf("version %d cannot be read to check it against the label config: %s", v.ID, ue.Error()))
	case storage.IsNotFound(err):
		return invalid(field, fmt.Sprintf("version %d has no object at %q to check against the label config", v.ID, v.StoragePath))
	case errors.As(err, &er) && er.StatusCode == http.StatusPreconditionFailed:
		return invalid(field, fmt.Sprintf("the object of version %d changed since it was validated; validate it again (POST /v1/versions/%d/revalidate)", v.ID, v.ID))
	}
	return nil
}
