// Package score is the job:score worker: it scores one submission (an
// annotator's result for a job, a submissions row) and feeds the score back
// into matching.
//
// A gold submission is scored against the job's gold answer, which only this
// worker reads (the API's database role has no grant on gold_answers). A peer
// submission is scored against each other annotator's submitted copy of the job
// (overlap), the mean of those scores being its score. The metrics are
// internal/quality's, per control of the project's label config.
//
// The row moves queued → processing (one short transaction, so the API shows
// the work in progress) → completed with its score, metric, per-control detail
// and the annotator's rank on the project's leaderboard, or failed with a reason
// when the result cannot be scored (not Label Studio JSON, does not fit the
// label config, the gold answer was removed): those are not retried. Storage and
// database errors are, and the reconciler re-queues a submission whose task was
// lost.
//
// After a scored gold submission the annotator's qa_approval_rate becomes the
// posterior mean of the project's Beta(α, β) prior updated with their passes and
// failures at the project's pass threshold, (α + passes) / (α + β + passes +
// failures), and skill_score their mean gold score, in the same transaction,
// with a quality_updated event on the user saying which submission set them. The
// platform may set both by hand (PATCH /v1/users/{id}); the last writer wins.
package score
