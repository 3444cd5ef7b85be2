package llm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/llm/llmtest"
)

// The test server refuses max_tokens and a temperature for reasoning models the
// way OpenAI does, so these prove the client sends each model family what it
// accepts, not merely what the client believes.
func TestMaxTokensOrMaxCompletionTokensPerModel(t *testing.T) {
	t.Parallel()
	srv := llmtest.New(t)
	c := newClient(t, srv)
	ctx := context.Background()

	for _, tc := range []struct {
		model     string
		reasoning bool
	}{
		{"gpt-4o-mini", false},
		{"gpt-4.1", false},
		{"o1", true},
		{"o3-mini", true},
		{"o4-mini-2025-04-16", true},
		{"gpt-5-mini", true},
	} {
		req := textRequest(labelSchema)
		req.Model = tc.model
		req.Temperature = 0.2
		_, err := c.Complete(ctx, req)
		require.NoError(t, err, tc.model)
		rec, _ := srv.LastRequest()
		require.Equal(t, 200, rec.Status, tc.model)
		if tc.reasoning {
			require.Nil(t, rec.MaxTokens, "%s: max_tokens is refused by reasoning models", tc.model)
			require.NotNil(t, rec.MaxCompletionTokens, tc.model)
			require.Equal(t, 256, *rec.MaxCompletionTokens)
			require.Nil(t, rec.Temperature, "%s: only the default temperature is allowed", tc.model)
		} else {
			require.NotNil(t, rec.MaxTokens, tc.model)
			require.Equal(t, 256, *rec.MaxTokens)
			require.Nil(t, rec.MaxCompletionTokens, tc.model)
			require.NotNil(t, rec.Temperature, tc.model)
			require.InDelta(t, 0.2, *rec.Temperature, 1e-6)
		}
	}
}

func TestReasoningModelsSettingCoversDeploymentNames(t *testing.T) {
	t.Parallel()
	// An Azure deployment or LiteLLM alias whose name does not say it serves a
	// reasoning model: the provider refuses max_tokens all the same.
	srv := llmtest.New(t, llmtest.WithReasoningModels("o1", "o3", "prod-reasoner"))
	ctx := context.Background()
	req := textRequest(labelSchema)
	req.Model = "prod-reasoner-eu"

	_, err := newClient(t, srv).Complete(ctx, req)
	var e *llm.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, llm.KindPermanent, e.Kind)
	require.Equal(t, 400, e.StatusCode)
	require.Equal(t, "unsupported_parameter", e.Code)
	require.Contains(t, e.Reason, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.")

	for _, names := range [][]string{{"prod-reasoner-eu"}, {"prod-*"}} {
		c := newClient(t, srv, func(cfg *llm.Config) { cfg.ReasoningModels = names })
		_, err = c.Complete(ctx, req)
		require.NoError(t, err, "%v", names)
		rec, _ := srv.LastRequest()
		require.Nil(t, rec.MaxTokens)
		require.Equal(t, 256, *rec.MaxCompletionTokens)
	}
	// An exact name does not stand for its prefix.
	_, err = newClient(t, srv, func(cfg *llm.Config) { cfg.ReasoningModels = []string{"prod-reasoner"} }).Complete(ctx, req)
	require.ErrorAs(t, err, &e)
	require.Equal(t, "unsupported_parameter", e.Code)
}

func TestParseReasoningModels(t *testing.T) {
	t.Parallel()
	got, err := llm.ParseReasoningModels(" prod-reasoner, my-o-* ,,")
	require.NoError(t, err)
	require.Equal(t, []string{"prod-reasoner", "my-o-*"}, got)
	got, err = llm.ParseReasoningModels("")
	require.NoError(t, err)
	require.Empty(t, got)
	for _, bad := range []string{"two words", "*", "a*b", "pre**"} {
		_, err := llm.ParseReasoningModels(bad)
		require.Error(t, err, bad)
	}
}
