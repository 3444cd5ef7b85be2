package api_test

// Issue 13, items 2 and 6: an annotation schema reads nothing outside itself, and
// nothing of another organization can be probed (user ids, emails, events, keys
// that a decoding gateway would turn into another path).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/schema"
)

// doQuickly is c.do with a deadline: a handler that blocks (a $ref to /dev/stdin
// read the process's standard input) fails the test instead of hanging it.
func (c client) doQuickly(method, path string, body any) reply {
	c.t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(c.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(raw))
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err, "%s %s did not answer within 5 s", method, path)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	require.Less(c.t, time.Since(start), 5*time.Second)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// stdinThatNeverEnds makes the test process's standard input a pipe nobody
// writes to, so that reading /dev/stdin blocks as it does under a service
// manager or a terminal.
func stdinThatNeverEnds(t *testing.T) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	saved, err := syscall.Dup(0)
	require.NoError(t, err)
	require.NoError(t, syscall.Dup3(int(r.Fd()), 0, 0))
	t.Cleanup(func() {
		_ = syscall.Dup3(saved, 0, 0)
		_ = syscall.Close(saved)
		_ = w.Close()
		_ = r.Close()
	})
}

func fieldErrors(t *testing.T, r reply) map[string]string {
	t.Helper()
	out := map[string]string{}
	fields, _ := r.json(t)["errors"].([]any)
	for _, f := range fields {
		m := f.(map[string]any)
		out[m["field"].(string)] = m["message"].(string)
	}
	return out
}

func TestAnnotationSchemaRefsReadNothing(t *testing.T) {
	w := newFixture(t)
	stdinThatNeverEnds(t)
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "schema-refs"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	path := fmt.Sprintf("/v1/projects/%d", id(t, r))

	dir := t.TempDir()
	valid := filepath.Join(dir, "valid.json") // a JSON Schema the library would happily load
	require.NoError(t, os.WriteFile(valid, []byte(`{"type":"string","description":"TOPSECRET-A"}`), 0o600))
	notJSON := filepath.Join(dir, "shadow")
	require.NoError(t, os.WriteFile(notJSON, []byte("root:TOPSECRET-B:19000:0:99999:7:::\n"), 0o600))

	for _, ref := range []string{
		valid, "file://" + valid, notJSON, "/etc/shadow", "/etc/passwd", "/dev/stdin", "file:///dev/stdin",
		"http://127.0.0.1:1/schema.json", "https://example.com/schema.json", "other.json",
	} {
		for _, doc := range []map[string]any{
			{"$ref": ref},
			{"type": "object", "properties": map[string]any{"a": map[string]any{"$ref": ref}}},
		} {
			r := w.orgA.doQuickly("PATCH", path, map[string]any{"annotation_schema": doc})
			require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s: %s", ref, r.Body)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			msg := fieldErrors(t, r)["annotation_schema"]
			require.Contains(t, msg, "only references inside the schema", "%s: %s", ref, r.Body)
			for _, leak := range []string{"TOPSECRET", "root", "invalid character", dir, ref} {
				require.NotContains(t, string(r.Body), leak, "%s", ref)
			}
		}
	}
	r = w.orgA.doQuickly("PATCH", path, map[string]any{"annotation_schema": map[string]any{"$ref": "https://example.com/s.json"}})
	require.Contains(t, fieldErrors(t, r)["annotation_schema"], "refers to a URL")

	// Nothing was stored.
	r = w.orgA.do("GET", path, nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Nil(t, r.json(t)["annotation_schema"], string(r.Body))
}

func TestAnnotationSchemaSizeAndDepthAreCapped(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "schema-caps"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	path := fmt.Sprintf("/v1/projects/%d", id(t, r))

	deep := json.RawMessage(strings.Repeat(`{"not":`, schema.MaxDepth+1) + `{}` + strings.Repeat(`}`, schema.MaxDepth+1))
	r = w.orgA.doQuickly("PATCH", path, map[string]any{"annotation_schema": deep})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r)["annotation_schema"], fmt.Sprintf("nested more than %d levels deep", schema.MaxDepth))

	large := map[string]any{"type": "object", "description": strings.Repeat("x", schema.MaxBytes)}
	r = w.orgA.doQuickly("PATCH", path, map[string]any{"annotation_schema": large})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r)["annotation_schema"], fmt.Sprintf("at most %d bytes are allowed", schema.MaxBytes))

	r = w.orgA.doQuickly("POST", "/v1/projects", map[string]any{"name": "deep", "annotation_schema": deep})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "create is checked like update: %s", r.Body)

	// A normal schema with local definitions is accepted and stored.
	ok := json.RawMessage(`{"$defs":{"label":{"type":"string","enum":["cat","dog"]}},"type":"object",` +
		`"properties":{"label":{"$ref":"#/$defs/label"},"confidence":{"type":"number","minimum":0,"maximum":1}},"required":["label"]}`)
	r = w.orgA.doQuickly("PATCH", path, map[string]any{"annotation_schema": ok})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), `"#/$defs/label"`)
}

// A project's PMs must be users of its own organization, and a user id of
// another organization is answered exactly like one that does not exist.
func TestProjectPMOfAnotherOrgIsLikeAMissingUser(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	r := w.orgB.do("POST", "/v1/users", map[string]any{"email": "pm@b.test", "role": "our_pm"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	foreign := id(t, r)
	r = w.orgA.do("POST", "/v1/users", map[string]any{"email": "pm@a.test", "role": "our_pm"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	own := id(t, r)
	missing := foreign + own + 1000

	r = w.orgA.do("POST", "/v1/projects", map[string]any{"name": "pm-project"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	path := fmt.Sprintf("/v1/projects/%d", id(t, r))

	for _, field := range []string{"our_pm_id", "client_pm_id"} {
		rf := w.orgA.do("PATCH", path, map[string]any{field: foreign})
		rm := w.orgA.do("PATCH", path, map[string]any{field: missing})
		require.Equal(t, http.StatusUnprocessableEntity, rf.Status, "%s of another org: %s", field, rf.Body)
		require.Equal(t, rm.Status, rf.Status, "%s: %s vs %s", field, rf.Body, rm.Body)
		require.Equal(t, string(rm.Body), string(rf.Body), "%s: a foreign user and a missing one answer alike", field)
		require.Contains(t, fieldErrors(t, rf), field, string(rf.Body))

		rf = w.orgA.do("POST", "/v1/projects", map[string]any{"name": "p-" + field, field: foreign})
		rm = w.orgA.do("POST", "/v1/projects", map[string]any{"name": "p-" + field, field: missing})
		require.Equal(t, http.StatusUnprocessableEntity, rf.Status, "%s of another org: %s", field, rf.Body)
		require.Equal(t, string(rm.Body), string(rf.Body), "%s: a foreign user and a missing one answer alike", field)

		r = w.orgA.do("PATCH", path, map[string]any{field: own})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Equal(t, float64(own), r.json(t)[field], string(r.Body))
	}

	// The database refuses it too, whatever the API checks.
	_, err := w.env.PG.Pool.Exec(context.Background(), `UPDATE projects SET our_pm_id = $1 WHERE org_id = $2`, foreign, w.orgAID)
	require.ErrorContains(t, err, "projects_our_pm_fk")
}

// An email is unique within an organization only: another tenant's staff can
// neither be discovered nor squatted through POST /v1/users.
func TestUserEmailIsUniquePerOrganization(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	r := w.orgA.do("POST", "/v1/users", map[string]any{"email": "shared@corp.test", "role": "annotator"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = w.orgB.do("POST", "/v1/users", map[string]any{"email": "shared@corp.test", "role": "annotator"})
	require.Equal(t, http.StatusCreated, r.Status, "org A's user must not block or reveal anything to org B: %s", r.Body)

	r = w.orgA.do("POST", "/v1/users", map[string]any{"email": "shared@corp.test", "role": "qc"})
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "already exists in your organization")
}

// GET /v1/events of another organization's entity is a 404, like every other
// foreign resource, and so is an entity that does not exist.
func TestEventsOfAnotherOrgsEntityAre404(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "events-project"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	pid := id(t, r)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/files", pid), map[string]any{"name": "a.txt"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	fid := id(t, r)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/files/%d/versions", fid), map[string]any{"storage_path": fmt.Sprintf("orgs/%d/events/a", w.orgAID)})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	vid := id(t, r)

	own := fmt.Sprintf("/v1/events?entity_type=file_version&entity_id=%d", vid)
	r = w.orgA.do("GET", own, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), `"event_type":"uploaded"`)

	for _, q := range []string{
		own,
		fmt.Sprintf("/v1/events?entity_type=project&entity_id=%d", pid),
		fmt.Sprintf("/v1/events?entity_type=file&entity_id=%d", fid),
		fmt.Sprintf("/v1/events?entity_type=organization&entity_id=%d", w.orgAID),
	} {
		r = w.orgB.do("GET", q, nil)
		require.Equal(t, http.StatusNotFound, r.Status, "%s from org B: %s", q, r.Body)
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	}
	foreign := w.orgB.do("GET", own, nil)
	missing := w.orgB.do("GET", fmt.Sprintf("/v1/events?entity_type=file_version&entity_id=%d", vid+1000), nil)
	require.Equal(t, string(missing.Body), string(foreign.Body), "a foreign entity and a missing one answer alike")
	r = w.orgA.do("GET", fmt.Sprintf("/v1/events?entity_type=file_version&entity_id=%d", vid+1000), nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
}

// Keys with percent-escapes of '.', '/' or '\' are refused: a gateway or tool
// that decodes them would reach another path (orgs/1/%2e%2e/2/x is orgs/2/x).
func TestStorageKeysWithEncodedDotsAndSlashesAreRefused(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "keys-project"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/files", id(t, r)), map[string]any{"name": "a.txt"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	path := fmt.Sprintf("/v1/files/%d/versions", id(t, r))
	org := fmt.Sprintf("orgs/%d/", w.orgAID)

	for _, tail := range []string{
		"%2e%2e/2/x", "%2E%2E/2/x", "%2e./x", ".%2e/x", "a%2fb", "a%2Fb", "a%5cb", "a%5Cb", "%2e",
		"%252e%252e/2/x", "a%252fb", "%25252e%25252e/x", "%25%32%65%25%32%65/x", "a%c0%afb",
	} {
		r := w.orgA.do("POST", path, map[string]any{"storage_path": org + tail})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s: %s", tail, r.Body)
		require.Contains(t, fieldErrors(t, r)["storage_path"], "percent-encoded", "%s: %s", tail, r.Body)
	}
	// Other escapes stay literal characters of the key.
	for _, tail := range []string{"a%20b.txt", "100%25.txt", "a%41"} {
		r := w.orgA.do("POST", path, map[string]any{"storage_path": org + tail})
		require.Equal(t, http.StatusAccepted, r.Status, "%s: %s", tail, r.Body)
	}
}
