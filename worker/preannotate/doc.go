// Package preannotate is the file:preannotate worker: it sends a valid dataset
// version to an OpenAI-compatible model with the project's instructions and label
// schema, and stores the reply as a new llm_output file version, with tokens, latency
// and cost recorded, under shared rate limits and a content cache.
//
// One llm_runs row exists per (version, model, prompt hash, schema hash); the
// handler drives it to succeeded, failed or skipped and writes one event_log entry
// for the outcome. What makes it safe to run any task twice, or to cut it off at any
// line:
//
//   - A finished run (succeeded or skipped) ends the task before anything is
//     written or called, so a re-run changes no row.
//   - Identical content is paid for once. The cache key (input SHA-256, model,
//     prompt hash, schema hash) finds the run that paid (llm_runs_paid_cache_key
//     allows one per key), and its output is copied to the new version without a
//     call: duplicates (duplicate_of), the same bytes in another file, re-runs.
//     Two tasks for the same key at once are serialised by an exclusive lease in
//     Redis; the loser retries shortly and becomes a cache hit.
//   - The output object's key is a function of the version and the cache key, so
//     a retry after a crash overwrites the same object; the version, the run's
//     success and the event commit in one transaction.
//
// Every call goes through internal/ratelimit (requests and tokens per minute, calls
// in flight, shared by all worker processes) and, when the project has one, the
// daily token budget. A call reserves its prompt estimate plus llm_max_tokens and
// settles at what the reply reports it used, so the unused part goes back to every
// worker at once. A reply that wraps its one JSON value in a code fence or a
// sentence is stored unwrapped (llm_runs.output_unwrapped) without a repair call.
// The version carries its pre-annotation status and reason
// (file_versions.preannotation_status and _reason), moved in the same statement
// as its latest run; a failed run keeps the model's reply, cut to MaxRawOutput. Waiting is never failing: limits, 429s and a spent budget
// return queue.RetryAfter; 5xx, timeouts and garbled replies return a plain error
// (asynq's backoff with jitter); what can never succeed (401/403/404/400, a
// refusal, a reply that fails the schema after its one repair attempt) fails the
// run with the reason and ends the task with asynq.SkipRetry. Unsupported content
// is skipped, not failed.
package preannotate
