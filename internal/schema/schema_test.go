package schema_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/schema"
)

// compileQuickly fails the test when Compile blocks (a $ref to /dev/stdin used
// to read from the process's standard input).
func compileQuickly(t *testing.T, doc string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := schema.Compile([]byte(doc))
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Second):
		t.Fatalf("Compile(%s) blocked", doc)
		return nil
	}
}

func TestExternalRefsAreRefusedWithoutReadingAnything(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.json")
	require.NoError(t, os.WriteFile(secret, []byte(`{"type":"string","description":"TOPSECRET"}`), 0o600))
	for _, ref := range []string{
		secret, "file://" + secret, "/etc/passwd", "/dev/stdin", "file:///dev/stdin",
		"https://example.com/s.json", "http://127.0.0.1:1/s.json", "other.json", "urn:x:y",
	} {
		for _, doc := range []string{
			fmt.Sprintf(`{"$ref":%q}`, ref),
			fmt.Sprintf(`{"type":"object","properties":{"a":{"$ref":%q}}}`, ref),
			fmt.Sprintf(`{"$schema":%q}`, ref),
		} {
			err := compileQuickly(t, doc)
			require.Error(t, err, doc)
			var se *schema.Error
			require.True(t, errors.As(err, &se), "%T %v", err, err)
			require.NotContains(t, err.Error(), "TOPSECRET")
			require.NotContains(t, err.Error(), "root:")
			require.NotContains(t, err.Error(), ref, "names the kind of reference, not its target")
		}
	}
	err := compileQuickly(t, `{"$ref":"https://example.com/s.json"}`)
	require.ErrorContains(t, err, "refers to a URL")
	err = compileQuickly(t, fmt.Sprintf(`{"$ref":%q}`, "file://"+secret))
	require.ErrorContains(t, err, "refers to a file")
	// An $id that moves the base URL onto the file system does not help.
	err = compileQuickly(t, fmt.Sprintf(`{"$id":"file://%s/","$ref":"secret.json"}`, dir))
	require.ErrorContains(t, err, "refers to a file")
}

func TestLocalRefsWork(t *testing.T) {
	s, err := schema.Compile([]byte(`{"$defs":{"label":{"type":"string","enum":["cat","dog"]}},"type":"object",
		"properties":{"label":{"$ref":"#/$defs/label"},"more":{"$ref":"#/properties/label"}},"required":["label"]}`))
	require.NoError(t, err)
	require.NoError(t, s.Validate(map[string]any{"label": "cat"}))
	require.Error(t, s.Validate(map[string]any{"label": "cow"}))
	_, err = schema.Compile([]byte(`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"l":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/l"}}}`))
	require.NoError(t, err, "a declared, built-in draft needs no loading")
	_, err = schema.Compile([]byte(`{"$id":"https://example.com/root.json","$defs":{"a":{"$anchor":"A","type":"string"}},"$ref":"#A"}`))
	require.NoError(t, err, "an $id does not make a local reference external")
}

func TestSizeAndDepthAreBounded(t *testing.T) {
	deep := strings.Repeat(`{"not":`, schema.MaxDepth) + `{}` + strings.Repeat(`}`, schema.MaxDepth)
	err := compileQuickly(t, deep)
	require.ErrorContains(t, err, fmt.Sprintf("nested more than %d levels", schema.MaxDepth))
	ok := strings.Repeat(`{"not":`, schema.MaxDepth-1) + `{}` + strings.Repeat(`}`, schema.MaxDepth-1)
	require.NoError(t, compileQuickly(t, ok))

	large := `{"description":"` + strings.Repeat("x", schema.MaxBytes) + `"}`
	err = compileQuickly(t, large)
	require.ErrorContains(t, err, fmt.Sprintf("at most %d bytes", schema.MaxBytes))
}

func TestInvalidSchemasSayWhy(t *testing.T) {
	err := compileQuickly(t, `{"type":"objekt"}`)
	require.ErrorContains(t, err, "is not a valid JSON Schema")
	require.ErrorContains(t, err, "/type")
	require.ErrorContains(t, compileQuickly(t, `{"type":`), "is not valid JSON")
	require.ErrorContains(t, compileQuickly(t, `[1]`), "must be a JSON Schema object")
	require.ErrorContains(t, compileQuickly(t, `{"$ref":"#/$defs/missing"}`), "is not a valid JSON Schema")
}
