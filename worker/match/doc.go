// Package match is the project:match worker: it loads a project's open annotation
// jobs and candidate people in one snapshot, computes the optimal assignment under
// the hard rules (internal/matching), and writes the assignments with their scores.
package match
