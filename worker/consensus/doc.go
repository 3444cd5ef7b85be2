// Package consensus is the project:consensus worker: it measures how a
// project's annotators agree and writes each job's consensus.
//
// A run reads every job of the project with two or more submitted copies
// (overlap), each copy's result read through its storage and checked against
// the checksum validation recorded and the label config. Then, per choices
// control of the config, over the whole project:
//
//   - Cohen's κ when the control has exactly two annotators, Fleiss' κ when
//     every job has the same number of answers, Krippendorff's α (nominal)
//     always (it allows missing answers), and the annotator × annotator
//     matrix of observed agreement and Cohen's κ over the jobs both did;
//   - each job's label by majority vote and by Dawid–Skene EM, the latter
//     estimating every annotator's confusion matrix over the project.
//
// Per job, the agreement is the mean score of every two copies against each
// other (internal/quality.Score, every control), and the consensus result is
// the Dawid–Skene label of each choices control plus, for the other controls
// (boxes, polygons, spans, text), the regions of the medoid copy: the one that
// agrees most with the others. The consensus is written as a version of the
// job's "<file>.consensus.json" annotation_results file (valid at birth,
// generation_method consensus; an unchanged consensus writes no new version)
// and recorded in consensus_results; the project's report goes to
// project_agreement (GET /v1/projects/{id}/agreement). Exports pack the
// consensus versions with include_consensus.
//
// A copy that cannot be read as it is (changed since validation, not fitting
// the label config) is left out and counted in the report. A project without a
// label config fails the task without retries.
package consensus
