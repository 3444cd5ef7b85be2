package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

// ErrorKind says what the worker should do about a failed call.
type ErrorKind int

const (
	// KindNone is the kind of a nil error.
	KindNone ErrorKind = iota
	// KindTransient: the network, a timeout, a 5xx or a garbled reply. Retry
	// with backoff (honouring RetryAfter when the provider sent one).
	KindTransient
	// KindRateLimited: a 429. Retry no earlier than RetryAfter.
	KindRateLimited
	// KindPermanent: the request can never succeed as configured (bad key,
	// unknown model, input too long, ...). Do not retry; store the reason.
	KindPermanent
	// KindRefusal: the model or the provider's content filter declined the
	// input. Not retried: the same input gets the same answer.
	KindRefusal
)

func (k ErrorKind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindTransient:
		return "transient"
	case KindRateLimited:
		return "rate_limited"
	case KindPermanent:
		return "permanent"
	case KindRefusal:
		return "refusal"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// Retryable reports whether a task that failed with this kind should run
// again.
func (k ErrorKind) Retryable() bool { return k == KindTransient || k == KindRateLimited }

// Sentinels for errors.Is; an *Error matches the one of its Kind.
var (
	ErrTransient   = errors.New("llm: transient failure")
	ErrRateLimited = errors.New("llm: rate limited")
	ErrPermanent   = errors.New("llm: permanent failure")
	ErrRefusal     = errors.New("llm: the model refused")
)

// Error is every failure of Client.Complete. Its text and fields are
// sanitised: the API key and anything that looks like a credential are
// replaced by [REDACTED], so Reason can be written to llm_runs.error and
// logged as is.
type Error struct {
	Kind ErrorKind
	// StatusCode is the HTTP status, 0 when no response arrived.
	StatusCode int
	// Code and Type are the provider's error code and type when it sent
	// OpenAI's error JSON ("context_length_exceeded", "invalid_request_error").
	Code string
	Type string
	// Reason is a sentence a person can act on.
	Reason string
	// RetryAfter is the provider's requested delay (Retry-After,
	// retry-after-ms or x-ratelimit-reset-*), 0 when it gave none.
	RetryAfter time.Duration
	// RateLimit holds the x-ratelimit-* headers of the failed response.
	RateLimit RateLimit

	// cause is only ever a context error: provider and transport errors are
	// not kept because their text can include an echoed key.
	cause error
}

func (e *Error) Error() string { return "llm: " + e.Reason }

// Unwrap exposes context.Canceled or context.DeadlineExceeded when the call
// ended because of its context.
func (e *Error) Unwrap() error { return e.cause }

// Is matches the sentinel of the error's kind.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrTransient:
		return e.Kind == KindTransient
	case ErrRateLimited:
		return e.Kind == KindRateLimited
	case ErrPermanent:
		return e.Kind == KindPermanent
	case ErrRefusal:
		return e.Kind == KindRefusal
	}
	return false
}

// Classify says what kind of failure err is and how long the provider asked
// us to wait. Errors from this package carry their kind; unsupported
// content and schema-invalid output are permanent; a bare context error is
// transient (the worker is shutting down or the task timed out); anything
// else is treated as transient so that asynq's retry limit, not a guess,
// decides when to give up.
func Classify(err error) (ErrorKind, time.Duration) {
	if err == nil {
		return KindNone, 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind, e.RetryAfter
	}
	var uc *UnsupportedContentError
	var oe *OutputError
	if errors.As(err, &uc) || errors.As(err, &oe) {
		return KindPermanent, 0
	}
	return KindTransient, 0
}

// IsRetryable reports whether err is worth another attempt.
func IsRetryable(err error) bool {
	k, _ := Classify(err)
	return k.Retryable()
}

// redactor removes the API key, and anything shaped like a credential, from
// text that came from the provider or the transport.
type redactor struct{ key string }

var (
	// A bearer token echoed back ("Authorization: Bearer sk-...").
	bearerRE = regexp.MustCompile(`(?i)(bearer\s+)[^\s"',;]+`)
	// api-key / api_key headers or fields echoed back.
	apiKeyRE = regexp.MustCompile(`(?i)(api[-_ ]?key["']?\s*[:=]\s*["']?)[^\s"',;]+`)
	// OpenAI-style keys, even partly masked ("sk-proj-****abcd").
	skRE = regexp.MustCompile(`\bsk-[A-Za-z0-9_\-*.]{4,}`)
)

// maxReasonText bounds provider text inside a reason: enough for OpenAI's
// longest error messages, short enough for a table cell.
const maxReasonText = 400

func (r redactor) clean(s string) string {
	if r.key != "" {
		s = strings.ReplaceAll(s, r.key, redacted)
	}
	s = bearerRE.ReplaceAllString(s, "${1}"+redacted)
	s = apiKeyRE.ReplaceAllString(s, "${1}"+redacted)
	s = skRE.ReplaceAllString(s, "sk-"+redacted)
	s = strings.Join(strings.Fields(s), " ")
	return truncateText(s, maxReasonText)
}

// truncateText cuts s to at most n bytes on a rune boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// failure is everything classifyCall needs to know about one call.
type failure struct {
	err       error
	status    int         // captured HTTP status, 0 if no response
	header    http.Header // captured response headers
	now       time.Time
	parentErr error         // ctx.Err() of the caller's context
	timeout   time.Duration // our per-call timeout
	model     string
	redact    *redactor
}

// classifyCall turns whatever go-openai or the transport returned into an
// *Error.
func classifyCall(f failure) *Error {
	e := &Error{RateLimit: ParseRateLimit(f.header)}
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(f.err, &apiErr):
		e.StatusCode = apiErr.HTTPStatusCode
		e.Code = f.redact.clean(codeString(apiErr.Code))
		e.Type = f.redact.clean(apiErr.Type)
		e.Kind, e.Reason = fromStatus(e.StatusCode, e.Code, e.Type, f.redact.clean(apiErr.Message))
	case errors.As(f.err, &reqErr):
		// A non-JSON error body (a proxy's HTML page, a plain-text 502).
		e.StatusCode = reqErr.HTTPStatusCode
		e.Kind, e.Reason = fromStatus(e.StatusCode, "", "", f.redact.clean(string(reqErr.Body)))
	case f.parentErr != nil:
		e.Kind, e.cause = KindTransient, f.parentErr
		e.Reason = "the call was cancelled before the provider answered: " + f.parentErr.Error()
	case errors.Is(f.err, context.DeadlineExceeded):
		e.Kind, e.cause = KindTransient, context.DeadlineExceeded
		e.Reason = fmt.Sprintf("the provider did not answer within %s", f.timeout)
	case f.status >= 200 && f.status < 300:
		// go-openai could not decode a success body.
		e.StatusCode = f.status
		e.Kind = KindTransient
		if errors.Is(f.err, io.EOF) {
			e.Reason = fmt.Sprintf("the provider sent an empty reply body (%d)", f.status)
		} else {
			e.Reason = fmt.Sprintf("the provider sent a malformed reply (%d): %s", f.status, f.redact.clean(f.err.Error()))
		}
	case isClientSideInvalid(f.err):
		e.Kind = KindPermanent
		e.Reason = fmt.Sprintf("the request is not valid for model %q: %s", f.model, f.redact.clean(f.err.Error()))
	default:
		e.Kind = KindTransient
		e.Reason = "could not reach the provider: " + f.redact.clean(transportText(f.err))
	}
	e.RetryAfter = retryAfter(f.header, e.StatusCode == http.StatusTooManyRequests, f.now)
	if e.Kind == KindRateLimited && e.RetryAfter > 0 {
		e.Reason = strings.TrimSuffix(e.Reason, ".") + fmt.Sprintf("; retry after %s", e.RetryAfter)
	}
	return e
}

// fromStatus maps an HTTP error status (plus OpenAI's error code) to a kind
// and a reason. msg is already sanitised.
func fromStatus(status int, code, typ, msg string) (ErrorKind, string) {
	detail := ""
	if msg != "" {
		detail = ": " + msg
	}
	label := fmt.Sprint(status)
	if code != "" {
		label += " " + code
	}
	switch {
	case status == http.StatusTooManyRequests && (code == "insufficient_quota" || typ == "insufficient_quota"):
		// OpenAI's 429 for an unpaid bill: waiting will not help.
		return KindPermanent, fmt.Sprintf("the provider reports the account is out of quota (%s): check billing for the key in %s", label, EnvAPIKey)
	case status == http.StatusTooManyRequests:
		return KindRateLimited, fmt.Sprintf("the provider is rate limiting requests (%s)%s", label, detail)
	case status == http.StatusUnauthorized:
		// The provider's message is left out on purpose: OpenAI quotes a
		// masked key in it.
		return KindPermanent, fmt.Sprintf("the provider rejected the API key (%s): check %s", label, EnvAPIKey)
	case status == http.StatusForbidden:
		return KindPermanent, fmt.Sprintf("the provider denied access (%s): the key in %s may lack access to this model or region%s", label, EnvAPIKey, detail)
	case status == http.StatusNotFound:
		return KindPermanent, fmt.Sprintf("the model or endpoint was not found (%s): check the project's model name and %s%s", label, EnvBaseURL, detail)
	case code == "context_length_exceeded" || code == "string_above_max_length":
		return KindPermanent, fmt.Sprintf("the input is too long for the model's context window (%s): lower the prompt budget or pick a model with a larger context%s", label, detail)
	case code == "content_filter" || code == "content_policy_violation":
		// Azure's prompt filter answers 400 content_filter.
		return KindRefusal, fmt.Sprintf("the provider's content filter rejected the input (%s)%s", label, detail)
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status == http.StatusTooEarly:
		return KindTransient, fmt.Sprintf("the provider asked us to try again (%s)%s", label, detail)
	case status == http.StatusRequestEntityTooLarge:
		return KindPermanent, fmt.Sprintf("the request is too large for the provider (%s): lower the prompt budget or image size limit%s", label, detail)
	case status >= 400 && status < 500:
		return KindPermanent, fmt.Sprintf("the provider rejected the request (%s)%s", label, detail)
	case status >= 500:
		return KindTransient, fmt.Sprintf("the provider failed (%s)%s", label, detail)
	}
	return KindTransient, fmt.Sprintf("the provider answered with unexpected status %s%s", label, detail)
}

func codeString(c any) string {
	switch v := c.(type) {
	case nil:
		return ""
	case string:
		return v
	case int:
		// go-openai decodes "code": null as the integer 0.
		if v == 0 {
			return ""
		}
		return fmt.Sprint(v)
	default:
		return fmt.Sprint(v)
	}
}

// isClientSideInvalid recognises go-openai's own request checks, which fail
// before anything is sent and would fail the same way every time.
func isClientSideInvalid(err error) bool {
	for _, target := range []error{
		openai.ErrChatCompletionInvalidModel,
		openai.ErrChatCompletionStreamNotSupported,
		openai.ErrContentFieldsMisused,
		openai.ErrReasoningModelMaxTokensDeprecated,
		openai.ErrReasoningModelLimitationsLogprobs,
		openai.ErrReasoningModelLimitationsOther,
		openai.ErrReasoningEffortUnsupported,
		openai.ErrReasoningSamplingUnsupported,
		openai.ErrReasoningToolsRequireResponses,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var me *json.MarshalerError
	var ue *json.UnsupportedValueError
	var ute *json.UnsupportedTypeError
	return errors.As(err, &me) || errors.As(err, &ue) || errors.As(err, &ute)
}

// transportText describes a network failure without the request URL,
// which is noise in a reason and could carry credentials in its userinfo.
func transportText(err error) string {
	var uErr *url.Error
	if errors.As(err, &uErr) && uErr.Err != nil {
		return uErr.Err.Error()
	}
	return err.Error()
}
