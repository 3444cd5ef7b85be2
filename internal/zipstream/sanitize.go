package zipstream

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length bounds for archive paths. Components stay well under the 255-byte
// NAME_MAX of common file systems so that a dedupe suffix still fits, and
// whole paths under 1 KiB so that extracting below a reasonable directory
// stays within PATH_MAX.
const (
	MaxComponentBytes = 200
	MaxPathBytes      = 1024
)

// dedupeRoom is kept free below the bounds for a Namer's " (N)" suffix.
const dedupeRoom = 16

// SanitizePath turns an untrusted file name into a safe archive path under
// prefix (for example "files/"). The result
//   - is relative and never contains an empty, "." or ".." component, so
//     it cannot escape the extraction directory; backslashes are treated as
//     separators first, so "..\..\x" cannot either;
//   - is valid UTF-8 without control or bidi-format characters, and without
//     characters Windows refuses (<>:"|?*) or maps onto separators and dots
//     (fullwidth and mathematical slashes, "WorstFit" best-fit mapping);
//   - has no component ending in a dot or space and no Windows device name
//     (CON, NUL, COM1, ...), which Windows would silently alter;
//   - keeps components to MaxComponentBytes and the path to MaxPathBytes
//     (when the prefix is short), dropping inner directories first and
//     keeping the file extension;
//   - is never empty: a name with nothing usable becomes "unnamed".
//
// It does not make names unique; see [Namer].
func SanitizePath(prefix, name string) string {
	pre := sanitizeComponents(prefix)
	parts := sanitizeComponents(name)
	if len(parts) == 0 {
		parts = []string{"unnamed"}
	}
	// Room for two dedupe suffixes: a Namer may rename a directory that
	// clashes with a file as well as the file itself.
	limit := MaxPathBytes - 2*dedupeRoom
	if len(pre) > 0 {
		limit = max(limit-joinedLen(pre)-1, 64) // an absurd prefix still leaves room for a name
	}
	// Inner directories matter least: keep the file and as many leading
	// directories as fit. (Linear, as names are attacker-controlled.)
	if joinedLen(parts) > limit {
		last := parts[len(parts)-1]
		used, keep := len(last), 0
		for keep < len(parts)-1 && used+len(parts[keep])+1 <= limit {
			used += len(parts[keep]) + 1
			keep++
		}
		parts = append(parts[:keep], last)
	}
	if last := &parts[len(parts)-1]; len(*last) > limit {
		*last = truncateKeepExt(*last, limit)
	}
	return strings.Join(append(pre, parts...), "/")
}

func joinedLen(parts []string) int {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	return max(n-1, 0)
}

func sanitizeComponents(s string) []string {
	s = strings.ReplaceAll(s, `\`, "/")
	var out []string
	for _, c := range strings.Split(s, "/") {
		if c = sanitizeComponent(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func sanitizeComponent(c string) string {
	var b strings.Builder
	b.Grow(len(c))
	for i := 0; i < len(c); {
		r, size := utf8.DecodeRuneInString(c[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1: // invalid UTF-8
			b.WriteByte('_')
		case r == '\u200c' || r == '\u200d':
			// Zero-width (non-)joiners are format characters but are part
			// of ordinary emoji and Indic spellings; keep them.
			b.WriteRune(r)
		case unicode.Is(unicode.Cf, r):
			// Bidi overrides can make "gpj.exe" display as "exe.jpg".
		case unicode.IsControl(r), strings.ContainsRune(`<>:"|?*`, r), lookalike(r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	c = strings.TrimLeft(b.String(), " ")
	// Windows drops trailing dots and spaces, which would make "a." collide
	// with "a" and turns ".." variants like ". ." into traversal; this also
	// removes "." and ".." themselves.
	c = strings.TrimRight(c, ". ")
	if c == "" {
		return ""
	}
	if isWindowsDevice(c) {
		c = "_" + c
	}
	if len(c) > MaxComponentBytes {
		c = truncateKeepExt(c, MaxComponentBytes)
	}
	return c
}

// lookalike reports characters that Windows' best-fit code page mapping can
// turn into '/', '\', '.' or ':' when an unzip tool uses the ANSI API.
func lookalike(r rune) bool {
	switch r {
	case '\u2215', '\u2044', '\uff0f', '\u29f8', // slashes
		'\uff3c', '\u2216', '\u29f5', '\u29f9', '\ufe68', // backslashes
		'\uff0e', '\u2024', '\ufe52', // full stops
		'\uff1a', '\ufe55', '\ua789': // colons
		return true
	}
	return false
}

func isWindowsDevice(c string) bool {
	base, _, _ := strings.Cut(c, ".")
	base = strings.TrimRight(base, " ")
	switch strings.ToUpper(base) {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	u := strings.ToUpper(base)
	if len(u) >= 4 && (strings.HasPrefix(u, "COM") || strings.HasPrefix(u, "LPT")) {
		d := u[3:]
		return len(d) == 1 && d[0] >= '0' && d[0] <= '9' || d == "¹" || d == "²" || d == "³"
	}
	return false
}

// truncateKeepExt shortens c to at most n bytes on a rune boundary, keeping
// a short extension so that the file still opens with the right program.
func truncateKeepExt(c string, n int) string {
	if len(c) <= n {
		return c
	}
	base, ext := splitExt(c)
	if len(ext) > 32 || len(ext) >= n {
		base, ext = c, ""
	}
	keep := n - len(ext)
	for keep > 0 && !utf8.RuneStart(base[keep]) {
		keep--
	}
	out := strings.TrimRight(base[:keep], ". ") + ext
	if out == "" || out == ext {
		out = "unnamed" + ext
	}
	return out
}

// splitExt splits "report.final.csv" into "report.final" and ".csv". A
// leading dot (".bashrc") is part of the base.
func splitExt(c string) (base, ext string) {
	if i := strings.LastIndexByte(c, '.'); i > 0 {
		return c[:i], c[i:]
	}
	return c, ""
}

// ValidPath reports, as an error wrapping ErrInvalidEntry, why p is not a
// safe archive path: the invariants [SanitizePath] guarantees, checked
// again at the point of writing so that no caller can bypass them.
func ValidPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w: path %q: %s", ErrInvalidEntry, p, why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathBytes:
		return bad("longer than " + strconv.Itoa(MaxPathBytes) + " bytes")
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return bad("absolute")
	case strings.ContainsRune(p, '\\'):
		return bad("contains a backslash")
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return bad("contains a control character")
		}
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "":
			return bad("empty component")
		case ".", "..":
			return bad("dot component")
		}
		if len(c) > MaxComponentBytes+dedupeRoom {
			return bad("component too long")
		}
	}
	return nil
}

// Namer hands out sanitised, unique archive paths. Uniqueness is decided
// case-insensitively (Unicode simple case folding), because Windows and
// macOS extract "A.txt" and "a.txt" onto the same file; duplicates get " (2)",
// " (3)", ... before the extension. A file and a directory never share a
// name ("x" and "x/y"): the directory is renamed like a duplicate. A
// directory keeps the spelling it was first given ("Dir/a" then "dir/b"
// gives "Dir/b"), so every system extracts the same tree. The zero value is
// not usable; call NewNamer.
//
// Not covered: Unicode normalisation (macOS treats NFC and NFD spellings of
// "é" as one name); such names extract, one overwriting the other, and the
// manifest still lists both.
type Namer struct {
	used map[string]namerSlot // folded path → what holds it
}

type namerSlot struct {
	dir  bool
	name string // spelling of the last component, for directories
}

// NewNamer returns an empty Namer.
func NewNamer() *Namer { return &Namer{used: make(map[string]namerSlot)} }

// Name returns SanitizePath(prefix, name), made unique among the names this
// Namer returned before. Reserve fixed names (manifest.json) by asking for
// them first.
func (n *Namer) Name(prefix, name string) string {
	parts := strings.Split(SanitizePath(prefix, name), "/")
	for i := 0; i < len(parts)-1; i++ {
		orig := parts[i]
		for k := 2; ; k++ {
			slot, ok := n.used[foldKey(strings.Join(parts[:i+1], "/"))]
			if !ok {
				break
			}
			if slot.dir {
				parts[i] = slot.name
				break
			}
			parts[i] = orig + " (" + strconv.Itoa(k) + ")" // a file holds the name
		}
	}
	last := len(parts) - 1
	base, ext := splitExt(parts[last])
	for k := 2; ; k++ {
		if _, ok := n.used[foldKey(strings.Join(parts, "/"))]; !ok {
			break
		}
		parts[last] = base + " (" + strconv.Itoa(k) + ")" + ext
	}
	for i := range parts[:last] {
		n.used[foldKey(strings.Join(parts[:i+1], "/"))] = namerSlot{dir: true, name: parts[i]}
	}
	p := strings.Join(parts, "/")
	n.used[foldKey(p)] = namerSlot{}
	return p
}

// foldKey maps s to a key equal for strings that differ only in case: each
// rune becomes the smallest member of its simple case-folding orbit, so
// 'K', 'k' and the Kelvin sign all agree.
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s) // the smallest rune of an ASCII letter's orbit is its upper case
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}
