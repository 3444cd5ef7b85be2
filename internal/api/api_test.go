package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

type client struct {
	t     testing.TB
	base  string
	token string
}

type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), string(r.Body))
	return m
}

func (c client) do(method, path string, body any, headers ...string) reply {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(c.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// fixture is one test's services, the app serving its API and a client per organization.
type fixture struct {
	env    *testenv.Env
	a      *app.App
	server *httptest.Server
	orgA   client
	orgB   client
	anon   client
	orgAID int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, secretKey())
}

// secretKey is a credentials key, which webhooks' signing secrets need.
func secretKey() map[string]string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return map[string]string{"LABELQ_SECRET_KEY": "k1:" + base64.StdEncoding.EncodeToString(key)}
}

// newFixtureWith is newFixture with configuration overrides (variable → value).
func newFixtureWith(t *testing.T, overrides map[string]string) *fixture {
	t.Helper()
	return newFixtureLogging(t, overrides, testenv.Quiet())
}

// newFixtureLogging is newFixtureWith logging to log.
func newFixtureLogging(t *testing.T, overrides map[string]string, log *slog.Logger) *fixture {
	t.Helper()
	env := testenv.New(t)
	a, err := app.New(context.Background(), env.Config(t, overrides), log)
	require.NoError(t, err)
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	tokA, err := admin.CreateToken(context.Background(), env.PG.Pool, "org-a", "test")
	require.NoError(t, err)
	tokB, err := admin.CreateToken(context.Background(), env.PG.Pool, "org-b", "test")
	require.NoError(t, err)
	return &fixture{
		env: env, a: a, server: srv, orgAID: tokA.OrgID,
		orgA: client{t, srv.URL, tokA.Secret}, orgB: client{t, srv.URL, tokB.Secret}, anon: client{t, srv.URL, ""},
	}
}

func id(t *testing.T, r reply) int64 {
	t.Helper()
	v, ok := r.json(t)["id"].(float64)
	require.True(t, ok, "no id in %s", r.Body)
	return int64(v)
}

// seeded holds one of each resource of org A, for the routes' path parameters.
type seeded struct {
	ProjectID, UserID, FileID, VersionID, JobID, AssignmentID, ExportID, ScheduleID int64
	TaskID                                                                          string
	// StorageID is an import storage in labelq's bucket; StorageSecret its
	// notification secret.
	StorageID     int64
	StorageSecret string
	// SyncRunID is the storage's pending sync run.
	SyncRunID int64
	// WebhookID is an endpoint of org A; DeliveryID its pending delivery of a
	// webhook.test event.
	WebhookID, DeliveryID int64
	// SubmissionID is a scored gold submission of the job.
	SubmissionID int64
}

func (w *fixture) seed(t *testing.T) seeded {
	t.Helper()
	var s seeded
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "secret-project-A", "llm_enabled": true, "llm_model": "gpt-4o-mini"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s.ProjectID = id(t, r)
	r = w.orgA.do("PUT", fmt.Sprintf("/v1/projects/%d/label-config", s.ProjectID), validBody(api.Route{Request: api.LabelConfigInput{}}))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r = w.orgA.do("POST", "/v1/users", map[string]any{
		"email": "ann@a.test", "name": "Ann A", "role": "annotator",
		"language_expertise": map[string]float64{"en": 4.5}, "availability": map[string]any{"timezone": "Europe/Paris", "monday": []string{"09:00-12:00"}},
		"skill_score": 0.9, "qa_approval_rate": 0.8, "max_active_jobs": 3,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s.UserID = id(t, r)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/files", s.ProjectID), map[string]any{"name": "cat.txt"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s.FileID = id(t, r)
	key := fmt.Sprintf("orgs/%d/projects/%d/files/%d/v1", w.orgAID, s.ProjectID, s.FileID)
	w.env.S3.Put(t, key, []byte("a cat on a mat"), minioOpts())
	r = w.orgA.do("POST", fmt.Sprintf("/v1/files/%d/versions", s.FileID), map[string]any{"storage_path": key, "size": 14})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	s.VersionID = id(t, r)
	s.TaskID = r.json(t)["task_id"].(string)

	ctx := context.Background()
	q := w.env.PG.Q
	sum := testenv.SHA256Hex([]byte("a cat on a mat"))
	_, err := w.env.PG.Pool.Exec(ctx, `UPDATE file_versions SET validation_status='valid', checksum=$2, size_bytes=14, validated_at=now() WHERE id=$1`, s.VersionID, sum)
	require.NoError(t, err)
	lang := "en"
	job, err := q.AnnotationJobCreate(ctx, db.AnnotationJobCreateParams{OrgID: w.orgAID, ProjectID: s.ProjectID, FileID: s.FileID, FileVersionID: s.VersionID, Language: &lang, Priority: db.JobPriorityHigh})
	require.NoError(t, err)
	s.JobID = job.ID
	_, err = w.env.PG.Pool.Exec(ctx, `INSERT INTO llm_runs (org_id, project_id, file_version_id, model, prompt_hash, schema_hash, input_sha256)
		VALUES ($1, $2, $3, 'gpt-4o-mini', $4, '', $4)`, w.orgAID, s.ProjectID, s.VersionID, sum)
	require.NoError(t, err)
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `INSERT INTO assignments (org_id, project_id, job_id, user_id, role, score) VALUES ($1,$2,$3,$4,'annotator',0.9) RETURNING id`,
		w.orgAID, s.ProjectID, s.JobID, s.UserID).Scan(&s.AssignmentID))
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `INSERT INTO submissions (org_id, project_id, job_id, user_id, result_version_id, kind, status, score, passed, metric, scored_at)
		VALUES ($1,$2,$3,$4,$5,'gold','completed',0.75,false,'label:f1@iou0.5',now()) RETURNING id`,
		w.orgAID, s.ProjectID, s.JobID, s.UserID, s.VersionID).Scan(&s.SubmissionID))
	_, err = w.env.PG.Pool.Exec(ctx, `INSERT INTO consensus_results (job_id, org_id, project_id, version_id, copies, agreement, detail, run_id)
		VALUES ($1, $2, $3, $4, 2, 0.5, '{"labels": []}', 'seed')`, s.JobID, w.orgAID, s.ProjectID, s.VersionID)
	require.NoError(t, err)
	_, err = w.env.PG.Pool.Exec(ctx, `INSERT INTO score_tallies (project_id, user_id, org_id, scored, total) VALUES ($1, $2, $3, 1, 0.75)`,
		s.ProjectID, s.UserID, w.orgAID)
	require.NoError(t, err)
	_, err = w.env.PG.Pool.Exec(ctx, `INSERT INTO project_agreement (project_id, org_id, run_id, jobs, report) VALUES ($1, $2, 'seed', 1, '{"jobs": 1}')`,
		s.ProjectID, w.orgAID)
	require.NoError(t, err)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/exports", s.ProjectID), map[string]any{})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	s.ExportID = id(t, r)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/export-schedules", s.ProjectID), map[string]any{"cron_spec": "0 2 * * *", "timezone": "Europe/Paris"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s.ScheduleID = id(t, r)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/storages", s.ProjectID), map[string]any{"name": "incoming", "prefix": "incoming/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s.StorageID = id(t, r)
	s.StorageSecret, _ = r.json(t)["notify_secret"].(string)
	require.NotEmpty(t, s.StorageSecret, string(r.Body))
	r = w.orgA.do("POST", fmt.Sprintf("/v1/storages/%d/sync", s.StorageID), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	s.SyncRunID = id(t, r)
	r = w.orgA.do("POST", "/v1/webhooks", map[string]any{"url": "https://203.0.113.10/labelq-a", "description": "org A's receiver"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s.WebhookID = id(t, r)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/webhooks/%d/test", s.WebhookID), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	s.DeliveryID = int64(r.json(t)["delivery_id"].(float64))
	return s
}

var param = regexp.MustCompile(`\{([a-z_]+)\}`)

func (s seeded) fill(path string) string {
	return param.ReplaceAllStringFunc(path, func(m string) string {
		switch m {
		case "{project_id}":
			return fmt.Sprint(s.ProjectID)
		case "{user_id}":
			return fmt.Sprint(s.UserID)
		case "{file_id}":
			return fmt.Sprint(s.FileID)
		case "{version_id}":
			return fmt.Sprint(s.VersionID)
		case "{job_id}":
			return fmt.Sprint(s.JobID)
		case "{assignment_id}":
			return fmt.Sprint(s.AssignmentID)
		case "{export_id}":
			return fmt.Sprint(s.ExportID)
		case "{schedule_id}":
			return fmt.Sprint(s.ScheduleID)
		case "{task_id}":
			return s.TaskID
		case "{storage_id}":
			return fmt.Sprint(s.StorageID)
		case "{run_id}":
			return fmt.Sprint(s.SyncRunID)
		case "{webhook_id}":
			return fmt.Sprint(s.WebhookID)
		case "{delivery_id}":
			return fmt.Sprint(s.DeliveryID)
		case "{submission_id}":
			return fmt.Sprint(s.SubmissionID)
		}
		panic("unknown path parameter " + m)
	})
}

// validBody is a body each route accepts (so a refusal is about tenancy, not shape).
func validBody(rt api.Route) any {
	switch rt.Request.(type) {
	case api.ProjectInput:
		return map[string]any{"name": "other-name", "description": "d"}
	case api.UserInput:
		if rt.Method == "POST" {
			return map[string]any{"email": "someone@b.test", "role": "annotator"}
		}
		return map[string]any{"name": "renamed"}
	case api.FileInput:
		return map[string]any{"name": "dog.txt"}
	case api.VersionInput:
		return map[string]any{"storage_path": "orgs/1/x"}
	case api.JobInput:
		return map[string]any{"review_status": "approved"}
	case api.SubmitInput:
		return map[string]any{"result_version_id": 1}
	case api.GoldInput:
		return map[string]any{"result": []any{map[string]any{"from_name": "label", "to_name": "image", "type": "rectanglelabels",
			"value": map[string]any{"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": []string{"Car"}}}}}
	case api.ExportInput:
		return map[string]any{}
	case api.ScheduleInput:
		return map[string]any{"cron_spec": "@daily"}
	case api.StorageInput:
		if rt.Method == "POST" {
			return map[string]any{"name": "b-storage", "prefix": "b/"}
		}
		return map[string]any{"name": "renamed"}
	case api.BatchInput:
		return map[string]any{"items": []any{map[string]any{"file_id": 1, "storage_path": "orgs/1/x"}}}
	case api.NotificationInput:
		return map[string]any{"Records": []any{}}
	case api.LabelConfigInput:
		return map[string]any{"objects": []any{map[string]any{"name": "image", "type": "image", "value": "$image"}},
			"controls": []any{map[string]any{"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": []string{"Car"}}}}
	case api.ImportInput:
		return []any{map[string]any{"data": map[string]any{"image": "s3://bucket/incoming/a.jpg"}}}
	case api.WebhookInput:
		if rt.Method == "POST" {
			return map[string]any{"url": "https://203.0.113.20/labelq-b"}
		}
		return map[string]any{"description": "renamed"}
	}
	return nil
}

func TestTenantIsolationOnEveryRoute(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	// Org B calls with a token of every scope and with one of each scope alone.
	orgBs := []client{w.orgB}
	for _, sc := range admin.AllScopes {
		tok, err := admin.CreateTokenWith(context.Background(), w.env.PG.Pool, "org-b", "only-"+string(sc), admin.TokenOptions{Scopes: []admin.Scope{sc}})
		require.NoError(t, err)
		orgBs = append(orgBs, client{t, w.server.URL, tok.Secret})
	}
	// Org B's own storage: its secret opens none of org A's.
	r := w.orgB.do("POST", "/v1/projects", map[string]any{"name": "b-project"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = w.orgB.do("POST", fmt.Sprintf("/v1/projects/%d/storages", id(t, r)), map[string]any{"name": "b-incoming", "prefix": "b/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	orgBSecret := client{t, w.server.URL, r.json(t)["notify_secret"].(string)}
	leaks, wrong := 0, 0
	for _, rt := range (&api.Server{}).Routes() {
		path := s.fill(rt.Path)
		if rt.Path == "/v1/events" {
			path += fmt.Sprintf("?entity_type=file_version&entity_id=%d", s.VersionID)
		}
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			r := w.anon.do(rt.Method, path, validBody(rt))
			if r.Status != http.StatusUnauthorized {
				wrong++
			}
			require.Equal(t, http.StatusUnauthorized, r.Status, "without a token: %s", r.Body)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))

			if rt.Scope == api.ScopeStorageSecret {
				// A route a bucket calls takes the storage's secret, never a token:
				// org B's tokens and org B's storage's secret are refused exactly as
				// no secret is, and org A's secret opens it.
				anon := r
				for _, c := range append(slices.Clone(orgBs), orgBSecret) {
					r = c.do(rt.Method, path, validBody(rt))
					if r.Status != http.StatusUnauthorized {
						wrong++
					}
					require.Equal(t, http.StatusUnauthorized, r.Status, "org B reached org A's storage: %s", r.Body)
					require.Equal(t, string(anon.Body), string(r.Body), "a token, another storage's secret and none answer alike")
				}
				r = client{t, w.server.URL, s.StorageSecret}.do(rt.Method, path, validBody(rt))
				require.Equal(t, http.StatusOK, r.Status, "org A's storage secret: %s", r.Body)
				return
			}
			for _, orgB := range orgBs {
				r = orgB.do(rt.Method, path, validBody(rt))
				require.Less(t, r.Status, 500, "%s", r.Body)
				for _, secret := range []string{"secret-project-A", "ann@a.test", "cat.txt", s.TaskID, "203.0.113.10/labelq-a"} {
					if strings.Contains(string(r.Body), secret) {
						leaks++
						t.Errorf("org B's answer contains org A's %q: %s", secret, r.Body)
					}
				}
				// /v1/events names org A's entity in its query string.
				if strings.Contains(rt.Path, "{") || rt.Path == "/v1/events" {
					if r.Status != http.StatusNotFound && r.Status != http.StatusForbidden && r.Status != http.StatusUnprocessableEntity {
						wrong++
					}
					require.Contains(t, []int{http.StatusNotFound, http.StatusForbidden, http.StatusUnprocessableEntity}, r.Status,
						"org B reached org A's resource: %s", r.Body)
				}
			}
		})
	}
	require.Zero(t, leaks, "leaks")
	require.Zero(t, wrong, "wrong status codes")

	// Org A still sees its own.
	r = w.orgA.do("GET", fmt.Sprintf("/v1/projects/%d", s.ProjectID), nil)
	require.Equal(t, http.StatusOK, r.Status)
}

func TestMalformedBodiesAreProblems(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	bad := map[string]string{
		"invalid JSON":      `{"name": `,
		"not an object":     `[1, 2, 3]`,
		"unknown field":     `{"no_such_field_anywhere": 1}`,
		"wrong type":        `{"name": 12, "email": false, "cron_spec": 7, "storage_path": [], "review_status": 3}`,
		"trailing data":     `{} {}`,
		"oversized":         `{"name": "` + strings.Repeat("x", 2<<20) + `"}`,
		"null bytes string": "{\"name\": \"\u0000\"}",
	}
	for _, rt := range (&api.Server{}).Routes() {
		if rt.Request == nil {
			continue
		}
		for name, body := range bad {
			t.Run(rt.Method+" "+rt.Path+"/"+name, func(t *testing.T) {
				r := w.orgA.do(rt.Method, s.fill(rt.Path), body)
				require.GreaterOrEqual(t, r.Status, 400, "%s", r.Body)
				require.Less(t, r.Status, 500, "a client mistake must not be a 5xx: %s", r.Body)
				require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
				p := r.json(t)
				require.NotEmpty(t, p["title"])
				require.NotEmpty(t, p["detail"])
			})
		}
	}
	r := w.orgA.do("POST", "/v1/projects", `{"name": "x"}`, "Content-Type", "text/plain")
	require.Equal(t, http.StatusUnsupportedMediaType, r.Status)
	r = w.orgA.do("GET", "/v1/nope", nil)
	require.Equal(t, http.StatusNotFound, r.Status)
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
}

func TestFieldValidationNamesTheField(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	cases := []struct {
		method, path string
		body         any
		field        string
	}{
		{"POST", "/v1/projects", map[string]any{"name": ""}, "name"},
		{"POST", "/v1/projects", map[string]any{"name": "p", "llm_temperature": 3}, "llm_temperature"},
		{"POST", "/v1/projects", map[string]any{"name": "p", "annotation_schema": map[string]any{"type": "no-such-type"}}, "annotation_schema"},
		{"POST", "/v1/projects", map[string]any{"name": "p", "allowed_content_types": map[string]any{"videos": []string{"video/*"}}}, "allowed_content_types.videos"},
		{"POST", "/v1/users", map[string]any{"email": "nope", "role": "annotator"}, "email"},
		{"POST", "/v1/users", map[string]any{"email": "a@b.c", "role": "wizard"}, "role"},
		{"POST", "/v1/users", map[string]any{"email": "a@b.c", "role": "qc", "language_expertise": map[string]float64{"en": 7}}, "language_expertise.en"},
		{"POST", "/v1/users", map[string]any{"email": "a@b.c", "role": "qc", "availability": map[string]any{"monday": []string{"17:00-09:00"}}}, "availability.monday"},
		{"POST", "/v1/users", map[string]any{"email": "a@b.c", "role": "qc", "availability": map[string]any{"timezone": "Mars/Olympus"}}, "availability.timezone"},
		{"POST", "/v1/users", map[string]any{"email": "a@b.c", "role": "qc", "skill_score": 1.5}, "skill_score"},
		{"POST", fmt.Sprintf("/v1/files/%d/versions", s.FileID), map[string]any{"storage_path": "orgs/999999/elsewhere"}, "storage_path"},
		{"POST", fmt.Sprintf("/v1/files/%d/versions", s.FileID), map[string]any{"storage_path": fmt.Sprintf("orgs/%d/../x", w.orgAID)}, "storage_path"},
		{"POST", fmt.Sprintf("/v1/files/%d/versions", s.FileID), map[string]any{"storage_path": fmt.Sprintf("orgs/%d/x", w.orgAID), "sha256": "abc"}, "sha256"},
		{"POST", fmt.Sprintf("/v1/files/%d/versions", s.FileID), map[string]any{"storage_path": fmt.Sprintf("orgs/%d/x", w.orgAID), "mime_type": "not a type"}, "mime_type"},
		{"POST", fmt.Sprintf("/v1/files/%d/versions", s.FileID), map[string]any{"storage_path": fmt.Sprintf("orgs/%d/x", w.orgAID), "size": -1}, "size"},
		{"POST", fmt.Sprintf("/v1/projects/%d/export-schedules", s.ProjectID), map[string]any{"cron_spec": "every tuesday"}, "cron_spec"},
		{"POST", fmt.Sprintf("/v1/projects/%d/export-schedules", s.ProjectID), map[string]any{"cron_spec": "@daily", "timezone": "Nowhere/City"}, "timezone"},
		{"PATCH", fmt.Sprintf("/v1/jobs/%d", s.JobID), map[string]any{"priority": "urgent"}, "priority"},
		{"GET", "/v1/events?entity_type=planet&entity_id=1", nil, "entity_type"},
		{"GET", fmt.Sprintf("/v1/projects/%d/files?limit=0", s.ProjectID), nil, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path+" "+tc.field, func(t *testing.T) {
			r := w.orgA.do(tc.method, tc.path, tc.body)
			require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s", r.Body)
			p := r.json(t)
			fields, _ := p["errors"].([]any)
			require.NotEmpty(t, fields, "%s", r.Body)
			require.Equal(t, tc.field, fields[0].(map[string]any)["field"], "%s", r.Body)
		})
	}
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "secret-project-A"})
	require.Equal(t, http.StatusConflict, r.Status, "duplicate names are a conflict: %s", r.Body)
}

func TestRegistrationIsIdempotent(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	key := fmt.Sprintf("orgs/%d/projects/%d/files/%d/v2", w.orgAID, s.ProjectID, s.FileID)
	body := map[string]any{"storage_path": key}
	path := fmt.Sprintf("/v1/files/%d/versions", s.FileID)
	countOutbox := func() int {
		n := 0
		for _, k := range testenv.Kinds(testenv.OutboxRows(t, w.env.PG.Pool, w.orgAID)) {
			if k == (tasks.Validate{}).Kind() {
				n++
			}
		}
		return n
	}
	before := countOutbox()
	first := w.orgA.do("POST", path, body, "Idempotency-Key", "upload-42")
	require.Equal(t, http.StatusAccepted, first.Status, string(first.Body))
	testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.Validate{VersionID: id(t, first)})
	again := w.orgA.do("POST", path, body, "Idempotency-Key", "upload-42")
	require.Equal(t, http.StatusAccepted, again.Status)
	require.JSONEq(t, string(first.Body), string(again.Body))
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, before+1, countOutbox(), "a replay must not queue a second task")

	other := w.orgA.do("POST", path, map[string]any{"storage_path": key + "-other"}, "Idempotency-Key", "upload-42")
	require.Equal(t, http.StatusUnprocessableEntity, other.Status, string(other.Body))

	// Concurrent requests with one key: one version, one task.
	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := w.orgA.do("POST", path, map[string]any{"storage_path": key + "-c"}, "Idempotency-Key", "concurrent")
			bodies[i] = string(r.Body)
		}()
	}
	wg.Wait()
	for _, b := range bodies[1:] {
		require.JSONEq(t, bodies[0], b)
	}
	require.Equal(t, before+2, countOutbox())

	// The same key in another organization is another key.
	r := w.orgB.do("POST", "/v1/projects", map[string]any{"name": "b"}, "Idempotency-Key", "upload-42")
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
}

func TestWalkthrough(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	c := w.orgA
	r := c.do("POST", "/v1/projects", map[string]any{"name": "Street signs", "requirements_text": "Label every sign."})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	pid := id(t, r)
	r = c.do("POST", fmt.Sprintf("/v1/projects/%d/files", pid), map[string]any{"name": "sign-001.txt"})
	require.Equal(t, http.StatusCreated, r.Status)
	fid := id(t, r)

	r = c.do("POST", fmt.Sprintf("/v1/files/%d/upload-url", fid), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	up := r.json(t)
	content := []byte("STOP\n")
	req, err := http.NewRequest(http.MethodPut, up["url"].(string), bytes.NewReader(content))
	require.NoError(t, err)
	put, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = put.Body.Close()
	require.Equal(t, http.StatusOK, put.StatusCode, "the presigned URL accepts the upload")

	r = c.do("POST", fmt.Sprintf("/v1/files/%d/versions", fid), map[string]any{
		"storage_path": up["storage_path"], "sha256": strings.ToUpper(testenv.SHA256Hex(content)), "size": len(content), "mime_type": "text/plain; charset=utf-8",
	})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	reg := r.json(t)
	require.Equal(t, "pending", reg["status"])
	taskID := reg["task_id"].(string)
	queued := testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.Validate{VersionID: id(t, r)})
	require.Equal(t, queued.TaskID, taskID, "the reply names the queued task")

	r = c.do("GET", reg["status_url"].(string), nil)
	require.Equal(t, http.StatusOK, r.Status)
	v := r.json(t)
	require.Equal(t, testenv.SHA256Hex(content), v["expected_sha256"], "declared checksums are normalised to lowercase")
	require.Equal(t, "text/plain", v["expected_mime_type"])

	r = c.do("GET", "/v1/tasks/"+taskID, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, "waiting_in_outbox", r.json(t)["state"])

	// Relayed: asynq now knows the task by the same id.
	n, err := w.relayOnce()
	require.NoError(t, err)
	require.Positive(t, n)
	r = c.do("GET", "/v1/tasks/"+taskID, nil)
	require.Equal(t, "pending", r.json(t)["state"], string(r.Body))

	r = c.do("GET", fmt.Sprintf("/v1/events?entity_type=file_version&entity_id=%d", int64(reg["id"].(float64))), nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), `"event_type":"uploaded"`)

	r = c.do("GET", "/openapi.json", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), "/v1/files/{file_id}/versions")
}

func (w *fixture) relayOnce() (int, error) {
	return relayFor(w.a).RelayOnce(context.Background())
}

// TestRowLevelSecurity shows the database refuses cross-organization reads even to a
// query that forgets its WHERE org_id.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	w.seed(t)
	ctx := context.Background()
	var otherOrg int64
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, "SELECT id FROM organizations WHERE name='org-b'").Scan(&otherOrg))
	count := func(org int64, table string) int {
		var n int
		require.NoError(t, database.TenantTx(ctx, w.env.PG.APIPool, org, func(_ *db.Queries, tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
		}))
		return n
	}
	for _, table := range []string{"projects", "users", "files", "file_versions", "annotation_jobs", "assignments", "export_logs", "export_schedules", "event_log", "outbox", "api_tokens", "organizations"} {
		require.Zero(t, count(otherOrg, table)-map[string]int{"api_tokens": 1, "organizations": 1}[table], "org B sees rows of %s it does not own", table)
		require.Positive(t, count(w.orgAID, table), "org A sees its own %s", table)
	}
	// Writing a row for another organization is refused too.
	err := database.TenantTx(ctx, w.env.PG.APIPool, otherOrg, func(_ *db.Queries, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO projects (org_id, name) VALUES ($1, 'smuggled')", w.orgAID)
		return err
	})
	require.ErrorContains(t, err, "row-level security")
}
