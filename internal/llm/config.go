package llm

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Environment variable names the operator sets; error reasons name them so
// that the person reading a failed run knows which knob to turn.
const (
	EnvAPIKey  = "LABELQ_LLM_API_KEY"
	EnvBaseURL = "LABELQ_LLM_BASE_URL"
)

// DefaultTimeout bounds one chat-completion call when Config.Timeout is zero.
// Structured pre-annotation of a large input can take a minute on a busy
// provider; two minutes keeps a stuck call from holding a worker slot for
// the whole task timeout.
const DefaultTimeout = 2 * time.Minute

// Provider selects the authentication and URL scheme of the base URL.
type Provider string

const (
	// ProviderOpenAI is OpenAI and every server that copies its API (vLLM,
	// Ollama's /v1, LiteLLM, ...): Authorization: Bearer <key>.
	ProviderOpenAI Provider = "openai"
	// ProviderAzure is Azure OpenAI with an api-key header. The model name
	// of a request is used as the deployment name, unchanged.
	ProviderAzure Provider = "azure"
	// ProviderAzureAD is Azure OpenAI with an Entra ID bearer token in APIKey.
	ProviderAzureAD Provider = "azure_ad"
)

// DefaultAzureAPIVersion is the first GA Azure OpenAI API version that
// accepts response_format json_schema (structured outputs).
const DefaultAzureAPIVersion = "2024-10-21"

// redacted replaces secrets wherever they would otherwise be printed.
const redacted = "[REDACTED]"

// Config configures a Client. The zero value of every optional field is a
// working default.
type Config struct {
	// BaseURL of the OpenAI-compatible API including its version prefix,
	// e.g. https://api.openai.com/v1 or http://localhost:11434/v1. For Azure
	// it is the resource endpoint, https://NAME.openai.azure.com.
	BaseURL string
	// APIKey is sent as a bearer token (or api-key header for Azure). It is
	// redacted from every String, GoString, LogValue and MarshalJSON of
	// Config and from every error this package returns.
	APIKey string
	// Timeout bounds one Complete call; DefaultTimeout when zero.
	Timeout time.Duration
	// HTTPClient, when set, is copied (never modified) and its Transport
	// wrapped to capture response headers; nil uses a private clone of
	// http.DefaultTransport.
	HTTPClient *http.Client
	// Organization is sent as OpenAI-Organization when set.
	Organization string
	// Provider defaults to ProviderOpenAI.
	Provider Provider
	// AzureAPIVersion is the api-version query parameter for Azure
	// providers; DefaultAzureAPIVersion when empty.
	AzureAPIVersion string
	// Prices is the optional per-model price table used by Client.Cost.
	Prices Prices
	// Prompt limits for BuildPrompt; zero fields take the defaults.
	Prompt Limits
	// Now is the clock used to turn a Retry-After HTTP date into a delay;
	// time.Now when nil.
	Now func() time.Time
	// ReasoningModels are model names sent the way OpenAI's reasoning models
	// want, besides the families that always are (o1, o3, o4, gpt-5, gpt-6):
	// max_completion_tokens instead of max_tokens, and no temperature. A name
	// ending in * is a prefix. For deployments and proxy aliases whose names do
	// not say what model they serve (an Azure deployment "prod-reasoner", a
	// LiteLLM alias). See ParseReasoningModels.
	ReasoningModels []string
}

// EnvReasoningModels is the setting Config.ReasoningModels is read from.
const EnvReasoningModels = "LABELQ_LLM_REASONING_MODELS"

// ParseReasoningModels reads a comma-separated list of model names and
// prefixes ("prod-reasoner,my-o-*"), each without spaces, * only at the end.
func ParseReasoningModels(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.ContainsAny(f, " \t") || strings.Contains(strings.TrimSuffix(f, "*"), "*") || f == "*" {
			return nil, fmt.Errorf("llm: reasoning model %q: want a model name, or a prefix ending in *", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// reasoningModels matches model names against the built-in families and the
// configured names and prefixes.
type reasoningModels []string

func (r reasoningModels) match(model string) bool {
	if isReasoningModel(model) {
		return true
	}
	for _, m := range r {
		if p, ok := strings.CutSuffix(m, "*"); ok && strings.HasPrefix(model, p) || m == model {
			return true
		}
	}
	return false
}

// String redacts the API key, so that %v and %+v of a Config are safe to log.
func (c Config) String() string {
	return fmt.Sprintf("llm.Config{BaseURL:%s Provider:%s APIKey:%s Organization:%s Timeout:%s AzureAPIVersion:%s Prices:%d models}",
		redactURL(c.BaseURL), c.provider(), redactKey(c.APIKey), c.Organization, c.Timeout, c.AzureAPIVersion, len(c.Prices))
}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog print a redacted Config.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", redactURL(c.BaseURL)),
		slog.String("provider", string(c.provider())),
		slog.String("api_key", redactKey(c.APIKey)),
		slog.String("organization", c.Organization),
		slog.Duration("timeout", c.Timeout),
	)
}

// MarshalJSON redacts the API key, because configuration structs end up in
// JSON debug dumps more often than anyone plans for.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		BaseURL         string        `json:"base_url"`
		APIKey          string        `json:"api_key"`
		Timeout         time.Duration `json:"timeout"`
		Organization    string        `json:"organization,omitempty"`
		Provider        Provider      `json:"provider"`
		AzureAPIVersion string        `json:"azure_api_version,omitempty"`
		Prices          Prices        `json:"prices,omitempty"`
		Prompt          Limits        `json:"prompt"`
	}{redactURL(c.BaseURL), redactKey(c.APIKey), c.Timeout, c.Organization, c.provider(), c.AzureAPIVersion, c.Prices, c.Prompt})
}

func (c Config) provider() Provider {
	if c.Provider == "" {
		return ProviderOpenAI
	}
	return c.Provider
}

func redactKey(k string) string {
	if k == "" {
		return ""
	}
	return redacted
}

// redactURL hides a password embedded in the base URL (LiteLLM proxies are
// sometimes configured as https://user:secret@host/v1).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func (c Config) validate() error {
	if strings.TrimSpace(c.BaseURL) == "" {
		return fmt.Errorf("llm: no base URL configured: set %s", EnvBaseURL)
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("llm: base URL %q is not an http(s) URL: check %s", redactURL(c.BaseURL), EnvBaseURL)
	}
	switch c.provider() {
	case ProviderOpenAI, ProviderAzure, ProviderAzureAD:
	default:
		return fmt.Errorf("llm: unknown provider %q (want %q, %q or %q)", c.Provider, ProviderOpenAI, ProviderAzure, ProviderAzureAD)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("llm: negative timeout %s", c.Timeout)
	}
	return nil
}
