package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/llm/llmtest"
)

// The shape of the file:preannotate handler's model call. The fake server
// stands in for LABELQ_LLM_BASE_URL here; everything else is what the
// worker does.
func ExampleClient_Complete() {
	srv := llmtest.NewServer(llmtest.Config{APIKey: "sk-example"})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			panic(err)
		}
	}()

	client, err := llm.NewClient(llm.Config{
		BaseURL: srv.BaseURL(), // os.Getenv(llm.EnvBaseURL)
		APIKey:  "sk-example",  // os.Getenv(llm.EnvAPIKey)
		Timeout: time.Minute,
		Prices:  llm.Prices{"gpt-4o-mini": {InputPerMTok: 0.15, OutputPerMTok: 0.60}},
	})
	if err != nil {
		panic(err)
	}

	// From the projects row and the file version.
	req := llm.Request{
		Model:        "gpt-4o-mini",
		Temperature:  0,
		MaxTokens:    1024,
		SystemPrompt: "",
		Instructions: "Label the sentiment of the review.",
		Input:        llm.Input{Name: "review.txt", ContentType: "text/plain", Data: []byte("Great value.")},
		Schema:       json.RawMessage(`{"type":"object","properties":{"label":{"type":"string","enum":["positive","negative"]}},"required":["label"],"additionalProperties":false}`),
	}

	// Look the key up in llm_runs before paying for a call.
	key, err := client.CacheKey("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", req)
	if err != nil {
		panic(err) // the schema is not JSON: fail the run
	}
	_ = key.String() // = llm_runs.cache_key

	ctx := context.Background()
	resp, err := client.Complete(ctx, req)
	if err == nil {
		if verr := llm.ValidateOutput(req.Schema, resp.Content); verr != nil {
			// One repair attempt; a second invalid reply fails the run.
			resp, err = client.Complete(ctx, req.WithRepair(resp.Content, verr))
			if err == nil {
				err = llm.ValidateOutput(req.Schema, resp.Content)
			}
		}
	}
	kind, retryAfter := llm.Classify(err)
	switch {
	case err == nil:
		fmt.Println("store:", resp.Content, resp.FinishReason)
	case errors.Is(err, llm.ErrUnsupportedContent):
		fmt.Println("run skipped:", err) // no retry
	case kind == llm.KindRateLimited, kind == llm.KindTransient:
		fmt.Println("retry after", retryAfter, err) // return err; asynq RetryDelayFunc uses retryAfter
	default: // KindPermanent, KindRefusal
		fmt.Println("run failed:", err) // wrap asynq.SkipRetry; store err on the row
	}
	// Output: store: {"label":"positive"} stop
}
