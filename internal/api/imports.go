package api

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/ingest"
	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/resultcheck"
)

// MaxImportTasks is the most tasks one import takes.
const MaxImportTasks = 10_000

// importBodyFactor is how many times LABELQ_MAX_BODY_BYTES an import's body may
// be (16 MiB by default): a Label Studio export of 10,000 annotated tasks does
// not fit in 1 MiB.
const importBodyFactor = 16

// importPuts is how many objects an import writes to the bucket at once.
const importPuts = 8

// ImportInput is a Label Studio JSON export (Export → JSON): the list of tasks
// as Label Studio writes it, taken as it is; {"tasks": [...]} is taken too.
// Fields labelq does not keep (meta, inner_id, total_annotations, drafts, ...)
// are ignored.
type ImportInput []ImportTask

func (ImportInput) maxBodyBytes(def int64) int64 { return importBodyFactor * def }

// ImportTask is one Label Studio task. data holds the field the project's label
// config reads (its object's value, "$image" → data.image): for an image, a
// key of one of the project's import storages, as "s3://bucket/key", an
// http(s) URL of the storage's endpoint (path-style or virtual-hosted; a
// presigned URL's query is ignored), or a key (under a storage's prefix, or
// relative to it when the project has one import storage); for a text, the
// text itself.
type ImportTask struct {
	ID          *int64             `json:"id"`
	Data        map[string]any     `json:"data"`
	Annotations []ImportAnnotation `json:"annotations"`
	Predictions []ImportPrediction `json:"predictions"`
}

// ImportAnnotation is a person's annotation of a task: its result is Label
// Studio result JSON, checked against the label config. A cancelled
// annotation (was_cancelled: a skipped task) is not imported.
type ImportAnnotation struct {
	ID           *int64          `json:"id"`
	CompletedBy  json.RawMessage `json:"completed_by"`
	Result       json.RawMessage `json:"result"`
	WasCancelled bool            `json:"was_cancelled"`
	GroundTruth  bool            `json:"ground_truth"`
	CreatedAt    *time.Time      `json:"created_at"`
	UpdatedAt    *time.Time      `json:"updated_at"`
	LeadTime     *float64        `json:"lead_time"`
}

// ImportPrediction is a model's prediction of a task, stored as pre-annotation
// stores a model's answer.
type ImportPrediction struct {
	ModelVersion string          `json:"model_version"`
	Score        *float64        `json:"score"`
	Result       json.RawMessage `json:"result"`
}

// ImportResult answers an import: one result per task, in request order, and
// the totals.
type ImportResult struct {
	Tasks   []ImportTaskResult `json:"tasks"`
	Created int                `json:"created"`
	Invalid int                `json:"invalid"`
}

// Import task statuses.
const (
	ImportCreated = "created"
	ImportInvalid = "invalid"
)

// ImportTaskResult is what became of one task: created (its dataset file and
// version, the annotation_results versions of its annotations, the job they
// are the result of, and the llm_output versions of its predictions, every
// version with its validation queued), or invalid (the fields at fault;
// nothing written for it).
type ImportTaskResult struct {
	Index         int    `json:"index"`
	LabelStudioID *int64 `json:"label_studio_id,omitempty"`
	Status        string `json:"status"`
	FileID        int64  `json:"file_id,omitempty"`
	VersionID     int64  `json:"version_id,omitempty"`
	// JobID is the job of an annotated task, born with the latest annotation as
	// its result.
	JobID                int64        `json:"job_id,omitempty"`
	AnnotationVersionIDs []int64      `json:"annotation_version_ids,omitempty"`
	PredictionVersionIDs []int64      `json:"prediction_version_ids,omitempty"`
	Notes                []string     `json:"notes,omitempty"`
	Errors               []FieldError `json:"errors,omitempty"`
}

// importTask is a task being imported: what it asks, checked, and what it
// became.
type importTask struct {
	v   Validation
	res ImportTaskResult

	// The dataset: an image key in a storage, or a text labelq stores.
	storage *db.Storage
	key     string // the image's key in storage, or the text's in labelq's bucket
	text    []byte
	name    string // the dataset file's name

	annotations [][]byte // stored annotation objects, oldest first
	predictions []importObject

	fileID, versionID int64
}

type importObject struct {
	body  []byte
	model string
}

func (t *importTask) field(f string) string {
	if f == "" {
		return fmt.Sprintf("tasks[%d]", t.res.Index)
	}
	return fmt.Sprintf("tasks[%d].%s", t.res.Index, f)
}

func (t *importTask) ok() bool { return len(t.v.fields) == 0 }

// importTasks imports a Label Studio JSON export into a project, in one
// transaction: every task is checked (its data field, the results of its
// annotations and predictions against the project's label config), invalid
// tasks are reported and skipped, and the rest become files, versions and jobs
// through the bulk registration internal/ingest does for syncs and batches,
// every version validated by file:validate like any other.
func importTasks(c *Call) (int, any, error) {
	ctx := c.R.Context()
	pid, err := pathID(c.R, "project_id")
	if err != nil {
		return 0, nil, err
	}
	p, err := c.Q.ProjectGet(ctx, db.ProjectGetParams{ID: pid, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "project")
	}
	approve, err := approveParam(c.R)
	if err != nil {
		return 0, nil, err
	}
	cfg, ok, err := storedLabelConfig(p)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, invalid("label_config", fmt.Sprintf("project %d has no label config: set it first (PUT /v1/projects/%d/label-config, JSON or Label Studio XML); it names the task data field and the labels annotations are checked against", pid, pid))
	}
	if len(cfg.Objects) != 1 {
		return 0, nil, invalid("label_config", fmt.Sprintf("the label config has %d objects; an import takes tasks of one object (an image or a text)", len(cfg.Objects)))
	}
	raws, err := decodeImportTasks(c.Body)
	if err != nil {
		return 0, nil, err
	}
	storages, err := c.Q.ImportStorages(ctx, db.ImportStoragesParams{ProjectID: pid, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, fmt.Errorf("read the storages of project %d: %w", pid, err)
	}
	in := importer{c: c, projectID: pid, cfg: cfg, obj: cfg.Objects[0], storages: storages}
	ts := make([]*importTask, len(raws))
	for i, raw := range raws {
		ts[i] = in.check(i, raw)
	}
	if err := in.checkNames(ctx, ts); err != nil {
		return 0, nil, err
	}
	if err := in.link(ctx, ts); err != nil {
		return 0, nil, err
	}
	if err := in.put(ctx, ts); err != nil {
		return 0, nil, err
	}
	if err := in.create(ctx, ts, approve); err != nil {
		return 0, nil, err
	}

	out := ImportResult{Tasks: make([]ImportTaskResult, len(ts))}
	var all []FieldError
	for i, t := range ts {
		if !t.ok() {
			t.res = ImportTaskResult{Index: t.res.Index, LabelStudioID: t.res.LabelStudioID, Status: ImportInvalid, Errors: t.v.fields}
			all = append(all, t.v.fields...)
			out.Invalid++
		} else {
			t.res.Status = ImportCreated
			out.Created++
		}
		out.Tasks[i] = t.res
	}
	if out.Created == 0 {
		detail := fmt.Sprintf("every task of the import is invalid; the first: %s: %s", all[0].Field, all[0].Message)
		return 0, nil, problem(http.StatusUnprocessableEntity, "Invalid request", detail, all...)
	}
	return http.StatusAccepted, out, nil
}

// approveParam reads ?approve= (default true): whether the jobs of annotated
// tasks are born approved (status reviewed) or submitted for review.
func approveParam(r *http.Request) (bool, error) {
	s := r.URL.Query().Get("approve")
	if s == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, invalid("approve", "must be true (annotated tasks' jobs are approved) or false (submitted for review)")
	}
	return b, nil
}

// decodeImportTasks reads the body: a list of tasks, or {"tasks": [...]}.
func decodeImportTasks(body []byte) ([]json.RawMessage, error) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return nil, problem(http.StatusBadRequest, "Empty body", "the request needs a Label Studio JSON export: a list of tasks")
	}
	var raws []json.RawMessage
	if t[0] == '{' {
		var wrapped struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		if err := decodeJSON(t, &wrapped); err != nil {
			return nil, err
		}
		if wrapped.Tasks == nil {
			return nil, invalid("tasks", "is required: send the list of tasks Label Studio exports (Export → JSON), or {\"tasks\": [...]}")
		}
		raws = wrapped.Tasks
	} else {
		dec := json.NewDecoder(bytes.NewReader(t))
		if err := dec.Decode(&raws); err != nil {
			var typ *json.UnmarshalTypeError
			if errors.As(err, &typ) {
				return nil, problem(http.StatusBadRequest, "Malformed JSON", "the body must be a list of tasks (a Label Studio JSON export) or {\"tasks\": [...]}")
			}
			return nil, jsonProblem(err)
		}
		if dec.More() {
			return nil, problem(http.StatusBadRequest, "Malformed JSON", "the body has data after the list of tasks")
		}
	}
	switch {
	case len(raws) == 0:
		return nil, invalid("tasks", fmt.Sprintf("is empty: an import takes 1 to %d tasks", MaxImportTasks))
	case len(raws) > MaxImportTasks:
		return nil, invalid("tasks", fmt.Sprintf("at most %d tasks per import; this one has %d: split the export", MaxImportTasks, len(raws)))
	}
	return raws, nil
}

// importer is one import's context.
type importer struct {
	c         *Call
	projectID int64
	cfg       labelconfig.Config
	obj       labelconfig.Object
	storages  []db.Storage
}

// lsTask is a task as decoded for checking: raw fields, so that results are
// stored as they came.
type lsTask struct {
	ID          *int64                     `json:"id"`
	Data        map[string]json.RawMessage `json:"data"`
	Annotations []json.RawMessage          `json:"annotations"`
	Predictions []json.RawMessage          `json:"predictions"`
}

// check decodes and checks one task without writing anything.
func (in *importer) check(i int, raw json.RawMessage) *importTask {
	t := &importTask{res: ImportTaskResult{Index: i}}
	var lt lsTask
	if err := json.Unmarshal(raw, &lt); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field != "" {
			t.v.Add(t.field(typ.Field), "must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)
		} else {
			t.v.Add(t.field(""), "must be a Label Studio task: an object with data, annotations and predictions")
		}
		return t
	}
	t.res.LabelStudioID = lt.ID
	if lt.Data == nil {
		t.v.Add(t.field("data"), "is required: the task's data, with %s (the label config's object %q reads %s)", in.obj.DataKey(), in.obj.Name, in.obj.Value)
		return t
	}
	var text *string
	dataField := t.field("data." + in.obj.DataKey())
	var value string
	rawValue, ok := lt.Data[in.obj.DataKey()]
	if !ok || json.Unmarshal(rawValue, &value) != nil {
		t.v.Add(dataField, "must be a string: the label config's object %q reads %s", in.obj.Name, in.obj.Value)
		return t
	}
	switch in.obj.Type {
	case labelconfig.ObjectText:
		if value == "" {
			t.v.Add(dataField, "is empty: a text task needs its text")
			return t
		}
		if !utf8.ValidString(value) {
			t.v.Add(dataField, "is not valid UTF-8")
			return t
		}
		text = &value
		t.text = []byte(value)
		t.key = in.objectKey(t.text, "txt")
		if lt.ID != nil {
			t.name = fmt.Sprintf("task-%d.txt", *lt.ID)
		} else {
			t.name = fmt.Sprintf("task-%s.txt", hexSum(t.text)[:16])
		}
	default:
		st, key, reason := in.resolve(value)
		if reason != "" {
			t.v.Add(dataField, "%s", reason)
			return t
		}
		t.storage, t.key = st, key
		t.name = strings.TrimPrefix(key, st.Prefix)
		empty := ""
		text = &empty // an image config has no spans
	}

	type stamped struct {
		body []byte
		at   time.Time
		id   int64
	}
	var anns []stamped
	for j, a := range lt.Annotations {
		f := t.field(fmt.Sprintf("annotations[%d]", j))
		var m map[string]json.RawMessage
		if err := json.Unmarshal(a, &m); err != nil {
			t.v.Add(f, "must be an annotation object with a result")
			continue
		}
		var cancelled bool
		_ = json.Unmarshal(m["was_cancelled"], &cancelled)
		if cancelled {
			t.res.Notes = append(t.res.Notes, fmt.Sprintf("annotations[%d] was cancelled (a skipped task in Label Studio): not imported", j))
			continue
		}
		if !in.checkResult(t, f, m["result"], text) {
			continue
		}
		body, err := annotationObject(m)
		if err != nil {
			t.v.Add(f, "%v", err)
			continue
		}
		s := stamped{body: body}
		if raw, ok := m["created_at"]; ok {
			_ = json.Unmarshal(raw, &s.at)
		}
		if raw, ok := m["id"]; ok {
			_ = json.Unmarshal(raw, &s.id)
		}
		anns = append(anns, s)
	}
	// Oldest first: the last becomes the job's result, the annotation Label
	// Studio's converters take as the task's (newest created_at, then id).
	slices.SortStableFunc(anns, func(a, b stamped) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, a := range anns {
		t.annotations = append(t.annotations, a.body)
	}
	for j, pr := range lt.Predictions {
		f := t.field(fmt.Sprintf("predictions[%d]", j))
		var m map[string]json.RawMessage
		if err := json.Unmarshal(pr, &m); err != nil {
			t.v.Add(f, "must be a prediction object with a result")
			continue
		}
		if !in.checkResult(t, f, m["result"], text) {
			continue
		}
		body, model, err := predictionObject(m)
		if err != nil {
			t.v.Add(f, "%v", err)
			continue
		}
		t.predictions = append(t.predictions, importObject{body: body, model: model})
	}
	return t
}

// checkResult checks one annotation's or prediction's result against the
// label config, naming the region and field at fault
// (tasks[3].annotations[0].result[2].value.x).
func (in *importer) checkResult(t *importTask, f string, result json.RawMessage, text *string) bool {
	if r := bytes.TrimSpace(result); len(r) == 0 || r[0] != '[' {
		t.v.Add(f+".result", "is required: a list of regions (Label Studio result JSON)")
		return false
	}
	err := resultcheck.Check(in.cfg, result, text)
	var ve *labelconfig.ValidationError
	switch {
	case errors.As(err, &ve):
		field := fmt.Sprintf("%s.result[%d]", f, ve.Index)
		if ve.Field != "" {
			field += "." + ve.Field
		}
		t.v.Add(field, "%s", ve.Error())
		return false
	case err != nil:
		t.v.Add(f+".result", "%v", err)
		return false
	}
	return true
}

// annotationKeys are the fields of a Label Studio annotation an import keeps,
// in the order they are stored; the result is kept as it came.
var annotationKeys = []string{"id", "completed_by", "created_at", "updated_at", "lead_time", "ground_truth", "result"}

// annotationObject is the annotation_results version's content: a Label Studio
// annotation object with the fields labelq keeps, compact JSON.
func annotationObject(m map[string]json.RawMessage) ([]byte, error) {
	return compactObject(m, annotationKeys)
}

// predictionObject is the llm_output version's content: {"model_version",
// "score", "result"}, the shape pre-annotation stores a model's answer in
// (score only when the prediction has one).
func predictionObject(m map[string]json.RawMessage) ([]byte, string, error) {
	var model string
	if raw, ok := m["model_version"]; ok && string(bytes.TrimSpace(raw)) != "null" {
		if err := json.Unmarshal(raw, &model); err != nil {
			return nil, "", errors.New("model_version must be a string")
		}
	}
	mv, _ := json.Marshal(model)
	out := map[string]json.RawMessage{"model_version": mv, "result": m["result"]}
	if raw, ok := m["score"]; ok && string(bytes.TrimSpace(raw)) != "null" {
		var s float64
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "", errors.New("score must be a number")
		}
		out["score"] = raw
	}
	b, err := compactObject(out, []string{"model_version", "score", "result"})
	return b, model, err
}

// compactObject writes the keys of m named in keys, in that order, as compact
// JSON; the values are kept as they came (only whitespace outside strings
// goes), so a result re-encoded canonically is byte-equal to Label Studio's.
func compactObject(m map[string]json.RawMessage, keys []string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, k := range keys {
		raw, ok := m[k]
		if !ok {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(strconv.Quote(k))
		b.WriteByte(':')
		if err := json.Compact(&b, raw); err != nil {
			return nil, fmt.Errorf("%s is not valid JSON: %w", k, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// objectKey is where an import keeps an object it writes (a text, an
// annotation, a prediction) in labelq's bucket: named by its SHA-256, so a
// retried request writes the same objects again rather than new ones.
func (in *importer) objectKey(body []byte, ext string) string {
	return fmt.Sprintf("orgs/%d/projects/%d/imports/%s.%s", in.c.OrgID, in.projectID, hexSum(body), ext)
}

// lsLocal is the start of the data URLs Label Studio serves itself (uploads,
// local files), which no storage holds.
var lsLocal = []string{"/data/upload/", "/data/local-files/", "/storage-data/"}

// lsServed says why a URL of Label Studio's own files cannot be imported.
func lsServed(value string) string {
	if !slices.ContainsFunc(lsLocal, func(p string) bool { return strings.Contains(value, p) }) {
		return fmt.Sprintf("%q is a path, not a key or URL of one of the project's import storages; give s3://bucket/key", clipURL(value))
	}
	return fmt.Sprintf("%q is a file Label Studio serves itself (an upload or a local file); labelq reads task data from the project's storages: put the images in a bucket, add it as an import storage (POST /v1/projects/{id}/storages), and give s3://bucket/key URLs", clipURL(value))
}

// resolve finds the import storage holding an image's data URL and its key
// there, or says why none does.
func (in *importer) resolve(value string) (*db.Storage, string, string) {
	if value == "" {
		return nil, "", "is empty: an image task needs the image's URL"
	}
	if strings.HasPrefix(value, "/") {
		return nil, "", lsServed(value)
	}
	if len(in.storages) == 0 {
		return nil, "", "the project has no import storage; add the bucket that holds the images (POST /v1/projects/{id}/storages)"
	}
	scheme, rest, hasScheme := strings.Cut(value, "://")
	if !hasScheme {
		return in.byKey(value)
	}
	switch strings.ToLower(scheme) {
	case "s3":
		bucket, key, _ := strings.Cut(rest, "/")
		return in.inBucket(value, func(st *db.Storage) bool { return in.bucketOf(st) == bucket }, key,
			fmt.Sprintf("no import storage of the project is over bucket %q", bucket))
	case "http", "https":
		u, err := url.Parse(value)
		if err != nil || u.Host == "" {
			return nil, "", fmt.Sprintf("%q is not a URL", clipURL(value))
		}
		host := withPort(u.Host, defaultPort(u.Scheme))
		path := strings.TrimPrefix(u.Path, "/")
		for i := range in.storages {
			st := &in.storages[i]
			ep := withPort(in.endpointOf(st), defaultPort(map[bool]string{true: "https", false: "http"}[in.tlsOf(st)]))
			epHost, epPort, _ := net.SplitHostPort(ep)
			bucket := in.bucketOf(st)
			var key string
			switch {
			case host == ep && strings.HasPrefix(path, bucket+"/"):
				key = strings.TrimPrefix(path, bucket+"/") // path-style
			case host == net.JoinHostPort(strings.ToLower(bucket)+"."+epHost, epPort):
				key = path // virtual-hosted
			default:
				continue
			}
			return in.inBucket(value, func(o *db.Storage) bool {
				return in.bucketOf(o) == bucket && strings.EqualFold(in.endpointOf(o), in.endpointOf(st))
			}, key, "")
		}
		if slices.ContainsFunc(lsLocal, func(p string) bool { return strings.HasPrefix(u.Path, p) }) {
			return nil, "", lsServed(value)
		}
		return nil, "", fmt.Sprintf("%q is not in any of the project's import storages (%s)", clipURL(value), in.storageList())
	}
	return nil, "", fmt.Sprintf("%q: %s:// URLs are not supported; give s3://bucket/key, an http(s) URL of a storage's endpoint, or a key", clipURL(value), scheme)
}

// inBucket picks, among the storages match accepts, the one whose prefix is
// the longest that key starts with.
func (in *importer) inBucket(value string, match func(*db.Storage) bool, key, none string) (*db.Storage, string, string) {
	var best *db.Storage
	var prefixes []string
	for i := range in.storages {
		st := &in.storages[i]
		if !match(st) {
			continue
		}
		prefixes = append(prefixes, strconv.Quote(st.Prefix))
		if strings.HasPrefix(key, st.Prefix) && (best == nil || len(st.Prefix) > len(best.Prefix)) {
			best = st
		}
	}
	switch {
	case best != nil:
		return in.keyIn(best, key)
	case len(prefixes) == 0:
		return nil, "", fmt.Sprintf("%q: %s (%s)", clipURL(value), none, in.storageList())
	}
	return nil, "", fmt.Sprintf("%q is outside the prefixes of the project's import storages over that bucket (%s)", clipURL(value), strings.Join(prefixes, ", "))
}

// byKey resolves a data value that is a bare key: a full key under one
// storage's prefix, or a key relative to the prefix of the project's only
// import storage.
func (in *importer) byKey(key string) (*db.Storage, string, string) {
	var best *db.Storage
	for i := range in.storages {
		st := &in.storages[i]
		if st.Prefix != "" && strings.HasPrefix(key, st.Prefix) && (best == nil || len(st.Prefix) > len(best.Prefix)) {
			best = st
		}
	}
	switch {
	case best != nil:
		return in.keyIn(best, key)
	case len(in.storages) == 1:
		return in.keyIn(&in.storages[0], in.storages[0].Prefix+key)
	}
	return nil, "", fmt.Sprintf("%q is a key under none of the prefixes of the project's %d import storages (%s); give s3://bucket/key", clipURL(key), len(in.storages), in.storageList())
}

// keyIn checks key as a key of st: one of labelq's own bucket stays in the
// organization's namespace, as a registered key does.
func (in *importer) keyIn(st *db.Storage, key string) (*db.Storage, string, string) {
	if key == "" || key == st.Prefix {
		return nil, "", "names the storage's prefix, not an object under it"
	}
	if st.Endpoint == "" {
		var v Validation
		checkStorageKey(&v, "key", key, in.c.OrgID)
		if len(v.fields) > 0 {
			return nil, "", fmt.Sprintf("key %q: %s", clipURL(key), v.fields[0].Message)
		}
	}
	return st, key, ""
}

// bucketOf, endpointOf and tlsOf are where a storage's objects are; an own
// storage's are labelq's bucket and endpoint.
func (in *importer) bucketOf(st *db.Storage) string {
	if st.Endpoint == "" {
		return in.c.S.Store.Bucket
	}
	return st.Bucket
}

func (in *importer) endpointOf(st *db.Storage) string {
	if st.Endpoint == "" {
		return in.c.S.Store.Client.EndpointURL().Host
	}
	return st.Endpoint
}

func (in *importer) tlsOf(st *db.Storage) bool {
	if st.Endpoint == "" {
		return in.c.S.Store.Client.EndpointURL().Scheme == "https"
	}
	return st.UseTls
}

func (in *importer) storageList() string {
	names := make([]string, len(in.storages))
	for i, st := range in.storages {
		names[i] = fmt.Sprintf("storage %d: s3://%s/%s", st.ID, in.bucketOf(&st), st.Prefix)
	}
	return strings.Join(names, ", ")
}

// withPort is host:port in lower case, with port the default one when host
// names none.
func withPort(host, port string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return strings.ToLower(host)
	}
	return strings.ToLower(net.JoinHostPort(host, port))
}

func defaultPort(scheme string) string {
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}

func clipURL(s string) string {
	if len(s) <= 200 {
		return s
	}
	return s[:200] + "…"
}

// Suffixes of the files an import makes beside a task's dataset file.
const (
	annotationSuffix = ".annotation.json"
	predictionSuffix = ".llm.json" // pre-annotation's llm_output file of the same dataset file
)

// withSuffix is name with suffix, name cut (on a character boundary) so that
// the whole fits a file name.
func withSuffix(name, suffix string) string {
	const maxName = 1024
	if room := maxName - utf8.RuneCountInString(suffix); utf8.RuneCountInString(name) > room {
		name = string([]rune(name)[:room])
	}
	return name + suffix
}

// names are the files a valid task will make.
func (t *importTask) names() []string {
	n := []string{t.name}
	if len(t.annotations) > 0 {
		n = append(n, withSuffix(t.name, annotationSuffix))
	}
	if len(t.predictions) > 0 {
		n = append(n, withSuffix(t.name, predictionSuffix))
	}
	return n
}

// checkNames refuses the tasks whose files would take a name a live file of
// the project has, or another task of the import takes (or the same image).
func (in *importer) checkNames(ctx context.Context, ts []*importTask) error {
	var names []string
	owner := map[string]int{}
	for _, t := range ts {
		if !t.ok() {
			continue
		}
		dup := false
		for _, n := range t.names() {
			if j, seen := owner[n]; seen {
				what := "a file named " + strconv.Quote(n)
				if n == t.name && t.storage != nil {
					what = "the same image"
				}
				t.v.Add(t.field("data."+in.obj.DataKey()), "tasks[%d] already has %s", j, what)
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		for _, n := range t.names() {
			owner[n] = t.res.Index
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	taken, err := in.c.Q.FilesOwnersOfNames(ctx, db.FilesOwnersOfNamesParams{ProjectID: in.projectID, Names: names})
	if err != nil {
		return fmt.Errorf("read the project's files of the import's names: %w", err)
	}
	for _, f := range taken {
		t := ts[owner[f.Name]]
		if t.ok() {
			t.v.Add(t.field("data."+in.obj.DataKey()), "the project already has a file named %q (file %d); an import creates new files", f.Name, f.ID)
		}
	}
	return nil
}

// link registers the image tasks' keys in their storages (ingest.Link): new
// dataset files and versions, linked to the keys.
func (in *importer) link(ctx context.Context, ts []*importTask) error {
	byStorage := map[int64][]*importTask{}
	var order []int64
	for _, t := range ts {
		if t.ok() && t.storage != nil {
			if _, ok := byStorage[t.storage.ID]; !ok {
				order = append(order, t.storage.ID)
			}
			byStorage[t.storage.ID] = append(byStorage[t.storage.ID], t)
		}
	}
	slices.Sort(order) // storages locked in id order: two imports never wait on each other in a cycle
	for _, sid := range order {
		group := byStorage[sid]
		st := *group[0].storage
		plan, err := ingest.Compile(st)
		if err != nil {
			for _, t := range group {
				t.v.Add(t.field("data."+in.obj.DataKey()), "storage %d's key filter or rules do not compile (%v); fix the storage", st.ID, err)
			}
			continue
		}
		keys := make([]string, len(group))
		for i, t := range group {
			keys[i] = t.key
		}
		got, err := ingest.Link(ctx, in.c.Q, st, plan, keys)
		if err != nil {
			return fmt.Errorf("register the import's keys of storage %d: %w", st.ID, err)
		}
		for _, t := range group {
			l := got[t.key]
			if l.Reason != "" {
				t.v.Add(t.field("data."+in.obj.DataKey()), "s3://%s/%s: %s", in.bucketOf(&st), t.key, l.Reason)
				continue
			}
			t.fileID, t.versionID = l.FileID, l.VersionID
		}
	}
	return nil
}

// put writes the objects of the valid tasks (texts, annotations, predictions)
// to labelq's bucket, a few at a time.
func (in *importer) put(ctx context.Context, ts []*importTask) error {
	type object struct {
		key, ctype string
		body       []byte
	}
	seen := map[string]bool{}
	var objs []object
	add := func(key, ctype string, body []byte) {
		if !seen[key] {
			seen[key] = true
			objs = append(objs, object{key, ctype, body})
		}
	}
	for _, t := range ts {
		if !t.ok() {
			continue
		}
		if t.storage == nil {
			add(t.key, "text/plain; charset=utf-8", t.text)
		}
		for _, a := range t.annotations {
			add(in.objectKey(a, "json"), "application/json", a)
		}
		for _, p := range t.predictions {
			add(in.objectKey(p.body, "json"), "application/json", p.body)
		}
	}
	work := make(chan object)
	errs := make(chan error, importPuts)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range min(importPuts, len(objs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				_, err := in.c.S.Store.Client.PutObject(pctx, in.c.S.Store.Bucket, o.key, bytes.NewReader(o.body), int64(len(o.body)),
					minio.PutObjectOptions{ContentType: o.ctype})
				if err != nil {
					errs <- fmt.Errorf("store %s: %w", o.key, err)
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, o := range objs {
		select {
		case work <- o:
		case <-pctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// create writes the valid tasks' files, versions, jobs and events.
func (in *importer) create(ctx context.Context, ts []*importTask, approve bool) error {
	q := in.c.Q
	var valid []*importTask
	for _, t := range ts {
		if t.ok() {
			valid = append(valid, t)
		}
	}
	if len(valid) == 0 {
		return nil
	}
	var files []ingest.NewFile
	for _, t := range valid {
		if t.storage == nil {
			files = append(files, ingest.NewFile{Name: t.name, FileType: db.FileTypeDataset})
		}
		if len(t.annotations) > 0 {
			files = append(files, ingest.NewFile{Name: withSuffix(t.name, annotationSuffix), FileType: db.FileTypeAnnotationResults})
		}
		if len(t.predictions) > 0 {
			files = append(files, ingest.NewFile{Name: withSuffix(t.name, predictionSuffix), FileType: db.FileTypeLlmOutput})
		}
	}
	ids, err := ingest.CreateFiles(ctx, q, in.c.OrgID, in.projectID, files)
	if err != nil {
		return err
	}
	for _, f := range files {
		if _, ok := ids[f.Name]; !ok {
			// Taken since checkNames looked: nothing of this request is kept.
			return conflict(fmt.Sprintf("another request created a file named %q while this import ran; nothing was imported: send the import again", f.Name))
		}
	}

	// Text datasets first, then every task's results, so that a result's source
	// version is known when its origin is set.
	var vs []ingest.NewVersion
	version := func(fileID int64, key string, body []byte) {
		sum, size := hexSum(body), int64(len(body))
		vs = append(vs, ingest.NewVersion{OrgID: in.c.OrgID, ProjectID: in.projectID, FileID: fileID, StoragePath: key,
			ExpectedSHA256: &sum, ExpectedSize: &size})
	}
	for _, t := range valid {
		if t.storage == nil {
			t.fileID = ids[t.name]
			version(t.fileID, t.key, t.text)
		}
	}
	texts := len(vs)
	for _, t := range valid {
		for _, a := range t.annotations {
			version(ids[withSuffix(t.name, annotationSuffix)], in.objectKey(a, "json"), a)
		}
		for _, p := range t.predictions {
			version(ids[withSuffix(t.name, predictionSuffix)], in.objectKey(p.body, "json"), p.body)
		}
	}
	made, err := ingest.CreateVersions(ctx, q, vs)
	if err != nil {
		return err
	}
	i := 0
	for _, t := range valid {
		if t.storage == nil {
			t.versionID = made[i].ID
			i++
		}
	}
	origin := db.FileVersionsSetOriginParams{OrgID: in.c.OrgID}
	jobs := db.AnnotationJobsCreateImportedParams{OrgID: in.c.OrgID, ProjectID: in.projectID, CompletedAt: in.c.S.now(),
		Status: db.JobStatusReviewed, ReviewStatus: db.ReviewStatusApproved}
	if !approve {
		jobs.Status, jobs.ReviewStatus = db.JobStatusSubmitted, db.ReviewStatusPending
	}
	jobOf := map[int64]*importTask{}
	i = texts
	for _, t := range valid {
		t.res.FileID, t.res.VersionID = t.fileID, t.versionID
		for range t.annotations {
			origin.Ids = append(origin.Ids, made[i].ID)
			origin.SourceIds = append(origin.SourceIds, t.versionID)
			origin.Methods = append(origin.Methods, string(db.GenerationMethodUpload))
			origin.Models = append(origin.Models, "")
			t.res.AnnotationVersionIDs = append(t.res.AnnotationVersionIDs, made[i].ID)
			i++
		}
		for _, p := range t.predictions {
			origin.Ids = append(origin.Ids, made[i].ID)
			origin.SourceIds = append(origin.SourceIds, t.versionID)
			origin.Methods = append(origin.Methods, string(db.GenerationMethodLlm))
			origin.Models = append(origin.Models, p.model)
			t.res.PredictionVersionIDs = append(t.res.PredictionVersionIDs, made[i].ID)
			i++
		}
		if n := len(t.res.AnnotationVersionIDs); n > 0 {
			jobs.FileVersionIds = append(jobs.FileVersionIds, t.versionID)
			jobs.ResultVersionIds = append(jobs.ResultVersionIds, t.res.AnnotationVersionIDs[n-1])
			jobOf[t.versionID] = t
		}
	}
	if len(origin.Ids) > 0 {
		if err := q.FileVersionsSetOrigin(ctx, origin); err != nil {
			return fmt.Errorf("link %d imported results to their tasks: %w", len(origin.Ids), err)
		}
	}
	if len(jobs.FileVersionIds) > 0 {
		rows, err := q.AnnotationJobsCreateImported(ctx, jobs)
		if err != nil {
			return fmt.Errorf("create %d jobs of annotated tasks: %w", len(jobs.FileVersionIds), err)
		}
		if len(rows) != len(jobs.FileVersionIds) {
			return fmt.Errorf("create jobs of annotated tasks: %d of %d created", len(rows), len(jobs.FileVersionIds))
		}
		for _, r := range rows {
			jobOf[r.FileVersionID].res.JobID = r.ID
		}
	}
	return in.events(ctx, valid, made)
}

// events writes an "uploaded" event for every version the import made and an
// "imported" event for every job, one statement each.
func (in *importer) events(ctx context.Context, valid []*importTask, made []ingest.Created) error {
	number := map[int64]int32{}
	for _, m := range made {
		number[m.ID] = m.VersionNumber
	}
	up := db.EventLogInsertBatchParams{OrgID: in.c.OrgID, EntityType: db.EntityTypeFileVersion, EventType: "uploaded"}
	jobs := db.EventLogInsertBatchParams{OrgID: in.c.OrgID, EntityType: db.EntityTypeAnnotationJob, EventType: "imported"}
	add := func(p *db.EventLogInsertBatchParams, id int64, key string, meta map[string]any) error {
		meta["token_id"] = in.c.TokenID
		b, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		p.EntityIds, p.DedupKeys, p.Metadata = append(p.EntityIds, id), append(p.DedupKeys, key), append(p.Metadata, b)
		return nil
	}
	for _, t := range valid {
		vids := slices.Concat([]int64{t.versionID}, t.res.AnnotationVersionIDs, t.res.PredictionVersionIDs)
		for _, vid := range vids {
			meta := map[string]any{"import": "label_studio", "version_number": cmp.Or(number[vid], 1)}
			if t.res.LabelStudioID != nil {
				meta["label_studio_id"] = *t.res.LabelStudioID
			}
			if vid != t.versionID {
				meta["source_file_version_id"] = t.versionID
			}
			if err := add(&up, vid, fmt.Sprintf("uploaded:file_version:%d", vid), meta); err != nil {
				return err
			}
		}
		if t.res.JobID != 0 {
			meta := map[string]any{"file_version_id": t.versionID, "result_version_id": t.res.AnnotationVersionIDs[len(t.res.AnnotationVersionIDs)-1]}
			if t.res.LabelStudioID != nil {
				meta["label_studio_id"] = *t.res.LabelStudioID
			}
			if err := add(&jobs, t.res.JobID, fmt.Sprintf("imported:annotation_job:%d", t.res.JobID), meta); err != nil {
				return err
			}
		}
	}
	for _, p := range []db.EventLogInsertBatchParams{up, jobs} {
		if len(p.EntityIds) == 0 {
			continue
		}
		if err := in.c.Q.EventLogInsertBatch(ctx, p); err != nil {
			return fmt.Errorf("write %d %s events: %w", len(p.EntityIds), p.EventType, err)
		}
	}
	return nil
}
