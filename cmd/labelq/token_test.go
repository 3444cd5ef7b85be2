package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// TestTokenCommands drives `labelq token create|list|revoke` as an operator would.
func TestTokenCommands(t *testing.T) {
	pg := testenv.Postgres(t)
	t.Setenv("LABELQ_DATABASE_URL", pg.URL)
	labelq := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := labelq("token", "create", "--org", "acme", "--name", "uploader", "--scopes", "upload,read", "--expires", "720h")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "scopes=upload,read\n")
	require.Regexp(t, `expires_at=\d{4}-`, out)
	id := regexp.MustCompile(`token_id=(\d+)`).FindStringSubmatch(out)[1]
	secret := regexp.MustCompile(`token=(lq_\S+)`).FindStringSubmatch(out)[1]

	code, out, errOut = labelq("token", "create", "--org", "acme", "--name", "admin")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "scopes=read,upload,manage\n", "every scope by default")

	code, out, errOut = labelq("token", "list", "--org", "acme")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.Regexp(t, `^ID\s+ORG\s+NAME\s+SCOPES\s+CREATED\s+LAST USED\s+EXPIRES\s+REVOKED$`, lines[0])
	require.Regexp(t, `^`+id+`\s+acme\s+uploader\s+upload,read\s+\S+\s+-\s+\d{4}-\S+\s+-$`, lines[2])
	require.NotContains(t, out, secret)
	require.NotContains(t, out, "lq_")

	code, out, errOut = labelq("token", "revoke", id)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "token_id="+id+"\nrevoked_at=")
	_, out, _ = labelq("token", "list")
	require.Regexp(t, `(?m)^`+id+`\s.*\s\d{4}-\S+Z$`, out, "the revoked token shows when")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "revoke", "999999"}, "no API token has this id"},
		{[]string{"token", "revoke", "abc"}, "is not a token id"},
		{[]string{"token", "revoke"}, "usage: labelq token revoke ID"},
		{[]string{"token", "create", "--org", "acme", "--name", "x", "--scopes", "write"}, `unknown scope "write"`},
		{[]string{"token", "create", "--org", "acme", "--name", "x", "--expires", "soon"}, "invalid value"},
		{[]string{"token", "frob"}, `unknown token command "frob"`},
		{[]string{"token"}, "usage: labelq token create"},
	} {
		code, _, errOut := labelq(c.args...)
		require.Equal(t, 1, code, "%v", c.args)
		require.Contains(t, errOut, c.want, "%v", c.args)
	}
}
