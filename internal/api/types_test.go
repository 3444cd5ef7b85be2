package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/verify"
)

// internalColumns are columns a client has no business seeing (see types.go). None
// may be a field of any response, whatever the route.
var internalColumns = []string{
	"org_id",              // the tenant key: always the caller's own organization
	"deleted_at",          // soft deletion: deleted rows are never answered
	"validation_attempts", // the validator's retry counter
	"attempts",            // the exporter's (and LLM runs') retry counter
	"dedup_key",           // makes a redelivered task's event a no-op
	"token_hash",          // api_tokens
	"request_hash",        // idempotency_keys
	"response_body",       // idempotency_keys
	"cache_key",           // llm_runs
	"raw_output",          // llm_runs
	// A storage's secrets are write-only: never answered, whatever the route.
	"credentials",        // storages: sealed S3 keys
	"credentials_key_id", // storages: the key that sealed them
	"notify_secret_hash", // storages: the notification secret's SHA-256
}

// internalBySchema are columns internal to one resource only.
var internalBySchema = map[string][]string{
	"Export": {"storage_path"}, // where labelq keeps the archive; /download gives a URL
	// The object file:validate measured, as S3 named it: for If-Match reads only.
	"Version": {"object_etag", "object_version_id"},
	// A webhook's sealed secrets and the key that sealed them.
	"Webhook": {"secret", "secret_key_id", "previous_secret", "previous_secret_key_id"},
	// The event row's internal id (event_id answers its public id) and where the
	// retry schedule's round began.
	"WebhookDelivery": {"event_id", "round_start"},
	// An attempt is answered inside its delivery.
	"WebhookAttempt": {"id", "delivery_id"},
}

// publicBySchema are columns internal elsewhere that one resource answers.
var publicBySchema = map[string][]string{
	// The delivery log is for people: how many attempts a delivery took, and
	// what the receiver answered.
	"WebhookDelivery": {"attempts"},
	"WebhookAttempt":  {"response_body"},
	// What a version's runs cost and said: the calls made, and a failed run's
	// reply (llmRunFromRow answers it for failed runs only).
	"LLMRun": {"attempts", "raw_output"},
}

// renamedBySchema are public fields whose column has another name (field →
// column). A field may carry the name of an internal column of its row: it
// answers the other column's value.
var renamedBySchema = map[string]map[string]string{
	"Webhook":         {"secret_rotation_expires_at": "previous_secret_expires_at"},
	"WebhookDelivery": {"webhook_id": "endpoint_id", "event_id": "public_id"},
}

// shownOnceBySchema are properties that carry a secret in plain in the one
// answer that makes it (create, rotate) under the name of the internal column
// that keeps it sealed: the schema lists them, no row mapper copies the column.
var shownOnceBySchema = map[string][]string{
	"Webhook": {"secret"},
}

// internalOf is every column internal to schema's resource.
func internalOf(schema string) map[string]bool {
	internal := map[string]bool{}
	for _, c := range append(append([]string{}, internalColumns...), internalBySchema[schema]...) {
		internal[c] = true
	}
	for _, c := range publicBySchema[schema] {
		delete(internal, c)
	}
	return internal
}

// TestResponseTypesAreNotRows: no response is, embeds or holds a type of
// internal/db, so a column added to a row cannot reach the public JSON.
func TestResponseTypesAreNotRows(t *testing.T) {
	dbPkg := reflect.TypeOf(db.Project{}).PkgPath()
	for _, rt := range (&Server{}).Routes() {
		if rt.Response == nil {
			continue // answers no body
		}
		var walk func(typ reflect.Type, path string)
		seen := map[reflect.Type]bool{}
		walk = func(typ reflect.Type, path string) {
			if seen[typ] {
				return
			}
			seen[typ] = true
			require.NotEqual(t, dbPkg, typ.PkgPath(), "%s %s answers %s, a %s: map it to a type of internal/api",
				rt.Method, rt.Path, path, typ)
			require.NotContains(t, typ.Name(), dbPkg+".", "%s %s answers %s, a %s", rt.Method, rt.Path, path, typ)
			switch typ.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Array:
				walk(typ.Elem(), path+"[]")
			case reflect.Map:
				walk(typ.Key(), path+"{key}")
				walk(typ.Elem(), path+"{}")
			case reflect.Struct:
				for i := range typ.NumField() {
					f := typ.Field(i)
					walk(f.Type, path+"."+f.Name)
				}
			}
		}
		typ := reflect.TypeOf(rt.Response)
		walk(typ, typ.Name())
	}
}

// TestNoInternalColumnInOpenAPI: for every route, the response schema (followed
// through every $ref) has no internal column as a property.
func TestNoInternalColumnInOpenAPI(t *testing.T) {
	raw, err := GenerateOpenAPI((&Server{}).Routes())
	require.NoError(t, err)
	var doc struct {
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	checked := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for code, resp := range op["responses"].(map[string]any) {
				var refs []string
				collectRefs(resp, &refs)
				seen := map[string]bool{}
				for len(refs) > 0 {
					name := refs[0]
					refs = refs[1:]
					if seen[name] {
						continue
					}
					seen[name] = true
					schema, ok := doc.Components.Schemas[name]
					require.True(t, ok, "%s %s: $ref to missing schema %s", method, path, name)
					props, _ := schema["properties"].(map[string]any)
					for col := range internalOf(name) {
						if _, renamed := renamedBySchema[name][col]; renamed || slices.Contains(shownOnceBySchema[name], col) {
							continue // the property answers another value than the column's
						}
						_, leaks := props[col]
						require.False(t, leaks, "%s %s answers %s with schema %s, which has the internal column %q",
							strings.ToUpper(method), path, code, name, col)
					}
					collectRefs(schema, &refs)
					checked++
				}
			}
		}
	}
	require.Positive(t, checked)
}

func collectRefs(v any, refs *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "$ref" {
				*refs = append(*refs, strings.TrimPrefix(s, "#/components/schemas/"))
				continue
			}
			collectRefs(e, refs)
		}
	case []any:
		for _, e := range v {
			collectRefs(e, refs)
		}
	}
}

// rowMapping fills a row with distinct non-zero values in every field and maps it.
func rowMapping[R, T any](from func(R) T) func() (row, out any) {
	return func() (any, any) {
		var r R
		n := 0
		fill(reflect.ValueOf(&r).Elem(), &n)
		return r, from(r)
	}
}

// rowMappingWith is rowMapping with the filled row adjusted first (an enum
// column that a derived field depends on).
func rowMappingWith[R, T any](adjust func(*R), from func(R) T) func() (row, out any) {
	return func() (any, any) {
		var r R
		n := 0
		fill(reflect.ValueOf(&r).Elem(), &n)
		adjust(&r)
		return r, from(r)
	}
}

var base = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func fill(v reflect.Value, n *int) {
	*n++
	switch {
	case v.Type() == reflect.TypeOf(time.Time{}):
		v.Set(reflect.ValueOf(base.Add(time.Duration(*n) * time.Minute)))
		return
	case v.Type() == reflect.TypeOf(json.RawMessage{}):
		v.SetBytes([]byte(fmt.Sprintf(`{"n":%d}`, *n)))
		return
	case v.Type() == reflect.TypeOf([]byte{}):
		v.SetBytes([]byte(fmt.Sprintf("bytes-%d", *n)))
		return
	case v.Kind() == reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
		return
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.25)
	case reflect.String:
		v.SetString(fmt.Sprintf("v%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	default:
		panic(fmt.Sprintf("fill: no value for %s", v.Type()))
	}
}

func jsonObject(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// TestRowMappersCopyEveryField: every field of a response carries the value of the
// row's column of the same name (a public field keeps the name clients use), and
// every column left out is one the test knows to be internal, so a new column is a
// decision (public: add it to the response type; internal: to internalColumns).
func TestRowMappersCopyEveryField(t *testing.T) {
	// Fields computed from the row rather than copied: the value each must have,
	// from the row's columns.
	derived := map[string]map[string]func(cols map[string]any) any{
		"Version": {
			"display_width": func(cols map[string]any) any {
				if verify.Rotated(int(cols["image_orientation"].(float64))) {
					return cols["image_height"]
				}
				return cols["image_width"]
			},
			"display_height": func(cols map[string]any) any {
				if verify.Rotated(int(cols["image_orientation"].(float64))) {
					return cols["image_width"]
				}
				return cols["image_height"]
			},
		},
		"Storage": {
			"has_credentials":  func(cols map[string]any) any { return cols["credentials"] != nil },
			"notification_url": func(cols map[string]any) any { return fmt.Sprintf("/v1/storages/%v/notifications", cols["id"]) },
		},
		"WebhookDelivery": {
			// Read beside the row; empty until the handler adds them.
			"attempt_log": func(map[string]any) any { return []any{} },
			"next_attempt_at": func(cols map[string]any) any {
				if cols["status"] == string(db.WebhookDeliveryStatusPending) {
					return cols["next_attempt_at"]
				}
				return nil
			},
		},
	}
	mappings := map[string]func() (any, any){
		"Project":    rowMapping(projectFromRow),
		"User":       rowMapping(userFromRow),
		"File":       rowMapping(fileFromRow),
		"Version":    rowMapping(versionFromRow),
		"Job":        rowMapping(jobFromRow),
		"Assignment": rowMapping(assignmentFromRow),
		"Export":     rowMapping(exportFromRow),
		"Schedule":   rowMapping(scheduleFromRow),
		"Event":      rowMapping(eventFromRow),
		"LLMUsage":   rowMapping(llmUsageFromRow),
		"LLMRun":     rowMappingWith(func(r *db.LlmRun) { r.Status = db.LlmRunStatusFailed }, llmRunFromRow),
		"Storage":    rowMappingWith(func(r *db.Storage) { r.Kind = db.StorageKindImport }, storageFromRow),
		"SyncRun":    rowMapping(syncRunFromRow),
		"Webhook":    rowMapping(webhookFromRow),
		"WebhookDelivery": rowMappingWith(func(r *db.WebhookDeliveryGetRow) { r.Status = db.WebhookDeliveryStatusPending },
			webhookDeliveryFromRow),
		"WebhookAttempt":   rowMapping(webhookAttemptFromRow),
		"Submission":       rowMapping(submissionFromRow),
		"AgreementReport":  rowMapping(agreementFromRow),
		"Consensus":        rowMapping(consensusFromRow),
		"AdmissionBacklog": rowMapping(admissionBacklogFromRow),
	}
	for name, m := range mappings {
		t.Run(name, func(t *testing.T) {
			row, out := m()
			require.Equal(t, name, reflect.TypeOf(out).Name())
			cols, fields := jsonObject(t, row), jsonObject(t, out)
			answered := map[string]bool{}
			for f, v := range fields {
				if want, ok := derived[name][f]; ok {
					require.Equal(t, want(cols), v, "%s.%s", name, f)
					continue
				}
				col := f
				if c, ok := renamedBySchema[name][f]; ok {
					col = c
				}
				require.Contains(t, cols, col, "%s.%s is no column of %T; if the column was renamed, say so in renamedBySchema", name, f, row)
				require.Equal(t, cols[col], v, "%s.%s does not carry the row's %s", name, f, col)
				answered[col] = true
			}
			internal := internalOf(name)
			var missing []string
			for c := range cols {
				if _, public := fields[c]; !public && !answered[c] && !internal[c] {
					missing = append(missing, c)
				}
			}
			sort.Strings(missing)
			require.Empty(t, missing, "%T has columns %s that %s neither answers nor lists as internal", row, missing, name)
		})
	}
	// Every response type built from a row is tested above.
	notRows := map[reflect.Type]bool{
		reflect.TypeOf(Enqueued{}): true, reflect.TypeOf(UploadURL{}): true,
		reflect.TypeOf(Download{}): true, reflect.TypeOf(TaskState{}): true,
		reflect.TypeOf(SyncStarted{}): true, reflect.TypeOf(NotifySecret{}): true,
		// Per-item outcomes of a batch: each created item is a version id to read.
		reflect.TypeOf(BatchResult{}): true,
		// A notification's counts, not a row.
		reflect.TypeOf(NotificationResult{}): true,
		// A webhook's new secret, and the event and delivery a test made.
		reflect.TypeOf(WebhookSecret{}): true, reflect.TypeOf(WebhookPing{}): true,
		// A project's label_config column, parsed (Project answers the column),
		// and an import's per-task outcomes.
		reflect.TypeOf(LabelConfig{}): true, reflect.TypeOf(ImportResult{}): true,
		// A submitted copy's assignment (tested as Assignment) and the
		// submissions queued; aggregates over submissions.
		reflect.TypeOf(Submitted{}): true, reflect.TypeOf(QualityReport{}): true, reflect.TypeOf(LeaderboardEntry{}): true,
	}
	for _, rt := range (&Server{}).Routes() {
		if rt.Response == nil {
			continue // answers no body
		}
		typ := reflect.TypeOf(rt.Response)
		if typ.Kind() == reflect.Struct && strings.HasPrefix(typ.Name(), "List[") {
			typ = typ.Field(0).Type.Elem()
		}
		if typ.Kind() != reflect.Struct || notRows[typ] {
			continue
		}
		require.Contains(t, mappings, typ.Name(), "%s %s answers %s; add its row mapping to this test", rt.Method, rt.Path, typ.Name())
	}
}
