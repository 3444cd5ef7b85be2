package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/testenv"
)

// bouncerClient calls the API with one organization's token.
type bouncerClient struct {
	base, token string
}

func (c bouncerClient) call(method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(raw, out)
	}
	return resp.StatusCode, nil
}

// TestThroughPgBouncer runs the whole system in-process behind PgBouncer in
// transaction pooling, configured as the README says: LABELQ_DATABASE_URL and
// LABELQ_API_DATABASE_URL through the pooler (three server sessions per user for
// every client connection of every role), LABELQ_DATABASE_DIRECT_URL for the relay's
// LISTEN, LABELQ_DATABASE_EXEC_MODE=cache_describe. The relay polls once an hour,
// so a task moves only on NOTIFY. Two organizations upload through the API at once
// and every version is validated; then both list their projects concurrently, and
// each sees only its own.
func TestThroughPgBouncer(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	b := testenv.NewPgBouncer(t, testenv.PgBouncerConfig{PoolSize: 3})
	cfg := env.Config(t, map[string]string{
		"LABELQ_HTTP_ADDR":           testenv.FreeAddr(t),
		"LABELQ_DATABASE_URL":        b.URL(env.PG.URL),
		"LABELQ_API_DATABASE_URL":    b.URL(env.PG.APIURL),
		"LABELQ_DATABASE_DIRECT_URL": env.PG.URL,
		"LABELQ_DATABASE_EXEC_MODE":  "cache_describe",
		"LABELQ_RELAY_POLL_INTERVAL": "1h",
	})
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, testenv.Quiet())
	require.NoError(t, err)
	defer a.Close()
	a.Mount = mountWorkers
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, app.AllRoles...) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	base := "http://" + cfg.HTTPAddr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 15*time.Second, 50*time.Millisecond, "ready through the pooler")

	orgs := []string{"acme", "globex"}
	clients := map[string]bouncerClient{}
	projects := map[string]int64{}
	for _, org := range orgs {
		tok, err := admin.CreateToken(ctx, env.PG.Pool, org, "platform")
		require.NoError(t, err)
		c := bouncerClient{base: base, token: tok.Secret}
		var p struct{ ID int64 }
		_, err = c.call("POST", "/v1/projects", map[string]any{"name": "signs of " + org, "requirements_text": "Box every sign."}, &p)
		require.NoError(t, err)
		clients[org], projects[org] = c, p.ID
	}

	// upload is the README's steps 2 to 4: a file, its bytes through the
	// presigned URL, the version registered with its SHA-256.
	upload := func(c bouncerClient, project int64, name string, content []byte) (int64, error) {
		var f struct{ ID int64 }
		if _, err := c.call("POST", fmt.Sprintf("/v1/projects/%d/files", project), map[string]any{"name": name}, &f); err != nil {
			return 0, err
		}
		var up struct {
			URL         string `json:"url"`
			StoragePath string `json:"storage_path"`
		}
		if _, err := c.call("POST", fmt.Sprintf("/v1/files/%d/upload-url", f.ID), nil, &up); err != nil {
			return 0, err
		}
		req, err := http.NewRequest(http.MethodPut, up.URL, bytes.NewReader(content))
		if err != nil {
			return 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("PUT %s: %d", name, resp.StatusCode)
		}
		var v struct{ ID int64 }
		_, err = c.call("POST", fmt.Sprintf("/v1/files/%d/versions", f.ID), map[string]any{
			"storage_path": up.StoragePath, "sha256": testenv.SHA256Hex(content), "mime_type": "text/plain",
		}, &v)
		return v.ID, err
	}

	const perOrg = 6
	var (
		mu       sync.Mutex
		versions = map[string][]int64{}
		wg       sync.WaitGroup
	)
	errc := make(chan error, len(orgs)*perOrg)
	for _, org := range orgs {
		for i := range perOrg {
			wg.Go(func() {
				content := fmt.Appendf(nil, "id,text\n%d,a sign of %s\n", i, org)
				id, err := upload(clients[org], projects[org], fmt.Sprintf("%s-%02d.csv", org, i), content)
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				versions[org] = append(versions[org], id)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	for _, org := range orgs {
		for _, id := range versions[org] {
			var v struct {
				ValidationStatus string  `json:"validation_status"`
				ValidationError  *string `json:"validation_error"`
			}
			require.Eventually(t, func() bool {
				_, err := clients[org].call("GET", fmt.Sprintf("/v1/versions/%d", id), nil, &v)
				return err == nil && v.ValidationStatus == "valid"
			}, 30*time.Second, 50*time.Millisecond, "%s's version %d validated through the pooler", org, id)
		}
		// The other organization's version is not found with this token.
		other := versions[orgs[0]][0]
		if org == orgs[0] {
			other = versions[orgs[1]][0]
		}
		status, _ := clients[org].call("GET", fmt.Sprintf("/v1/versions/%d", other), nil, nil)
		require.Equal(t, http.StatusNotFound, status, "%s reads another organization's version", org)
	}

	// Both organizations list their projects at once, many requests over three
	// server sessions: each answer is that organization's project alone.
	var lists sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		org := orgs[g%len(orgs)]
		lists.Go(func() {
			for range 20 {
				var page struct {
					Items []struct {
						ID   int64  `json:"id"`
						Name string `json:"name"`
					} `json:"items"`
				}
				if _, err := clients[org].call("GET", "/v1/projects", nil, &page); err != nil {
					errs <- err
					return
				}
				if len(page.Items) != 1 || page.Items[0].ID != projects[org] || page.Items[0].Name != "signs of "+org {
					errs <- fmt.Errorf("%s lists %+v, want its project %d alone", org, page.Items, projects[org])
					return
				}
			}
			errs <- nil
		})
	}
	lists.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
