// Package llm is labelq's side of an OpenAI-compatible chat-completion API
// (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM) for the file:preannotate
// worker. It needs no database and no object store:
//
//   - [Client.Complete] sends exactly one request and never retries by
//     itself, because asynq owns retries and llm_runs.attempts must count
//     real calls;
//   - [Classify] turns any error into an [ErrorKind] the worker can act on
//     (retry after a delay, retry with backoff, fail for good, or record a
//     refusal) with a reason that is safe to store on a row;
//   - [BuildPrompt] is the pure prompt builder; [PromptHash] and [SchemaHash]
//     are two of the four parts of the llm_runs cache key;
//   - [CheckReply] checks the model's JSON against the project's annotation
//     schema, after [UnwrapJSON] has taken the one value out of a Markdown code
//     fence or a sentence when the model wrapped it (open models do, when no
//     guided decoding holds them to the schema); [RepairPrompt] builds the
//     single repair attempt for a reply still invalid after that;
//   - OpenAI's reasoning models (o1, o3, o4, gpt-5, and the names in
//     [Config.ReasoningModels]) are sent max_completion_tokens and no
//     temperature, every other model max_tokens and the project's temperature.
//
// The API key never leaves the request header: [Config] redacts it in every
// printed or logged form, and errors are rebuilt from sanitised provider
// fields instead of wrapping the provider library's errors, whose text can
// carry a response body that echoes the key.
//
// # Cache key
//
// llm_runs are cached on (input SHA-256, model, prompt hash, schema hash):
//
//   - input SHA-256 is the file version's measured checksum (computed by
//     file:validate, not here);
//   - model is the model (or Azure deployment) name as configured on the
//     project;
//   - prompt hash is [PromptHash]: see [PromptParams] for its exact content,
//     which includes the request's guide (the label config's controls and
//     labels, when pre-annotation derives the schema from one);
//   - schema hash is [SchemaHash]: SHA-256 of the canonical schema JSON, or
//     "" when the project has no annotation schema.
//
// Anything that changes what is sent to the model must change one of these,
// which is why the prompt builder carries a version ([PromptBuilderVersion])
// that is part of the prompt hash.
package llm
