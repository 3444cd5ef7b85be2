package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Client calls one OpenAI-compatible chat-completion API. It is safe for
// concurrent use and holds no state between calls.
type Client struct {
	oa       *openai.Client
	baseURL  string // redacted, for String
	provider Provider
	timeout  time.Duration
	prices   Prices
	limits   Limits
	// redact is a pointer so that fmt, walking a Client's fields, prints
	// an address instead of the key it holds.
	redact    *redactor
	now       func() time.Time
	reasoning reasoningModels
}

// NewClient checks cfg and builds a Client. It does not contact the
// provider.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	var oc openai.ClientConfig
	switch cfg.provider() {
	case ProviderAzure, ProviderAzureAD:
		oc = openai.DefaultAzureConfig(cfg.APIKey, base)
		if cfg.provider() == ProviderAzureAD {
			oc.APIType = openai.APITypeAzureAD
		}
		oc.APIVersion = cfg.AzureAPIVersion
		if oc.APIVersion == "" {
			oc.APIVersion = DefaultAzureAPIVersion
		}
		// The project's model is the deployment name; go-openai's default
		// mapper would rewrite names containing "." or ":".
		oc.AzureModelMapperFunc = func(model string) string { return model }
	default:
		oc = openai.DefaultConfig(cfg.APIKey)
		oc.BaseURL = base
	}
	oc.OrgID = cfg.Organization
	oc.HTTPClient = newHTTPClient(cfg.HTTPClient)

	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Client{
		oa:        openai.NewClientWithConfig(oc),
		baseURL:   redactURL(base),
		provider:  cfg.provider(),
		timeout:   timeout,
		prices:    cfg.Prices,
		limits:    cfg.Prompt.withDefaults(),
		redact:    &redactor{key: cfg.APIKey},
		now:       now,
		reasoning: reasoningModels(slices.Clone(cfg.ReasoningModels)),
	}, nil
}

// String never includes the API key, so a Client can be printed with %v or
// %+v (fmt would otherwise walk its unexported fields).
func (c Client) String() string {
	return fmt.Sprintf("llm.Client{BaseURL:%s Provider:%s Timeout:%s}", c.baseURL, c.provider, c.timeout)
}

// GoString makes %#v as safe as %v.
func (c Client) GoString() string { return c.String() }

// LogValue makes slog print the same safe summary.
func (c Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("base_url", c.baseURL), slog.String("provider", string(c.provider)))
}

// Cost in US dollars of a call, from Config.Prices; 0 for unpriced models.
func (c *Client) Cost(model string, promptTokens, completionTokens int) float64 {
	return c.prices.Cost(model, promptTokens, completionTokens)
}

// Limits are the prompt limits this client builds prompts with.
func (c *Client) Limits() Limits { return c.limits }

// Request is one pre-annotation call, straight from the project's settings
// and the file version.
type Request struct {
	Model       string
	Temperature float64
	// MaxTokens bounds the reply (projects.llm_max_tokens).
	MaxTokens    int
	SystemPrompt string
	// Instructions is the project's requirements_text.
	Instructions string
	Input        Input
	// Schema is the annotation_schema; when set the reply is requested as
	// strict structured output (response_format json_schema).
	Schema json.RawMessage
	// Guide is trusted text on how to fill in Schema, put in the system
	// message before it (PromptSpec.Guide); part of the prompt hash.
	Guide string
	// SchemaName is the json_schema name sent to the provider
	// ([A-Za-z0-9_-], at most 64); "annotation" when empty.
	SchemaName string
	// Repair, when set, makes this the repair attempt (see WithRepair).
	Repair *Repair
}

// Repair is the invalid reply of the first attempt and why it was invalid.
type Repair struct {
	Reply string
	Err   error
}

// WithRepair returns the request for the one repair attempt after a reply
// failed ValidateOutput. It has the same cache key as r.
func (r Request) WithRepair(invalidReply string, validationErr error) Request {
	r.Repair = &Repair{Reply: invalidReply, Err: validationErr}
	return r
}

// PromptParams are the parts of r that PromptHash covers, with this
// client's limits.
func (c *Client) PromptParams(r Request) PromptParams {
	return PromptParams{
		SystemPrompt: r.SystemPrompt,
		Instructions: r.Instructions,
		Temperature:  r.Temperature,
		MaxTokens:    r.MaxTokens,
		Limits:       c.limits,
		Guide:        r.Guide,
	}
}

// CacheKey identifies an llm_run whose output can be reused.
type CacheKey struct {
	InputSHA256 string
	Model       string
	PromptHash  string
	SchemaHash  string
}

// String matches llm_runs.cache_key (input:model:prompt:schema).
func (k CacheKey) String() string {
	return k.InputSHA256 + ":" + k.Model + ":" + k.PromptHash + ":" + k.SchemaHash
}

// CacheKey computes the cache key of r for an input with the given SHA-256
// (hex, as measured by file:validate).
func (c *Client) CacheKey(inputSHA256 string, r Request) (CacheKey, error) {
	sh, err := SchemaHash(r.Schema)
	if err != nil {
		return CacheKey{}, err
	}
	return CacheKey{
		InputSHA256: strings.ToLower(inputSHA256),
		Model:       r.Model,
		PromptHash:  PromptHash(c.PromptParams(r)),
		SchemaHash:  sh,
	}, nil
}

// BuildPrompt builds the messages Complete would send for r (without the
// repair turn).
func (c *Client) BuildPrompt(r Request) (Prompt, error) {
	return BuildPrompt(PromptSpec{
		SystemPrompt: r.SystemPrompt,
		Instructions: r.Instructions,
		Schema:       r.Schema,
		Guide:        r.Guide,
		Input:        r.Input,
		Limits:       c.limits,
	})
}

// Response is a successful call.
type Response struct {
	// ID and Model are as reported by the provider (Model may be a dated
	// snapshot of the requested name).
	ID    string
	Model string
	// Content is the reply text; for a schema request, the JSON to validate.
	Content      string
	FinishReason string
	// Refusal is the model's refusal text; set only alongside a KindRefusal
	// error.
	Refusal          string
	PromptTokens     int
	CompletionTokens int
	TotalTokens      int
	// Latency is the wall time of the HTTP call.
	Latency   time.Duration
	RateLimit RateLimit
	// Cost in US dollars from the price table (0 when unpriced).
	Cost float64
	// InputTruncated is set when the text input was cut to the budget.
	InputTruncated bool
}

// Complete sends one chat-completion request and returns the reply. It
// never retries. Every error is an *Error except for unsupported input,
// which is an *UnsupportedContentError (errors.Is ErrUnsupportedContent)
// returned before anything is sent.
//
// On a refusal (the message's refusal field, or finish_reason
// content_filter) the Response is returned too, filled in, because the
// tokens were spent and belong on the llm_run row. A reply cut by
// max tokens (finish_reason "length") is not an error here; validating it
// against the schema will say what is wrong with it.
func (c *Client) Complete(ctx context.Context, req Request) (Response, error) {
	if strings.TrimSpace(req.Model) == "" {
		return Response{}, &Error{Kind: KindPermanent, Reason: "no model is configured for the project"}
	}
	if req.MaxTokens < 0 {
		return Response{}, &Error{Kind: KindPermanent, Reason: fmt.Sprintf("max tokens %d is negative", req.MaxTokens)}
	}
	prompt, err := c.BuildPrompt(req)
	if err != nil {
		if errors.Is(err, ErrUnsupportedContent) {
			return Response{}, err
		}
		return Response{}, &Error{Kind: KindPermanent, Reason: strings.TrimPrefix(err.Error(), "llm: ")}
	}
	if req.Repair != nil {
		prompt = RepairPrompt(prompt, req.Repair.Reply, req.Repair.Err)
	}
	oreq, err := chatRequest(req, prompt, c.reasoning.match(req.Model))
	if err != nil {
		return Response{}, &Error{Kind: KindPermanent, Reason: strings.TrimPrefix(err.Error(), "llm: ")}
	}

	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	callCtx, capt := withCapture(callCtx)

	start := time.Now()
	resp, err := c.oa.CreateChatCompletion(callCtx, oreq)
	latency := time.Since(start)
	status, header := capt.get()

	out := Response{
		Latency:        latency,
		RateLimit:      ParseRateLimit(header),
		InputTruncated: prompt.Truncated,
	}
	if err != nil {
		return out, classifyCall(failure{
			err:       err,
			status:    status,
			header:    header,
			now:       c.now(),
			parentErr: ctx.Err(),
			timeout:   c.timeout,
			model:     req.Model,
			redact:    c.redact,
		})
	}

	out.ID, out.Model = resp.ID, resp.Model
	out.PromptTokens = resp.Usage.PromptTokens
	out.CompletionTokens = resp.Usage.CompletionTokens
	out.TotalTokens = resp.Usage.TotalTokens
	billed := out.Model
	if billed == "" {
		billed = req.Model
	}
	out.Cost = c.prices.Cost(billed, out.PromptTokens, out.CompletionTokens)
	if len(resp.Choices) == 0 {
		return out, &Error{Kind: KindTransient, StatusCode: status, RateLimit: out.RateLimit,
			Reason: fmt.Sprintf("the provider sent a reply without choices (%d)", status)}
	}
	choice := resp.Choices[0]
	out.Content = choice.Message.Content
	out.FinishReason = string(choice.FinishReason)
	out.Refusal = c.redact.clean(choice.Message.Refusal)
	switch {
	case out.Refusal != "":
		return out, &Error{Kind: KindRefusal, StatusCode: status, RateLimit: out.RateLimit,
			Reason: "the model refused to annotate the input: " + out.Refusal}
	case choice.FinishReason == openai.FinishReasonContentFilter:
		return out, &Error{Kind: KindRefusal, StatusCode: status, RateLimit: out.RateLimit,
			Reason: "the provider's content filter stopped the reply (finish_reason content_filter)"}
	}
	return out, nil
}

// chatRequest maps a request and its prompt onto go-openai's wire type;
// reasoning says the model takes OpenAI's reasoning-model parameters.
func chatRequest(req Request, prompt Prompt, reasoning bool) (openai.ChatCompletionRequest, error) {
	oreq := openai.ChatCompletionRequest{
		Model:    req.Model,
		Messages: make([]openai.ChatCompletionMessage, len(prompt.Messages)),
	}
	for i, m := range prompt.Messages {
		oreq.Messages[i] = toOpenAI(m)
	}
	if reasoning {
		// OpenAI's reasoning models reject max_tokens and any temperature
		// but the default; sending the project's temperature would turn a
		// model switch into a permanent failure of every run.
		oreq.MaxCompletionTokens = req.MaxTokens
	} else {
		// max_tokens, deprecated by OpenAI in favour of max_completion_tokens,
		// is still the field older models and OpenAI-compatible servers
		// (LABELQ_LLM_BASE_URL may point at one) understand.
		oreq.MaxTokens = req.MaxTokens //nolint:staticcheck // SA1019: see above
		// go-openai omits a zero temperature (omitempty), and the API then
		// samples at 1. The smallest float32 is sent instead: greedy in
		// every implementation (go-openai issue #9).
		t := float32(req.Temperature)
		if t == 0 {
			t = math.SmallestNonzeroFloat32
		}
		oreq.Temperature = t
	}
	schema, err := canonicalJSON(req.Schema)
	if err != nil {
		return oreq, err
	}
	if schema != nil {
		oreq.ResponseFormat = &openai.ChatCompletionResponseFormat{
			Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{
				Name:   schemaName(req.SchemaName),
				Schema: json.RawMessage(schema),
				Strict: true,
			},
		}
	}
	return oreq, nil
}

func toOpenAI(m Message) openai.ChatCompletionMessage {
	if len(m.Parts) == 1 && m.Parts[0].ImageURL == "" {
		return openai.ChatCompletionMessage{Role: string(m.Role), Content: m.Parts[0].Text}
	}
	parts := make([]openai.ChatMessagePart, 0, len(m.Parts))
	for _, p := range m.Parts {
		if p.ImageURL != "" {
			parts = append(parts, openai.ChatMessagePart{
				Type:     openai.ChatMessagePartTypeImageURL,
				ImageURL: &openai.ChatMessageImageURL{URL: p.ImageURL, Detail: openai.ImageURLDetailAuto},
			})
			continue
		}
		parts = append(parts, openai.ChatMessagePart{Type: openai.ChatMessagePartTypeText, Text: p.Text})
	}
	return openai.ChatCompletionMessage{Role: string(m.Role), MultiContent: parts}
}

// isReasoningModel matches the model families go-openai's request validator
// treats as reasoning models, so both agree on which parameters to send.
func isReasoningModel(model string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5", "gpt-6"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// schemaName makes a json_schema name OpenAI accepts: ^[a-zA-Z0-9_-]{1,64}$.
func schemaName(name string) string {
	var sb strings.Builder
	for _, r := range name {
		if sb.Len() == 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	if sb.Len() == 0 {
		return "annotation"
	}
	return sb.String()
}
