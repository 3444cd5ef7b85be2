// Package matching decides who works on which annotation job: the pure core
// of the project:match task. It takes plain values (open jobs, candidate
// users, the project's minimum proficiency) and returns assignments plus a
// reason for every job it leaves open. It does no I/O and keeps no state; the
// worker around it reads the rows, calls Solve (and SolveReviewers when the
// project wants reviewers) and writes the result. JobRuleBreach applies the
// same rules on a job's attributes to one person already holding the job, for
// the re-check after the job changed (rules.go).
//
// # Rules
//
// A user may take a job only when all of these hold:
//
//  1. language: if the job has a language, the user's proficiency in it is at
//     least Options.MinProficiency (default 3.0 of 5);
//  2. role conflict: in one project a person is an annotator or a
//     reviewer/QC, never both (Candidate.ReviewsInProject blocks annotating,
//     Candidate.AnnotatesInProject blocks reviewing);
//  3. the user is not one of the job's previous annotators (and, for
//     reviewers, not the job's own annotator);
//  4. capacity: the user gets at most Candidate.Remaining jobs in the run;
//  5. the user has the right role, is active and has availability windows.
//
// Each job gets at most one user.
//
// # Objective
//
// The result maximises the total score exactly (a maximum-weight
// b-matching, not a greedy approximation), where
//
//	score(job, user) = weight(priority) × (0.4·proficiency/5 + 0.3·skill_score + 0.3·qa_approval_rate)
//
// with weight 1, 2, 3 for low, medium, high; proficiency is the user's
// proficiency in the job's language, or their best language when the job has
// none; missing values count as 0. Inputs are quantised to 1e-6 and scores
// are then exact integers (units of 1e-8), see cost.go.
//
// Among all assignments with the maximum total score the solver returns one
// that, in this order of precedence,
//
//  1. assigns the most jobs: a legal pair with score 0 is still assigned,
//     since it costs the objective nothing and an open job is worse for the
//     project manager than one with a weak match. Consequently a job is left
//     open only when everyone who could take it is out of capacity;
//  2. prefers earlier due dates (dated jobs before undated ones, then lower
//     job id): the sum of the assigned jobs' due ranks is minimal, so when a
//     class of equal jobs cannot all be served, the earliest-due ones are;
//  3. prefers less loaded users: the k-th job a user receives in this run
//     costs Load+k, and the sum of these is minimal, which spreads work over
//     equally good people;
//  4. prefers lower user ids.
//
// These are strict lexicographic levels: no amount of a lower level can
// outweigh one unit of a higher one. Which of two interchangeable jobs (same
// language, priority and exclusions) goes to which of the chosen users does
// not change any level; the solver gives the earliest-due one to the
// best-scoring user. The output depends only on the input's content, not on
// the order of its slices.
//
// # Algorithm
//
// The score is weight(job) × quality(user, language(job)), so jobs that share
// language and priority are interchangeable. They are compressed into
// classes and the problem becomes a transportation problem from a few
// classes to the users, solved exactly as a min-cost circulation by the
// primal network simplex method (simplex.go):
//
//	source ─(one arc per job, due rank)→ class ─(−score)→ user ─(one arc per capacity unit, Load+k)→ sink ─→ source
//
// Jobs with previous annotators would each need a class of their own (an arc
// to nearly every user). Instead they first join their class as if
// unrestricted, which is a relaxation; when the optimum can be realised
// without giving any of them to an excluded person, which is the usual case,
// it is optimal for the real problem too. Otherwise the jobs that could not
// be placed get classes of their own and the problem is solved again, all of
// them after three such rounds (see solveRound).
//
// With C classes, U users and n jobs the network has C+U+3 nodes and
// n + C·U + Σ capacity arcs. A pivot prices a few blocks of about √arcs arcs
// and walks one cycle and one subtree of the spanning tree (at most C+U
// nodes). Network simplex has no useful polynomial bound; in practice the
// pivots stay a small multiple of the assigned jobs, and project-sized
// backlogs solve well within a scheduling pass, in memory proportional to
// the arcs: BenchmarkSolve5000x500 and BenchmarkSolve20000x2000 (make bench)
// report solve_s and pivots.
package matching
