package verify

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
)

func mustType(t *testing.T, s string) mediaType {
	t.Helper()
	mt, ok := parseMediaType(s)
	require.True(t, ok, "parse %q", s)
	return mt
}

// Each row is one rule of resolveType; "" declared means nothing declared.
func TestResolveType(t *testing.T) {
	tests := []struct {
		declared  string
		sniffed   string
		ok        bool
		effective string
	}{
		// 1. nothing or octet-stream declared
		{"", "text/plain", true, "text/plain"},
		{"application/octet-stream", "image/png", true, "image/png"},
		{"binary/octet-stream", "image/png", true, "image/png"},
		// 2. same type, alias, synonym, parameters, case
		{"image/png", "image/png", true, "image/png"},
		{"image/jpg", "image/jpeg", true, "image/jpeg"},
		{"IMAGE/JPEG; q=0.9", "image/jpeg", true, "image/jpeg"},
		{"application/x-zip-compressed", "application/zip", true, "application/zip"},
		{"audio/x-wav", "audio/wav", true, "audio/wav"},
		{"application/jsonl", "application/x-ndjson", true, "application/x-ndjson"},
		{"text/plain; charset=utf-8", "text/plain; charset=iso-8859-1", true, "text/plain"},
		// 3. sniffed is more specific
		{"application/zip", docx, true, docx},
		{"text/plain", "text/csv", true, "text/csv"},
		{"text/plain", "text/html", true, "text/html"},
		{"application/json", "application/geo+json", true, "application/geo+json"},
		// 4. declared is more specific than a known sniffed type
		{docx, "application/zip", true, docx},
		{"text/csv", "text/plain", true, "text/csv"},
		{"application/json", "text/plain", true, "application/json"},
		// 5. Windows' label for CSV
		{"application/vnd.ms-excel", "text/csv", true, "text/csv"},
		// 6. both text
		{"text/markdown", "text/plain", true, "text/markdown"},
		{"text/x-markdown", "text/plain", true, "text/markdown"},
		{"application/x-yaml", "text/plain", true, "application/yaml"},
		{"text/csv", "application/x-ndjson", true, "text/csv"},
		{"application/ld+json", "application/json", true, "application/ld+json"},
		// 7. same media family: the real type wins
		{"image/png", "image/jpeg", true, "image/jpeg"},
		{"video/quicktime", "video/mp4", true, "video/mp4"},
		{"audio/mpeg", "audio/wav", true, "audio/wav"},
		// 8. unknown binary, declared binary type without a signature
		{"application/x-hdf5", "application/octet-stream", true, "application/x-hdf5"},
		{"application/x-npy", "application/octet-stream", true, "application/x-npy"},
		// disagreements
		{"image/png", "application/octet-stream", false, ""},
		{"application/pdf", "application/octet-stream", false, ""},
		{docx, "application/octet-stream", false, ""},
		{"text/csv", "application/octet-stream", false, ""},
		{"text/markdown", "application/octet-stream", false, ""},
		{"image/jpeg", "text/plain", false, ""},
		{"application/pdf", "image/png", false, ""},
		{"application/zip", "application/gzip", false, ""},
		{"audio/mpeg", "video/mp4", false, ""},
		{"image/png", "application/x-executable", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.declared+" vs "+tt.sniffed, func(t *testing.T) {
			declared, has := parseMediaType(tt.declared)
			got := resolveType(declared, has, mustType(t, tt.sniffed))
			require.Equal(t, tt.ok, got.ok)
			if tt.ok {
				require.Equal(t, tt.effective, got.effective.name)
			}
		})
	}
}

func TestMatchesPattern(t *testing.T) {
	tests := []struct {
		typ, pattern string
		want         bool
	}{
		{"image/png", "image/png", true},
		{"image/png", "image/*", true},
		{"image/png", "*/*", true},
		{"image/png", "*", true},
		{"image/png", "video/*", false},
		{"text/csv", "TEXT/CSV", true},
		{"text/csv", " text/csv ; charset=utf-8", true},
		{"application/zip", "application/x-zip-compressed", true},
		{"application/x-ndjson", "application/jsonl", true},
		{"text/xml", "application/xml", true},
		// The hierarchy is not used: a container does not allow its kinds.
		{docx, "application/zip", false},
		{"text/html", "text/plain", false},
		{"image/svg+xml", "image/png", false},
		{"application/x-hdf5", "application/x-hdf5", true},
		{"application/x-hdf5", "not a pattern", false},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" ~ "+tt.pattern, func(t *testing.T) {
			require.Equal(t, tt.want, mustType(t, tt.typ).matchesPattern(tt.pattern))
		})
	}
}

func TestBlocked(t *testing.T) {
	for _, s := range []string{
		"application/x-elf", "application/x-executable", "application/x-sharedlib",
		"application/vnd.microsoft.portable-executable", "application/x-msdownload",
		"application/x-mach-binary", "application/x-ms-installer", "application/x-msi",
		"application/java-archive", "application/vnd.android.package-archive",
		"text/x-shellscript", "application/x-sh", "application/x-java-applet",
	} {
		require.NotEmpty(t, mustType(t, s).blocked(), s)
	}
	for _, s := range BlockedTypes() {
		require.Equal(t, s, mustType(t, s).blocked(), "every listed type is known to the sniffer and blocks itself")
		require.NotNil(t, mustType(t, s).node, s)
	}
	for _, s := range []string{"application/zip", docx, "text/plain", "text/x-python", "image/png", "application/pdf"} {
		require.Empty(t, mustType(t, s).blocked(), s)
	}
}

func TestDefaultAllowList(t *testing.T) {
	d := DefaultAllowList()
	for _, ft := range []string{FileTypeDataset, FileTypeRequirement, FileTypeAnnotationResults, FileTypeLLMOutput} {
		require.NotEmpty(t, d[ft], ft)
		for _, p := range d[ft] {
			if mt, ok := parseMediaType(p); ok {
				require.Empty(t, mt.blocked(), "default list for %s allows blocked %s", ft, p)
			}
		}
	}
	require.True(t, allowedBy(mustType(t, "image/png"), d[FileTypeDataset]))
	require.True(t, allowedBy(mustType(t, "audio/flac"), d[FileTypeDataset]))
	require.True(t, allowedBy(mustType(t, docx), d[FileTypeDataset]))
	require.False(t, allowedBy(mustType(t, "image/svg+xml"), d[FileTypeDataset]))
	require.False(t, allowedBy(mustType(t, "application/x-7z-compressed"), d[FileTypeDataset]))
	require.False(t, allowedBy(mustType(t, "text/html"), d[FileTypeLLMOutput]))

	d[FileTypeDataset] = nil
	require.NotEmpty(t, DefaultAllowList()[FileTypeDataset], "callers get a fresh map")
}

// A project override replaces the list for the file types it names and
// leaves the others on their defaults.
func TestAllowListOverride(t *testing.T) {
	opts := Options{AllowList: map[string][]string{FileTypeDataset: {"image/*"}, FileTypeLLMOutput: {}}}
	l, ok := opts.allowListFor(FileTypeDataset)
	require.True(t, ok)
	require.Equal(t, []string{"image/*"}, l)
	require.False(t, allowedBy(mustType(t, "text/csv"), l))

	l, ok = opts.allowListFor(FileTypeRequirement)
	require.True(t, ok)
	require.True(t, allowedBy(mustType(t, "text/plain"), l), "requirement keeps its default")

	l, ok = opts.allowListFor(FileTypeLLMOutput)
	require.True(t, ok)
	require.False(t, allowedBy(mustType(t, "text/plain"), l), "an empty list allows nothing")

	_, ok = opts.allowListFor("unknown")
	require.False(t, ok)
}
