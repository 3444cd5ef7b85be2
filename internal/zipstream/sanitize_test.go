package zipstream

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

var hostileNames = []string{
	"../../etc/passwd",
	"/abs/path",
	`C:\Windows\x`,
	`..\..\boot.ini`,
	"a/../../b",
	"name\x00with-nul.txt",
	"line\nbreak.txt",
	"tab\there",
	"",
	".",
	"..",
	"...",
	". .",
	"/",
	"////",
	"a//b///c",
	"trailing.dot.",
	"trailing space ",
	"  leading space",
	"CON",
	"con.txt",
	"LPT1.log",
	"COM¹",
	"aux/nul/file.txt",
	"inv\xff\xfealid.txt",
	"bidi\u202egpj.exe",
	"fullwidth\uff0f\uff0e\uff0eslash",
	`quote"star*pipe|lt<gt>colon:q?.txt`,
	"~/.ssh/authorized_keys",
	"A.txt",
	"a.txt",
	"a.TXT",
	"\u212aelvin.txt", // Kelvin sign folds to k
	"kelvin.txt",
	"x",
	"x/y",
	"X/Y",
	"emoji 👨\u200d👩\u200d👧.png",
	strings.Repeat("long", 300) + ".txt",
	strings.Repeat("deep/", 400) + "file.txt",
	strings.Repeat("é", 500),
}

// requireSafePath checks every invariant SanitizePath promises.
func requireSafePath(t testing.TB, prefix, p string) {
	t.Helper()
	require.NoError(t, ValidPath(p), "ValidPath(%q)", p)
	require.True(t, utf8.ValidString(p), "%q is not UTF-8", p)
	require.False(t, strings.HasPrefix(p, "/"), "%q is absolute", p)
	require.NotContains(t, p, `\`)
	require.LessOrEqual(t, len(p), MaxPathBytes, "%q is too long", p)
	if pre := strings.Join(sanitizeComponents(prefix), "/"); pre != "" {
		require.True(t, strings.HasPrefix(p, pre+"/"), "%q is not under %q", p, prefix)
	}
	for _, c := range strings.Split(p, "/") {
		require.NotEmpty(t, c, "%q has an empty component", p)
		require.NotEqual(t, "..", c)
		require.NotEqual(t, ".", c)
		require.False(t, strings.HasSuffix(c, ".") || strings.HasSuffix(c, " "), "%q: component %q ends in dot or space", p, c)
		require.LessOrEqual(t, len(c), MaxComponentBytes+dedupeRoom)
		require.False(t, isWindowsDevice(c), "%q: device name %q", p, c)
	}
	for _, r := range p {
		require.False(t, unicode.IsControl(r), "%q has a control character", p)
		require.False(t, strings.ContainsRune(`<>:"|?*`, r), "%q has %q", p, r)
		require.False(t, lookalike(r), "%q has lookalike %q", p, r)
		require.False(t, unicode.Is(unicode.Bidi_Control, r), "%q has a bidi control", p)
	}
}

func TestSanitizePath(t *testing.T) {
	for _, tc := range []struct {
		prefix, name, want string
	}{
		{"files/", "../../etc/passwd", "files/etc/passwd"},
		{"files/", "/abs/path", "files/abs/path"},
		{"files/", `C:\Windows\x`, "files/C_/Windows/x"},
		{"files/", `..\..\boot.ini`, "files/boot.ini"},
		{"files/", "a/../../b", "files/a/b"},
		{"files/", "name\x00with-nul.txt", "files/name_with-nul.txt"},
		{"files/", "line\nbreak.txt", "files/line_break.txt"},
		{"files/", "", "files/unnamed"},
		{"files/", "..", "files/unnamed"},
		{"files/", "////", "files/unnamed"},
		{"files/", "a//b///c", "files/a/b/c"},
		{"files/", "trailing.dot.", "files/trailing.dot"},
		{"files/", "  spaced  ", "files/spaced"},
		{"files/", "CON", "files/_CON"},
		{"files/", "con.txt", "files/_con.txt"},
		{"files/", "console.txt", "files/console.txt"},
		{"files/", "COM1.log", "files/_COM1.log"},
		{"files/", "COM10.log", "files/COM10.log"},
		{"files/", "inv\xffalid.txt", "files/inv_alid.txt"},
		{"files/", "bidi\u202egpj.exe", "files/bidigpj.exe"},
		{"files/", "a\uff0f\uff0e\uff0e", "files/a___"},
		{"files/", `q"s*p|l<g>c:?.txt`, "files/q_s_p_l_g_c__.txt"},
		{"files/", "Ünïcødé 名前.txt", "files/Ünïcødé 名前.txt"},
		{"files/", "emoji 👨\u200d👩.png", "files/emoji 👨\u200d👩.png"},
		{"", "plain.txt", "plain.txt"},
		{"/annotations//", "x.json", "annotations/x.json"},
		{`llm\raw`, "x.json", "llm/raw/x.json"},
	} {
		got := SanitizePath(tc.prefix, tc.name)
		require.Equal(t, tc.want, got, "SanitizePath(%q, %q)", tc.prefix, tc.name)
		requireSafePath(t, tc.prefix, got)
	}

	t.Run("long names keep their extension", func(t *testing.T) {
		got := SanitizePath("files/", strings.Repeat("x", 1000)+".jpeg")
		require.True(t, strings.HasSuffix(got, ".jpeg"), got)
		require.LessOrEqual(t, len(got), len("files/")+MaxComponentBytes)
		requireSafePath(t, "files/", got)

		got = SanitizePath("files/", strings.Repeat("é", 1000)) // 2-byte runes: cut on a boundary
		require.True(t, utf8.ValidString(got))
		requireSafePath(t, "files/", got)
	})
	t.Run("huge hostile names are cheap", func(t *testing.T) {
		start := time.Now()
		got := SanitizePath("files/", strings.Repeat("a/", 1<<18)+"f")
		require.Less(t, time.Since(start), 2*time.Second)
		require.True(t, strings.HasSuffix(got, "/f"), got)
		requireSafePath(t, "files/", got)
	})
	t.Run("deep paths drop inner directories", func(t *testing.T) {
		got := SanitizePath("files/", "top/"+strings.Repeat("d/", 1000)+"file.txt")
		require.True(t, strings.HasPrefix(got, "files/top/"), got)
		require.True(t, strings.HasSuffix(got, "/file.txt"), got)
		requireSafePath(t, "files/", got)
	})
}

func TestNamer(t *testing.T) {
	n := NewNamer()
	require.Equal(t, "manifest.json", n.Name("", "manifest.json"))
	require.Equal(t, "files/A.txt", n.Name("files/", "A.txt"))
	require.Equal(t, "files/a (2).txt", n.Name("files/", "a.txt"))
	require.Equal(t, "files/a (3).TXT", n.Name("files/", "a.TXT"))
	require.Equal(t, "files/a (4).txt", n.Name("files/", "../a.txt"))
	require.Equal(t, "files/a (2) (2).txt", n.Name("files/", "a (2).txt"), "a literal ' (2)' name does not steal a later slot")
	require.Equal(t, "files/kelvin.txt", n.Name("files/", "kelvin.txt"))
	require.Equal(t, "files/\u212aelvin (2).txt", n.Name("files/", "\u212aelvin.txt"))
	require.Equal(t, "files/.bashrc", n.Name("files/", ".bashrc"))
	require.Equal(t, "files/.bashrc (2)", n.Name("files/", ".bashrc"))
	require.Equal(t, "files/noext", n.Name("files/", "noext"))
	require.Equal(t, "files/NOEXT (2)", n.Name("files/", "NOEXT"))
	// A file and a directory may not share a name.
	require.Equal(t, "files/x", n.Name("files/", "x"))
	require.Equal(t, "files/x (2)/y", n.Name("files/", "x/y"))
	require.Equal(t, "files/x (2)/z", n.Name("files/", "X/z"), "a renamed directory stays renamed")
	require.Equal(t, "files/Dir/a", n.Name("files/", "Dir/a"))
	require.Equal(t, "files/Dir/b", n.Name("files/", "dir/b"), "a directory keeps its first spelling")
	require.Equal(t, "files/Dir/A (2)", n.Name("files/", "DIR/A"))
	require.Equal(t, "files/d/e", n.Name("files/", "d/e"))
	require.Equal(t, "files/D (2)", n.Name("files/", "D"))
	require.Equal(t, "annotations/A.txt", n.Name("annotations/", "A.txt"), "other prefixes are separate directories")
	require.Equal(t, "manifest (2).json", n.Name("", "manifest.json"))

	// Names stay within bounds after a suffix is added.
	long := strings.Repeat("y", 2000) + ".txt"
	first, second := n.Name("files/", long), n.Name("files/", long)
	require.NotEqual(t, first, second)
	requireSafePath(t, "files/", second)
}

// TestHostileNamesPack packs every hostile name through a Namer and lets
// Info-ZIP extract the result: every file must land inside the target
// directory, none may overwrite another.
func TestHostileNamesPack(t *testing.T) {
	n := NewNamer()
	var entries []Entry
	seen := map[string]bool{}
	for i, name := range hostileNames {
		p := n.Name("files/", name)
		requireSafePath(t, "files/", p)
		k := strings.ToLower(p)
		require.False(t, seen[k], "duplicate %q", p)
		seen[k] = true
		entries = append(entries, BytesEntry(p, "text/plain", []byte(pathf("entry %d\n", i))))
	}
	var buf bytes.Buffer
	_, err := Pack(context.Background(), &buf, entries, Options{})
	require.NoError(t, err)
	requireUnzipTest(t, buf.Bytes())

	dir := t.TempDir()
	zipPath := filepath.Join(dir, "a.zip")
	require.NoError(t, os.WriteFile(zipPath, buf.Bytes(), 0o600))
	out := filepath.Join(dir, "out")
	unzip, err := exec.LookPath("unzip")
	require.NoError(t, err)
	res, err := exec.Command(unzip, "-q", zipPath, "-d", out).CombinedOutput()
	require.NoError(t, err, "%s", res)

	var files int
	require.NoError(t, filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, err := filepath.Rel(out, path)
		require.NoError(t, err)
		require.False(t, strings.HasPrefix(rel, ".."), "%s escaped", path)
		if d.Type().IsRegular() {
			files++
		}
		return nil
	}))
	require.Equal(t, len(hostileNames), files, "every entry extracted to its own file")
}

func FuzzSanitizePath(f *testing.F) {
	for _, name := range hostileNames {
		f.Add("files/", name)
	}
	f.Add("", "a")
	f.Add("../", "x")
	f.Add("annotations", "\xc0\xaf")
	f.Fuzz(func(t *testing.T, prefix, name string) {
		if len(prefix) > 64 {
			prefix = prefix[:64] // prefixes are short constants in practice
		}
		p := SanitizePath(prefix, name)
		requireSafePath(t, prefix, p)
		require.Equal(t, p, SanitizePath("", p), "sanitising is idempotent")

		n := NewNamer()
		a, b := n.Name(prefix, name), n.Name(prefix, strings.ToUpper(name))
		requireSafePath(t, prefix, a)
		requireSafePath(t, prefix, b)
		require.NotEqual(t, foldKey(a), foldKey(b))
	})
}
