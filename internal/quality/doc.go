// Package quality measures annotation quality: how well a result matches a
// gold answer or another annotator's result, how much annotators agree, and
// what the consensus label is. It is the pure core of job:score and the
// quality report (worker/score does the I/O); nothing here reads or writes
// anything.
//
// # Scoring a result
//
// [Score] compares two Label Studio results ([labelconfig.Region] lists)
// control by control of the project's label config and returns a
// JSON-serialisable [Result]: a score in [0, 1], the name of the metric it
// is, and each control's detail. Per control type:
//
//   - choices: accuracy (single choice: same choice or not) or the Jaccard
//     index of the choice sets (multiple);
//   - rectanglelabels and polygonlabels: boxes or polygons matched
//     one-to-one by IoU with the exact assignment of internal/matching
//     (same labels, IoU ≥ Options.IoUThreshold, maximum total IoU), then
//     precision, recall and F1, and the mean IoU of the matched pairs
//     ([BoxIoU], [PolygonIoU]);
//   - keypointlabels: the same with distance: points with the same labels
//     within Options.KeypointTolerance of the image diagonal;
//   - labels: span F1, exact (same start, end, labels) and overlapping (same
//     labels, overlapping ranges, one-to-one) ([SpanF1]);
//   - textarea: 1 − normalised Levenshtein distance over code points
//     ([TextSimilarity]).
//
// The result's score is the mean of the primary metric of every control
// either result uses (listed in [ControlScore]); nothing against nothing is
// 1, something against nothing 0, and no value is ever NaN or infinite.
//
// # Agreement
//
// [CohenKappa] and [CohenKappaTable] (two raters), [FleissKappa] (a fixed
// number of raters per item), [KrippendorffAlpha] (any raters, missing
// values, nominal or interval data) and the annotator × annotator
// [Ratings.PairwiseAgreement] (observed agreement and Cohen's κ per pair).
// [NewRatings] arranges nominal answers (an annotator's choice on a job) as
// the input of all of them. Where a coefficient is 0/0 because every rating
// is the same, it is reported as 1 and marked Degenerate (agreement.go).
//
// # Consensus
//
// [MajorityVote] and [DawidSkene] estimate each item's true label from
// several annotators' labels ([NewVoteMatrix]; [Ratings.Votes] gives the
// votes).
package quality
