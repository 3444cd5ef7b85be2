// Package preannotate is the file:preannotate worker: it sends a valid dataset
// version to an OpenAI-compatible model with the project's instructions and label
// schema, and stores the reply as a new llm_output file version, with tokens, latency
// and cost recorded, under shared rate limits and a content cache.
//
// # Label configs
//
// A project with a label config (projects.label_config) and no hand-written
// annotation_schema gets its schema derived from the config
// (labelconfig.Config.OutputSchema: boxes, polygons and points with a label from
// the list and a score, spans with their quote and code-point offsets, choices,
// free text), and a bounded guide in the system message naming each control, its
// object and its labels. A hand-written annotation_schema wins over the config:
// it was written on purpose, and its replies are stored as they came, as before.
// The model's answer is stored as a Label Studio prediction,
//
//	{"model_version": "<project's model>", "score": <mean of the regions' scores>, "result": [regions]}
//
// (score left out when no region has one), the regions built by
// labelconfig.Config.ToRegions: spans are checked against the text the model was
// shown, an offset that does not select its quote is repaired from the quote, and a
// quote not in the text (or a box past the edge, a label not in the list) is
// dropped. Regions on an image carry original_width and original_height, the image
// facts' displayed size (width and height swapped for EXIF orientations 5–8). The
// output version's llm_params say output_format "label_studio_prediction" with the
// counts (regions, regions_repaired, regions_dropped), which the event and the
// preannotation.succeeded webhook carry too. The derived schema is in the schema
// hash and the guide in the prompt hash, so a changed config never reuses an answer
// to the old one.
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
