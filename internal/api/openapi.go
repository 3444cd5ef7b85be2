package api

import (
	_ "embed"
	"encoding/json"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// openapiFile is the committed document; TestOpenAPIIsCurrent fails when it differs
// from what the route table generates (regenerate with `go test ./internal/api -run
// TestOpenAPIIsCurrent -update`).
//
//go:embed openapi.json
var openapiFile []byte

// OpenAPIJSON is the document served at /openapi.json.
func OpenAPIJSON() []byte { return openapiFile }

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// GenerateOpenAPI builds the OpenAPI 3.1 document from the route table.
func GenerateOpenAPI(routes []Route) ([]byte, error) {
	schemas := map[string]any{}
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		op := map[string]any{
			"summary":     rt.Summary,
			"tags":        []string{rt.Tag},
			"operationId": operationID(rt),
			// OpenAPI 3.1 lets a non-OAuth scheme name the roles it needs: the
			// token scope, repeated as x-scope for tools that show only extensions.
			"security": []map[string][]string{{"bearer": {string(rt.Scope)}}},
			"x-scope":  string(rt.Scope),
		}
		if rt.Scope == ScopeStorageSecret {
			op["security"] = []map[string][]string{{"notifySecret": {}}}
		}
		var params []map[string]any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			typ := map[string]any{"type": "integer", "format": "int64", "minimum": 1}
			if m[1] == "task_id" {
				typ = map[string]any{"type": "string", "maxLength": 200}
			}
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": typ})
		}
		if rt.Method == "POST" && rt.Scope != ScopeStorageSecret {
			params = append(params, map[string]any{
				"name": "Idempotency-Key", "in": "header", "required": false,
				"description": "same key and body within 24 h → the same answer, and no second task",
				"schema":      map[string]any{"type": "string", "maxLength": 255},
			})
		}
		if strings.HasPrefix(rt.Summary, "List") {
			params = append(params,
				map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
				map[string]any{"name": "after", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 0}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.Request != nil {
			content := map[string]any{"application/json": map[string]any{"schema": schemaRef(reflect.TypeOf(rt.Request), schemas)}}
			if m, ok := rt.Request.(mediaTyped); ok {
				for _, mt := range m.mediaTypes() {
					content[mt] = map[string]any{"schema": map[string]any{"type": "string"}}
				}
			}
			op["requestBody"] = map[string]any{
				"required": rt.Path != "/v1/projects/{project_id}/exports",
				"content":  content,
			}
		}
		problemRef := map[string]any{"$ref": "#/components/schemas/Problem"}
		success := map[string]any{"description": "success"}
		if rt.Response != nil {
			success["content"] = map[string]any{"application/json": map[string]any{"schema": schemaRef(reflect.TypeOf(rt.Response), schemas)}}
		}
		op["responses"] = map[string]any{
			itoa(rt.Status): success,
			"default": map[string]any{
				"description": "an error, as problem+json",
				"content":     map[string]any{"application/problem+json": map[string]any{"schema": problemRef}},
			},
		}
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	schemaRef(reflect.TypeOf(Problem{}), schemas)
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "labelq",
			"version":     "1",
			"description": "The enqueue API of labelq. Every enqueueing call answers 202 with the ids to poll; errors are application/problem+json.",
		},
		"paths":    paths,
		"webhooks": webhookOperations(schemas),
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{
					"type": "http", "scheme": "bearer",
					"description": "an API token from `labelq token create`; each operation needs the scope its security requirement and x-scope name (read, upload or manage), else 403",
				},
				"notifySecret": map[string]any{
					"type": "http", "scheme": "bearer",
					"description": "a storage's bucket-notification secret (answered once when the storage is created or its secret rotated), not an API token; MinIO's webhook target sends its auth_token so",
				},
			},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// webhookOperations is the document's webhooks object (OpenAPI 3.1): one POST
// per event type, as labelq sends it to an endpoint, with its data's schema.
func webhookOperations(schemas map[string]any) map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	headers := []map[string]any{
		{"name": delivery.HeaderID, "in": "header", "required": true, "schema": str("the event id (the body's id): the same on every retry and redelivery; deduplicate on it")},
		{"name": delivery.HeaderTimestamp, "in": "header", "required": true, "schema": str("when this attempt was signed, in Unix seconds; refuse one too far from your clock (replays)")},
		{"name": delivery.HeaderSignature, "in": "header", "required": true, "schema": str("v1,<base64 HMAC-SHA256 of \"<webhook-id>.<webhook-timestamp>.<body>\"> per signing secret, space-separated (two during a secret rotation's overlap); verify with a Standard Webhooks library")},
	}
	out := map[string]any{}
	for _, t := range webhook.Types() {
		out[t.Type] = map[string]any{"post": map[string]any{
			"summary":     t.Description,
			"operationId": "webhook_" + strings.ReplaceAll(t.Type, ".", "_"),
			"tags":        []string{"webhook events"},
			"parameters":  headers,
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
				"type": "object", "additionalProperties": false,
				"required": []string{"id", "type", "timestamp", "organization_id", "data"},
				"properties": map[string]any{
					"id":              str("the event id, as the webhook-id header"),
					"type":            map[string]any{"type": "string", "const": t.Type},
					"timestamp":       map[string]any{"type": "string", "format": "date-time", "description": "when it happened"},
					"organization_id": map[string]any{"type": "integer"},
					"data":            schemaRef(t.Data, schemas),
				},
			}}}},
			"responses": map[string]any{
				"2XX": map[string]any{"description": "received: any 2xx within the timeout (LABELQ_WEBHOOK_TIMEOUT, 15 s) ends the delivery"},
				"default": map[string]any{"description": "5xx, 408, 429 (Retry-After honoured), a timeout or a connection error is retried on the schedule; " +
					"410 Gone disables the endpoint; any other answer ends the delivery as failed. Redirects are not followed."},
			},
		}}
	}
	return out
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func operationID(rt Route) string {
	p := pathParam.ReplaceAllString(rt.Path, "by_$1")
	p = strings.NewReplacer("/v1/", "", "/", "_", "-", "_").Replace(p)
	return strings.ToLower(rt.Method) + "_" + p
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

func schemaRef(t reflect.Type, schemas map[string]any) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case rawType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": schemaRef(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaRef(t.Elem(), schemas)}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := strings.NewReplacer("[", "_", "]", "", ".", "_", "/", "_").Replace(t.Name())
		if strings.Contains(t.Name(), "[") {
			// List[db.X] → ListX
			inner := t.Name()[strings.LastIndex(t.Name(), ".")+1 : len(t.Name())-1]
			name = "List" + inner
		}
		if _, ok := schemas[name]; !ok {
			schemas[name] = map[string]any{} // placeholder against recursion
			props := map[string]any{}
			var names []string
			for i := range t.NumField() {
				f := t.Field(i)
				tag := strings.Split(f.Tag.Get("json"), ",")[0]
				if tag == "-" || !f.IsExported() {
					continue
				}
				if tag == "" {
					tag = f.Name
				}
				props[tag] = schemaRef(f.Type, schemas)
				names = append(names, tag)
			}
			sort.Strings(names)
			schemas[name] = map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}
