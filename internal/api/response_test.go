package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/api"
)

// TestAnswersAreWhatIsDocumented reads every GET route of a seeded organization and
// checks each resource in the answer has only the fields its OpenAPI schema lists
// (and TestNoInternalColumnInOpenAPI keeps internal columns out of those schemas).
func TestAnswersAreWhatIsDocumented(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Items struct {
						Ref string `json:"$ref"`
					} `json:"items"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(api.OpenAPIJSON(), &doc))
	schemaOf := func(ref string) (string, map[string]bool) {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		props := map[string]bool{}
		for p := range doc.Components.Schemas[name].Properties {
			props[p] = true
		}
		require.NotEmpty(t, props, "schema %q", ref)
		return name, props
	}
	checkObject := func(route, schema string, props map[string]bool, obj map[string]any) {
		for k := range obj {
			require.True(t, props[k], "%s answers %q, which schema %s does not list", route, k, schema)
		}
	}
	for _, rt := range (&api.Server{}).Routes() {
		if rt.Method != http.MethodGet || strings.HasSuffix(rt.Path, "/download") {
			continue // a download link exists only for a completed export
		}
		route := rt.Method + " " + rt.Path
		t.Run(route, func(t *testing.T) {
			path := s.fill(rt.Path)
			if rt.Path == "/v1/events" {
				path += fmt.Sprintf("?entity_type=file_version&entity_id=%d", s.VersionID)
			}
			r := w.orgA.do(rt.Method, path, nil)
			require.Equal(t, rt.Status, r.Status, "%s", r.Body)
			ref := doc.Paths[rt.Path]["get"].Responses[fmt.Sprint(rt.Status)].Content["application/json"].Schema.Ref
			name, props := schemaOf(ref)
			body := r.json(t)
			checkObject(route, name, props, body)
			if items := doc.Components.Schemas[name].Properties["items"].Items.Ref; items != "" {
				itemName, itemProps := schemaOf(items)
				list, ok := body["items"].([]any)
				require.True(t, ok, "%s: no items in %s", route, r.Body)
				require.NotEmpty(t, list, "%s: the seeded organization has some", route)
				for _, it := range list {
					checkObject(route, itemName, itemProps, it.(map[string]any))
				}
			}
		})
	}
}
