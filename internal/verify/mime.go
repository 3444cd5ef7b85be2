package verify

import (
	"mime"
	"strings"

	"github.com/gabriel-vasile/mimetype"
)

// mediaType is a media type without parameters, in canonical form, with the
// sniffer's node when mimetype knows the type (nil when it does not, e.g.
// text/markdown).
type mediaType struct {
	name string
	node *mimetype.MIME
}

// synonyms maps names clients send that mimetype does not list as aliases to
// the name labelq uses. Browsers and HTTP libraries disagree on these.
var synonyms = map[string]string{
	"image/jpg":                       "image/jpeg",
	"image/pjpeg":                     "image/jpeg",
	"text/x-markdown":                 "text/markdown",
	"application/jsonl":               "application/x-ndjson",
	"application/jsonlines":           "application/x-ndjson",
	"application/x-jsonlines":         "application/x-ndjson",
	"application/x-jsonl":             "application/x-ndjson",
	"text/jsonl":                      "application/x-ndjson",
	"application/x-yaml":              "application/yaml",
	"text/yaml":                       "application/yaml",
	"text/x-yaml":                     "application/yaml",
	"application/csv":                 "text/csv",
	"text/x-csv":                      "text/csv",
	"application/x-msdownload":        "application/vnd.microsoft.portable-executable",
	"application/x-dosexec":           "application/vnd.microsoft.portable-executable",
	"application/x-msdos-program":     "application/vnd.microsoft.portable-executable",
	"application/x-ms-dos-executable": "application/vnd.microsoft.portable-executable",
	"application/x-mach-o-executable": "application/x-mach-binary",
	"application/x-gtar":              "application/x-tar",
}

// parseMediaType canonicalises a declared or sniffed type: parameters
// dropped, lower case, synonyms and mimetype aliases resolved to one name.
func parseMediaType(s string) (mediaType, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return mediaType{}, false
	}
	name, _, err := mime.ParseMediaType(s)
	if err != nil || !strings.Contains(name, "/") {
		return mediaType{}, false
	}
	if syn, ok := synonyms[name]; ok {
		name = syn
	}
	t := mediaType{name: name}
	if n := mimetype.Lookup(name); n != nil {
		t.node = n
		if canonical, _, err := mime.ParseMediaType(n.String()); err == nil {
			t.name = canonical
		}
	}
	return t, true
}

// fromNode wraps a sniffed node (which may carry a charset parameter).
func fromNode(n *mimetype.MIME) mediaType {
	name, _, err := mime.ParseMediaType(n.String())
	if err != nil {
		name = n.String()
	}
	return mediaType{name: name, node: n}
}

// is reports whether t is the type named (directly or through an alias).
func (t mediaType) is(name string) bool {
	if t.name == name {
		return true
	}
	return t.node != nil && t.node.Is(name)
}

// within reports whether t is the named type or lies below it in mimetype's
// hierarchy (text/csv is within text/plain; docx is within application/zip).
func (t mediaType) within(name string) bool {
	if t.is(name) {
		return true
	}
	if t.node == nil {
		return false
	}
	for p := t.node.Parent(); p != nil; p = p.Parent() {
		if p.Is(name) {
			return true
		}
	}
	return false
}

// descendsFrom reports whether t is strictly below a in the hierarchy.
func (t mediaType) descendsFrom(a mediaType) bool {
	if t.node == nil || t.is(a.name) {
		return false
	}
	return t.within(a.name)
}

// unknown reports whether t is the sniffer's "I don't know": the root of the
// hierarchy, application/octet-stream.
func (t mediaType) unknown() bool {
	return t.name == "application/octet-stream" || t.name == "binary/octet-stream"
}

// textualApplication lists application/* types that are text, for declared
// types mimetype does not know.
var textualApplication = map[string]bool{
	"application/json": true, "application/x-ndjson": true, "application/xml": true,
	"application/yaml": true, "application/javascript": true, "application/sql": true,
	"application/toml": true, "application/x-tex": true, "application/x-latex": true,
	"application/graphql": true,
}

// textual reports whether content of type t is text.
func (t mediaType) textual() bool {
	if t.node != nil {
		return t.within("text/plain")
	}
	if strings.HasPrefix(t.name, "text/") || textualApplication[t.name] {
		return true
	}
	for _, suffix := range []string{"+json", "+xml", "+yaml"} {
		if strings.HasSuffix(t.name, suffix) {
			return true
		}
	}
	return false
}

// signatureTypes are formats mimetype identifies by a signature every valid
// file carries at a fixed place. When one is declared and the sniffer finds
// nothing at all, the content is not of that type (a "PNG" with no PNG
// header does not display). For other binary formats the sniffer's
// "unknown" is just that, and the declaration is trusted.
var signatureTypes = []string{
	"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff",
	"application/pdf", "application/zip", "application/gzip", "application/x-7z-compressed",
	"application/vnd.rar", "application/x-bzip2", "application/x-xz", "application/zstd",
	"application/x-ole-storage", "audio/flac", "audio/wav", "application/ogg",
	"video/webm", "video/matroska",
}

func (t mediaType) needsSignature() bool {
	for _, s := range signatureTypes {
		if t.within(s) {
			return true
		}
	}
	return false
}

// blocked returns the blocked type t falls under, or "".
func (t mediaType) blocked() string {
	for _, b := range blockedTypes {
		if t.within(b) {
			return b
		}
	}
	return ""
}

// resolution is the outcome of comparing a declared type with a sniffed one.
type resolution struct {
	// ok is false when the two disagree.
	ok bool
	// effective is the type the file is taken to be: what the allow-list is
	// checked against and what is recorded on the version.
	effective mediaType
	// note explains a lenient decision, for Report.Notes.
	note string
}

// resolveType decides whether a declared type (hasDeclared false when none
// was declared) is compatible with the sniffed type, and which of the two
// the file is taken to be. The rules, in order:
//
//  1. Nothing declared, or application/octet-stream declared (what browsers
//     send when they don't know): the sniffed type.
//  2. Same type, directly or through an alias (image/jpg, audio/x-wav,
//     application/x-zip-compressed): the sniffed type.
//  3. The sniffed type is a refinement of the declared one in mimetype's
//     hierarchy (declared application/zip, content is docx; declared
//     text/plain, content is CSV): the sniffed, more specific type. The
//     blocked-type check still sees through it (declared zip, content jar).
//  4. The declared type is a refinement of the sniffed one, and the sniffed
//     one is not "unknown" (docx whose signature lies past the sniff window
//     sniffs as zip; CSV that does not look regular enough sniffs as
//     text/plain): the declared type.
//  5. CSV or other text declared as application/vnd.ms-excel (what Windows
//     browsers send for .csv when Excel is installed): the sniffed type.
//  6. Both are text (declared text/markdown or application/x-yaml, which the
//     sniffer calls text/plain; or two text subtypes the sniffer guesses
//     between heuristically, like CSV and NDJSON): the declared type.
//  7. Both are images, both audio, or both video (a JPEG saved as .png):
//     the sniffed type, with a note, since that is what the file really is.
//  8. The sniffer does not know the content (application/octet-stream) and
//     the declared type is binary without a mandatory signature (e.g.
//     application/x-hdf5, .npy): the declared type, with a note.
//
// Anything else disagrees: declared text but binary content, a declared
// signature type without its signature, different families.
func resolveType(declared mediaType, hasDeclared bool, sniffed mediaType) resolution {
	switch {
	case !hasDeclared || declared.unknown():
		return resolution{ok: true, effective: sniffed}
	case sniffed.is(declared.name) || declared.is(sniffed.name):
		return resolution{ok: true, effective: sniffed}
	case sniffed.descendsFrom(declared):
		return resolution{ok: true, effective: sniffed}
	case !sniffed.unknown() && declared.descendsFrom(sniffed):
		return resolution{ok: true, effective: declared}
	case declared.name == "application/vnd.ms-excel" && sniffed.textual():
		return resolution{ok: true, effective: sniffed,
			note: "declared application/vnd.ms-excel for text content; treated as " + sniffed.name + " (Windows browsers label .csv files this way)"}
	case declared.textual() && sniffed.textual():
		return resolution{ok: true, effective: declared}
	case sameFamily(declared, sniffed):
		return resolution{ok: true, effective: sniffed,
			note: "declared " + declared.name + " but the content is " + sniffed.name + "; recorded as " + sniffed.name}
	case sniffed.unknown() && !declared.textual() && !declared.needsSignature():
		return resolution{ok: true, effective: declared,
			note: "content type could not be identified from the bytes; trusting the declared " + declared.name}
	}
	return resolution{ok: false, effective: sniffed}
}

func sameFamily(a, b mediaType) bool {
	top := func(t mediaType) string { s, _, _ := strings.Cut(t.name, "/"); return s }
	ta := top(a)
	return ta == top(b) && (ta == "image" || ta == "audio" || ta == "video")
}

// matchesPattern reports whether t is allowed by one allow-list pattern.
// Patterns match the type or its aliases, or a whole top-level type with
// "type/*"; the hierarchy is deliberately not used, so allowing
// application/zip does not allow docx, and allowing text/plain does not
// allow text/html.
func (t mediaType) matchesPattern(pattern string) bool {
	p := strings.ToLower(strings.TrimSpace(pattern))
	switch {
	case p == "*" || p == "*/*":
		return true
	case strings.HasSuffix(p, "/*"):
		return strings.HasPrefix(t.name, strings.TrimSuffix(p, "*"))
	}
	pt, ok := parseMediaType(p)
	if !ok {
		return false
	}
	return t.is(pt.name) || (pt.node != nil && t.node != nil && pt.node.Is(t.name))
}

func allowedBy(t mediaType, patterns []string) bool {
	for _, p := range patterns {
		if t.matchesPattern(p) {
			return true
		}
	}
	return false
}
