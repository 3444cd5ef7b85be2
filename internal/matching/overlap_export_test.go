package matching

import "context"

// SolvePerJob is Solve on the uncompressed network: every job in a class of
// its own from the first round, so no relaxation is involved and no flow
// needs expanding. Tests compare Solve's optimum against it.
func SolvePerJob(ctx context.Context, jobs []Job, candidates []Candidate, opts Options) (Result, error) {
	return solve(ctx, modeAnnotators, jobs, candidates, opts, true)
}
