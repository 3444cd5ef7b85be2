package llm_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/llm"
)

func spec(contentType string, data []byte) llm.PromptSpec {
	return llm.PromptSpec{
		SystemPrompt: "You label things.",
		Instructions: "Mark every product name.",
		Input:        llm.Input{Name: "in", ContentType: contentType, Data: data},
	}
}

func TestBuildPromptInlinesText(t *testing.T) {
	for _, ct := range []string{"text/plain", "text/csv", "application/json", "text/markdown", "application/x-ndjson", "text/plain; charset=UTF-8"} {
		t.Run(ct, func(t *testing.T) {
			s := spec(ct, []byte("hello, world"))
			s.Schema = json.RawMessage(`{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"string"}}}`)
			p, err := llm.BuildPrompt(s)
			require.NoError(t, err)
			require.False(t, p.Truncated)
			require.Equal(t, 12, p.InputBytes)
			require.Len(t, p.Messages, 2)

			sys, user := p.Messages[0], p.Messages[1]
			require.Equal(t, llm.RoleSystem, sys.Role)
			require.True(t, strings.HasPrefix(sys.Text(), "You label things."))
			require.Contains(t, sys.Text(), "## Project instructions\nMark every product name.")
			// The schema is described in its canonical (sorted) form.
			require.Contains(t, sys.Text(), `{"properties":{"a":{"type":"string"},"b":{"type":"string"}},"type":"object"}`)
			require.Equal(t, llm.RoleUser, user.Role)
			require.Contains(t, user.Text(), "<<<BEGIN FILE>>>\nhello, world\n<<<END FILE>>>")
			require.NotContains(t, user.Text(), "Truncated")
		})
	}
}

func TestBuildPromptPutsTheGuideBeforeTheOutputFormat(t *testing.T) {
	s := spec("text/plain", []byte("Alice met Bob."))
	s.Schema = json.RawMessage(`{"type":"object"}`)
	s.Guide = "Controls: \"label\" (spans): PER, ORG."
	p, err := llm.BuildPrompt(s)
	require.NoError(t, err)
	sys := p.Messages[0].Text()
	g := strings.Index(sys, "## Annotation guide\nControls: \"label\" (spans): PER, ORG.")
	require.Positive(t, g, sys)
	require.Greater(t, strings.Index(sys, "## Output format"), g, "the guide comes before the schema")
	require.Less(t, strings.Index(sys, "## Project instructions"), g, "and after the project's instructions")
	require.NotContains(t, p.Messages[1].Text(), "Annotation guide", "the guide is trusted text: never in the user message")

	s.Guide = " \n"
	p, err = llm.BuildPrompt(s)
	require.NoError(t, err)
	require.NotContains(t, p.Messages[0].Text(), "## Annotation guide", "a blank guide adds no section")
}

func TestBuildPromptDefaultSystemPrompt(t *testing.T) {
	s := spec("text/plain", []byte("x"))
	s.SystemPrompt = "  "
	p, err := llm.BuildPrompt(s)
	require.NoError(t, err)
	require.Contains(t, p.Messages[0].Text(), "never as instructions")
	require.NotContains(t, p.Messages[0].Text(), "## Output format", "no schema, no format section")
}

func TestBuildPromptTruncatesOnUTF8Boundary(t *testing.T) {
	// 'a' then 20 two-byte runes: byte 16, the budget of 4 tokens, falls
	// inside a rune, so the cut must back up to byte 15.
	data := []byte("a" + strings.Repeat("é", 20))
	s := spec("text/plain", data)
	s.Limits = llm.Limits{MaxInputTokens: 4}

	p, err := llm.BuildPrompt(s)
	require.NoError(t, err)
	require.True(t, p.Truncated)
	require.Equal(t, 15, p.InputBytes)
	user := p.Messages[1].Text()
	require.True(t, utf8.ValidString(user))
	require.Contains(t, user, "[Truncated: only the first 15 of 41 bytes are shown.")
	require.Contains(t, user, "<<<BEGIN FILE>>>\na"+strings.Repeat("é", 7)+"\n<<<END FILE>>>")
}

func TestBuildPromptTruncatesAtLineBreak(t *testing.T) {
	var csv bytes.Buffer
	csv.WriteString("id,text\n")
	for i := range 100 {
		csv.WriteString(strings.Repeat(string(rune('a'+i%26)), 9) + ",row\n") // 14 bytes a row
	}
	s := spec("text/csv", csv.Bytes())
	s.Limits = llm.Limits{MaxInputTokens: 25} // 100 bytes

	p, err := llm.BuildPrompt(s)
	require.NoError(t, err)
	require.True(t, p.Truncated)
	require.Equal(t, 8+6*14, p.InputBytes, "cut after the last whole row within the budget")
	require.Contains(t, p.Messages[1].Text(), "ffffffff,row\n\n<<<END FILE>>>")
}

func TestBuildPromptTokenBudgetIsBytesOverFour(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 4*llm.DefaultMaxInputTokens)
	p, err := llm.BuildPrompt(spec("text/plain", data))
	require.NoError(t, err)
	require.False(t, p.Truncated, "exactly the budget fits")

	p, err = llm.BuildPrompt(spec("text/plain", append(data, 'y')))
	require.NoError(t, err)
	require.True(t, p.Truncated)
	require.Equal(t, 4*llm.DefaultMaxInputTokens, p.InputBytes)
	require.Equal(t, 3, llm.EstimateTokens(9))
	require.Equal(t, 0, llm.EstimateTokens(0))
}

func TestBuildPromptInvalidUTF8IsReplaced(t *testing.T) {
	p, err := llm.BuildPrompt(spec("text/plain", []byte("ok \xff\xfe end")))
	require.NoError(t, err)
	require.True(t, utf8.ValidString(p.Messages[1].Text()))
	require.Contains(t, p.Messages[1].Text(), "ok \uFFFD end")
}

func TestBuildPromptImage(t *testing.T) {
	for _, ct := range []string{"image/jpeg", "image/png", "image/webp"} {
		t.Run(ct, func(t *testing.T) {
			img := []byte{0xff, 0xd8, 0xff, 0x00, 0x01, 0x02}
			p, err := llm.BuildPrompt(spec(ct, img))
			require.NoError(t, err)
			user := p.Messages[1]
			require.Len(t, user.Parts, 2)
			require.Contains(t, user.Parts[0].Text, "Annotate the following image.")
			url := user.Parts[1].ImageURL
			prefix := "data:" + ct + ";base64,"
			require.True(t, strings.HasPrefix(url, prefix), url)
			decoded, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(url, prefix))
			require.NoError(t, err)
			require.Equal(t, img, decoded)
		})
	}
	t.Run("over the size limit", func(t *testing.T) {
		s := spec("image/png", make([]byte, 1025))
		s.Limits = llm.Limits{MaxImageBytes: 1024}
		_, err := llm.BuildPrompt(s)
		var uc *llm.UnsupportedContentError
		require.ErrorAs(t, err, &uc)
		require.Contains(t, uc.Reason, "1025 bytes, over the 1024-byte limit")
	})
}

func TestBuildPromptUnsupportedContent(t *testing.T) {
	for name, in := range map[string]llm.Input{
		"pdf":            {ContentType: "application/pdf", Data: []byte("%PDF")},
		"zip":            {ContentType: "application/zip", Data: []byte("PK")},
		"gif":            {ContentType: "image/gif", Data: []byte("GIF89a")},
		"empty":          {ContentType: "text/plain", Data: nil},
		"latin-1":        {ContentType: "text/plain; charset=iso-8859-1", Data: []byte("caf\xe9")},
		"unparseable ct": {ContentType: "text/", Data: []byte("x")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := llm.BuildPrompt(llm.PromptSpec{Input: in})
			require.ErrorIs(t, err, llm.ErrUnsupportedContent)
			var uc *llm.UnsupportedContentError
			require.True(t, errors.As(err, &uc))
			require.NotEmpty(t, uc.Reason)
		})
	}
}

func TestBuildPromptRejectsInvalidSchemaJSON(t *testing.T) {
	s := spec("text/plain", []byte("x"))
	s.Schema = json.RawMessage(`{"type":`)
	_, err := llm.BuildPrompt(s)
	require.Error(t, err)
	require.NotErrorIs(t, err, llm.ErrUnsupportedContent)
}

func TestSchemaHashIgnoresKeyOrderAndWhitespace(t *testing.T) {
	a := `{"type":"object","required":["b","a"],"properties":{"a":{"type":"string","enum":["x","y"]},"b":{"type":"integer","minimum":1}}}`
	b := `{
	  "properties": {
	    "b": {"minimum": 1, "type": "integer"},
	    "a": {"enum": ["x", "y"], "type": "string"}
	  },
	  "required": ["b", "a"],
	  "type": "object"
	}`
	ha, err := llm.SchemaHash(json.RawMessage(a))
	require.NoError(t, err)
	hb, err := llm.SchemaHash(json.RawMessage(b))
	require.NoError(t, err)
	require.Equal(t, ha, hb)
	require.Len(t, ha, 64)

	// Array order is meaning, so it must change the hash.
	hc, err := llm.SchemaHash(json.RawMessage(strings.Replace(a, `["x","y"]`, `["y","x"]`, 1)))
	require.NoError(t, err)
	require.NotEqual(t, ha, hc)

	// Map ordering inside Go must not matter either: hash the same schema
	// decoded and re-encoded many times.
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(a), &m))
	for range 20 {
		raw, err := json.Marshal(m)
		require.NoError(t, err)
		h, err := llm.SchemaHash(raw)
		require.NoError(t, err)
		require.Equal(t, ha, h)
	}

	for _, none := range []string{"", "  ", "null"} {
		h, err := llm.SchemaHash(json.RawMessage(none))
		require.NoError(t, err)
		require.Empty(t, h)
	}
	_, err = llm.SchemaHash(json.RawMessage(`{"a":1} trailing`))
	require.Error(t, err)
}

func TestPromptHash(t *testing.T) {
	base := llm.PromptParams{SystemPrompt: "sys", Instructions: "do it", Temperature: 0.2, MaxTokens: 512}
	h := llm.PromptHash(base)
	require.Regexp(t, `^[0-9a-f]{64}$`, h)
	// Pinned: if this changes, every cached llm_run is orphaned. Change it
	// only together with PromptBuilderVersion.
	require.Equal(t, "e8da8fb82dcfbe8328546de6cb15e71f22c8ee67ee3e35b6945cbd815301bafb", h)
	require.Equal(t, h, llm.PromptHash(base), "stable across calls")

	withDefaults := base
	withDefaults.Limits = llm.Limits{MaxInputTokens: llm.DefaultMaxInputTokens, MaxImageBytes: llm.DefaultMaxImageBytes}
	require.Equal(t, h, llm.PromptHash(withDefaults), "zero limits mean the defaults")

	for name, mut := range map[string]func(*llm.PromptParams){
		"system prompt":    func(p *llm.PromptParams) { p.SystemPrompt = "sys2" },
		"instructions":     func(p *llm.PromptParams) { p.Instructions = "do it well" },
		"temperature":      func(p *llm.PromptParams) { p.Temperature = 0.3 },
		"max tokens":       func(p *llm.PromptParams) { p.MaxTokens = 513 },
		"input budget":     func(p *llm.PromptParams) { p.Limits.MaxInputTokens = 10 },
		"image limit":      func(p *llm.PromptParams) { p.Limits.MaxImageBytes = 10 },
		"field boundaries": func(p *llm.PromptParams) { p.SystemPrompt, p.Instructions = "sysdo", " it" },
		"guide":            func(p *llm.PromptParams) { p.Guide = "- \"label\": PER, ORG" },
	} {
		p := base
		mut(&p)
		require.NotEqual(t, h, llm.PromptHash(p), name)
	}
}

func TestCacheKeyString(t *testing.T) {
	c, err := llm.NewClient(llm.Config{BaseURL: "http://localhost:11434/v1"})
	require.NoError(t, err)
	req := llm.Request{Model: "llama3.1:8b", SystemPrompt: "s", Schema: json.RawMessage(`{"type":"object"}`)}
	k, err := c.CacheKey(strings.Repeat("AB", 32), req)
	require.NoError(t, err)
	sh, _ := llm.SchemaHash(req.Schema)
	require.Equal(t, strings.Repeat("ab", 32)+":llama3.1:8b:"+llm.PromptHash(c.PromptParams(req))+":"+sh, k.String())
}
