package llm

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// AnyModel as a price table entry's name allows (and prices) every model not
// listed otherwise: "*=0/0" for a local endpoint whose models cost nothing.
const AnyModel = "*"

// Price is what a model costs, in US dollars per one million tokens.
type Price struct {
	InputPerMTok  float64 `json:"input_per_mtok"`
	OutputPerMTok float64 `json:"output_per_mtok"`
}

// Prices maps a model name, or a model name prefix, to its price.
type Prices map[string]Price

// Lookup finds the price of model: an exact entry wins, otherwise the
// longest entry that is a prefix of model, so that one "gpt-4o-mini" entry
// also prices the dated snapshots ("gpt-4o-mini-2024-07-18") providers echo
// back.
func (p Prices) Lookup(model string) (Price, bool) {
	if pr, ok := p[model]; ok {
		return pr, true
	}
	best, found := "", false
	for name := range p {
		if name != "" && strings.HasPrefix(model, name) && len(name) > len(best) {
			best, found = name, true
		}
	}
	if !found {
		pr, ok := p[AnyModel]
		return pr, ok
	}
	return p[best], true
}

// Allows reports whether a project may use model: the price table is the
// operator's allow-list. Only an exact entry (or AnyModel) allows a model; the
// prefix rule of Lookup is for the dated names a provider echoes back, and
// would otherwise let "gpt-4o" admit every "gpt-4o-…" model at gpt-4o's price.
func (p Prices) Allows(model string) bool {
	if model == "" {
		return false
	}
	_, exact := p[model]
	_, wildcard := p[AnyModel]
	return exact || wildcard
}

// Models lists the table's model names, sorted, for messages.
func (p Prices) Models() []string {
	names := make([]string, 0, len(p))
	for name := range p {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Cost in US dollars of one call; 0 for a model without a price (the API
// refuses such models, see Allows, but a project may predate the table).
func (p Prices) Cost(model string, promptTokens, completionTokens int) float64 {
	pr, ok := p.Lookup(model)
	if !ok {
		return 0
	}
	return (float64(promptTokens)*pr.InputPerMTok + float64(completionTokens)*pr.OutputPerMTok) / 1e6
}

// ParsePrices reads a price table written as LABELQ_LLM_PRICES takes it: entries
// separated by commas, each model=input/output in US dollars per million tokens,
// e.g. "gpt-4o-mini=0.15/0.60,gpt-4o=2.50/10". Spaces around parts are ignored;
// an empty string is an empty table.
func ParsePrices(s string) (Prices, error) {
	p := Prices{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		model, price, ok := strings.Cut(entry, "=")
		model = strings.TrimSpace(model)
		in, out, ok2 := strings.Cut(price, "/")
		if !ok || !ok2 || model == "" {
			return nil, fmt.Errorf("price entry %q: want model=input/output in USD per million tokens, e.g. gpt-4o-mini=0.15/0.60", entry)
		}
		var pr Price
		for _, f := range []struct {
			dst  *float64
			text string
			what string
		}{{&pr.InputPerMTok, in, "input"}, {&pr.OutputPerMTok, out, "output"}} {
			v, err := strconv.ParseFloat(strings.TrimSpace(f.text), 64)
			if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("price entry %q: the %s price %q is not a non-negative number of USD per million tokens", entry, f.what, strings.TrimSpace(f.text))
			}
			*f.dst = v
		}
		if _, dup := p[model]; dup {
			return nil, fmt.Errorf("price entry %q: model %q is priced twice", entry, model)
		}
		p[model] = pr
	}
	return p, nil
}
