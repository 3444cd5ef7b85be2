// Package matching decides who works on which annotation job: the pure core
// of the project:match task. It takes plain values (open jobs with the copies
// each still needs, candidate users, the project's minimum proficiency) and
// returns assignments plus a reason for every job it leaves copies open on.
// It does no I/O and keeps no state; the worker around it reads the rows,
// calls Solve (and SolveReviewers when the project wants reviewers) and
// writes the result. JobRuleBreach applies the same rules on a job's
// attributes to one person already holding the job, for the re-check after
// the job changed (rules.go).
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
//  3. the user is not one of the job's previous annotators, does not hold
//     or did not finish a copy of it already (Job.CurrentAnnotators), and,
//     for reviewers, is not the job's own annotator;
//  4. capacity: the user gets at most Candidate.Remaining jobs in the run;
//  5. the user has the right role, is active and has availability windows;
//  6. nobody twice on one job: a job gets at most Job.Need users (at least
//     one), all different.
//
// # Overlap
//
// A project's overlap is how many different annotators annotate each job,
// each their own copy. The solver does not read the setting: the worker
// passes, per job, Need = overlap − the job's live and completed annotator
// copies, and the people holding those copies as CurrentAnnotators. A copy
// revoked after a run therefore comes back as one more copy needed, while
// the other copies stay where they are: its holder drops out of
// CurrentAnnotators and, having revoked it themselves, joins
// PreviousAnnotators, so the next run gives the copy to someone else (a copy
// labelq revoked for a broken rule is kept from its holder by the rule). A
// job whose copies are all live or done is not passed at all. Need 0 and 1
// mean the same, one person, which is all there is without overlap: for such
// input the network, the pivots and the result are exactly those of the
// solver before overlap existed.
//
// Overlap is for annotators only. SolveReviewers gives a job one reviewer
// and rejects a Need above 1; it excludes CurrentAnnotators as it excludes
// AnnotatorID: nobody reviews a copy they annotated.
//
// # Objective
//
// The result maximises the total score exactly (a maximum-weight
// b-matching with job capacities Need and at most one copy per job and user,
// not a greedy approximation), where every copy given scores
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
//  1. assigns the most copies (jobs, without overlap): a legal pair with
//     score 0 is still assigned, since it costs the objective nothing and an
//     open copy is worse for the project manager than one with a weak match.
//     Consequently a copy is left open only when everyone who could take it
//     is out of capacity (capacity_exhausted) or there is nobody left who
//     may (all_conflict: with overlap, when fewer people qualify than the
//     job needs);
//  2. prefers earlier due dates (dated jobs before undated ones, then lower
//     job id): the sum of the assigned copies' due ranks is minimal, so when
//     a class of equal jobs cannot all be served, the earliest-due ones are,
//     and with overlap they get all their copies first as far as different
//     people allow;
//  3. prefers less loaded users: the k-th copy a user receives in this run
//     costs Load+k, and the sum of these is minimal, which spreads work over
//     equally good people;
//  4. prefers lower user ids.
//
// These are strict lexicographic levels: no amount of a lower level can
// outweigh one unit of a higher one. Which of two interchangeable jobs (same
// language, priority and exclusions) goes to which of the chosen users does
// not change any level; without overlap the solver gives the earliest-due
// one to the best-scoring user. The output depends only on the input's
// content, not on the order of its slices.
//
// # Algorithm
//
// The score is weight(job) × quality(user, language(job)), so jobs that share
// language and priority are interchangeable. They are compressed into
// classes and the problem becomes a transportation problem from a few
// classes to the users, solved exactly as a min-cost circulation by the
// primal network simplex method (simplex.go):
//
//	source ─(one arc per job, capacity its copies, due rank)→ class ─(−score, capacity ≤ the class's jobs)→ user ─(one arc per capacity unit, Load+k)→ sink ─→ source
//
// Jobs with previous or current annotators would each need a class of their
// own (an arc to nearly every user). Instead they first join their class as
// if unrestricted, which is a relaxation; when the optimum can be realised
// without giving any of them to an excluded person, which is the usual case,
// it is optimal for the real problem too. Otherwise the jobs that could not
// be placed get classes of their own and the problem is solved again, all of
// them after three such rounds (see solveRound).
//
// Overlap is relaxed the same way. Every true assignment is a flow of the
// network with the same cost vector: a job's copies go on its source arc
// (capacity: its Need, and no more than the people who may take it), a
// user's jobs of the class on the class arc (no more than the class has
// jobs, since nobody takes one twice). But a class node only knows how many
// copies each job gets (x_j) and how many each user takes (f_u), not who
// takes which, and not every flow is an assignment: one user sending two
// copies to a class whose first job takes both would annotate that job
// twice. The flow is an assignment exactly when a 0/1 jobs × users matrix
// with row sums x and column sums f (and no 1 on an excluded pair) exists,
// and every such matrix has the flow's cost vector, so the relaxed optimum
// is then optimal for the real problem. placeCopies builds one as
// Havel–Hakimi does, each job taking the users with the most copies left to
// give, which succeeds whenever a matrix exists and no exclusion is involved
// (Gale–Ryser), and repairs exclusions by augmenting paths. When no matrix
// exists the jobs left short get a class of their own, whose user arcs have
// capacity 1, and so do, when that is cheap or the rounds go on, all jobs of
// several copies in the failing class; the problem is solved again. Each
// failing round takes such jobs out of classes for good, so the rounds end,
// at the latest with the exact uncompressed network for the classes that
// failed (see solveRound). Usually a class sends its copies to many people
// and one round suffices (BenchmarkMatchOverlap reports rounds); a class
// that fails typically has few people, which makes isolating its jobs
// cheap. Uncompressed, the whole problem would be far larger (an arc per
// job and person: about 20 times the solve time for 5,000 jobs × 500
// annotators with overlap 3). Tests compare small instances with brute
// force and larger ones with that uncompressed network.
//
// With C classes, U users and n jobs the network has C+U+3 nodes and
// n + C·U + Σ capacity arcs. A pivot prices a few blocks of about √arcs arcs
// and walks one cycle and one subtree of the spanning tree (at most C+U
// nodes). Network simplex has no useful polynomial bound; in practice the
// pivots stay a small multiple of the assigned copies, and project-sized
// backlogs solve well within a scheduling pass, in memory proportional to
// the arcs: BenchmarkSolve5000x500, BenchmarkSolve20000x2000 and
// BenchmarkMatchOverlap (make bench) report solve_s and pivots.
package matching
