package llm

import "strings"

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
		return Price{}, false
	}
	return p[best], true
}

// Cost in US dollars of one call; 0 for a model without a price (a local
// vLLM or Ollama model costs nothing per token).
func (p Prices) Cost(model string, promptTokens, completionTokens int) float64 {
	pr, ok := p.Lookup(model)
	if !ok {
		return 0
	}
	return (float64(promptTokens)*pr.InputPerMTok + float64(completionTokens)*pr.OutputPerMTok) / 1e6
}
