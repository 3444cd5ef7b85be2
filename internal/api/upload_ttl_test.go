package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/testenv"
)

// Presigned PUT URLs live LABELQ_UPLOAD_URL_TTL (15 minutes by default): a URL
// leaked or kept after the upload cannot overwrite the object for long.
func TestUploadURLLifetime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"default", nil, 15 * time.Minute},
		{"configured", map[string]string{"LABELQ_UPLOAD_URL_TTL": "2m"}, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t)
			a, err := app.New(context.Background(), env.Config(t, tc.env), testenv.Quiet())
			require.NoError(t, err)
			t.Cleanup(a.Close)
			srv := httptest.NewServer(a.Handler())
			t.Cleanup(srv.Close)
			tok, err := admin.CreateToken(context.Background(), env.PG.Pool, "org-ttl", "test")
			require.NoError(t, err)
			c := client{t, srv.URL, tok.Secret}

			r := c.do("POST", "/v1/projects", map[string]any{"name": "ttl"})
			require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
			r = c.do("POST", fmt.Sprintf("/v1/projects/%d/files", id(t, r)), map[string]any{"name": "a.txt"})
			require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
			before := time.Now()
			r = c.do("POST", fmt.Sprintf("/v1/files/%d/upload-url", id(t, r)), nil)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			up := r.json(t)

			u, err := url.Parse(up["url"].(string))
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(int(tc.want.Seconds())), u.Query().Get("X-Amz-Expires"), "the URL's own lifetime")
			exp, err := time.Parse(time.RFC3339Nano, up["expires_at"].(string))
			require.NoError(t, err)
			require.WithinDuration(t, before.Add(tc.want), exp, 30*time.Second)
		})
	}
}
