package formats

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labelq/labelq/internal/labelconfig"
)

// CoNLLHeader is result.conll's first line, as Label Studio writes it.
const CoNLLHeader = "-DOCSTART- -X- O\n"

// conll writes result.conll: the header, then per task one line per token,
// "token -X- _ TAG", and a blank line. Tokens are the text's runs of
// non-whitespace. A token gets B-<label> if it is the first token a span
// overlaps and I-<label> for the span's later tokens, O when no span overlaps
// it; where spans overlap, the one starting first (then the longer) wins, and
// a span with several labels uses its first, as in Label Studio's
// create_tokens_and_tags. Whitespace inside a label becomes "_" so that the
// line keeps its four columns.
type conll struct {
	doc
	controls map[string]labelconfig.Control
	spans    []conllSpan
	lo       int // spans before lo end before the current token
}

type conllSpan struct {
	start, end int // code points
	tag        string
}

func newCoNLL(cfg labelconfig.Config, w Writer) *conll {
	return &conll{doc: doc{w: w, name: ResultCoNLL}, controls: controlsOf(cfg)}
}

func (c *conll) begin() error {
	if c.out != nil {
		return nil
	}
	if err := c.open(); err != nil {
		return err
	}
	_, err := c.out.WriteString(CoNLLHeader)
	return err
}

func tagOf(label string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return '_'
		}
		return r
	}, label)
}

func (c *conll) Add(t Task) error {
	if err := c.begin(); err != nil {
		return err
	}
	c.spans = c.spans[:0]
	if a := t.Latest(); a != nil {
		for i := range a.Result {
			r := &a.Result[i]
			k, ok := c.controls[r.FromName]
			if !ok || k.Type != labelconfig.Labels || r.Type != k.Type {
				continue
			}
			v, err := r.DecodeValue()
			if err != nil {
				return taskErr("conll2003", t, fmt.Errorf("annotation %d: region %d: %w", a.ID, i, err))
			}
			if len(v.Labels) == 0 || v.End <= v.Start {
				continue
			}
			c.spans = append(c.spans, conllSpan{start: v.Start, end: v.End, tag: tagOf(v.Labels[0])})
		}
	}
	slices.SortStableFunc(c.spans, func(a, b conllSpan) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return b.end - a.end
	})
	c.lo = 0
	b := c.scratch
	prev := -1 // span of the previous token
	cp := 0    // code-point offset of the byte at i
	text := t.Text
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if unicode.IsSpace(r) {
			i += size
			cp++
			continue
		}
		start, startByte := cp, i
		for i < len(text) {
			r, size = utf8.DecodeRuneInString(text[i:])
			if unicode.IsSpace(r) {
				break
			}
			i += size
			cp++
		}
		tok := text[startByte:i]
		s := c.overlapping(start, cp)
		b = append(b, tok...)
		b = append(b, " -X- _ "...)
		switch {
		case s < 0:
			b = append(b, 'O')
		case s == prev:
			b = append(b, "I-"...)
			b = append(b, c.spans[s].tag...)
		default:
			b = append(b, "B-"...)
			b = append(b, c.spans[s].tag...)
		}
		b = append(b, '\n')
		prev = s
	}
	b = append(b, '\n')
	return c.emit(b)
}

// overlapping is the index of the first span (in start order) that overlaps
// code points [start, end), or -1. Tokens come in order, so spans that ended
// before a token are skipped for good.
func (c *conll) overlapping(start, end int) int {
	for c.lo < len(c.spans) && c.spans[c.lo].end <= start {
		c.lo++
	}
	for i := c.lo; i < len(c.spans); i++ {
		s := c.spans[i]
		if s.start >= end {
			break
		}
		if s.end > start {
			return i
		}
	}
	return -1
}

func (c *conll) Close() error {
	if c.closed {
		return errors.New("conll2003: closed twice")
	}
	if err := c.begin(); err != nil {
		return err
	}
	return c.finish(nil)
}
