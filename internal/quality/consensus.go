package quality

// Consensus over nominal labels: majority vote and Dawid–Skene EM.
//
// Both read a VoteMatrix, the sparse items × annotators matrix of labels held
// twice in compressed sparse row (CSR) form: by item, for majority vote and
// the E-step (each item's posterior needs only its own votes), and by
// annotator, for the M-step (each annotator's confusion matrix needs only that
// annotator's votes). Both orders are flat int32 slices built by counting
// sorts, so a fit allocates a few slices up front and nothing per vote or per
// iteration.
//
// # Dawid–Skene
//
// The model (Dawid and Skene, 1979) has class priors π_k and, for every
// annotator j, a confusion matrix θ_j[k][l] = P(j answers l | true class k).
// Given the votes V_i on item i, the posterior of its true class is
//
//	P(k | V_i) ∝ π_k · Π_{(j,l) ∈ V_i} θ_j[k][l]
//
// EM starts from the majority-vote soft labels (each item's vote fractions)
// and alternates an M-step (π and θ from the current posteriors) with an
// E-step (posteriors and log-likelihood from π and θ). The E-step sums logs
// and normalises with log-sum-exp, so fifty confident votes on one item do not
// underflow.
//
// The M-step adds Smoothing (default 0.01) to every cell of every confusion
// row and to every class count before normalising:
//
//	θ_j[k][l] = (Σ_{i: j voted l on i} P(k|V_i) + α) / (Σ_{i voted on by j} P(k|V_i) + Kα)
//	π_k      = (Σ_{i with votes} P(k|V_i) + α) / (items with votes + Kα)
//
// This is the MAP estimate under a symmetric Dirichlet(1+α) prior. It keeps
// every probability positive: without it an annotator who never answered l
// in the initial labels could never be believed to answer l, and a log of
// zero would end the fit. α shifts a confusion cell by at most about Kα/n,
// n being the annotator's (soft) votes on items of that true class, so the
// default is negligible; Laplace smoothing (α = 1) is available but pulls the
// accuracy of annotators with a few hundred votes visibly towards 1/K.
//
// Items with no votes do not take part in the fit; their posterior is the
// prior. Annotators with no votes keep uniform confusion rows (accuracy 1/K).
// An annotator may vote on an item more than once; every vote counts, as in
// the original paper.
//
// # Determinism
//
// The result depends only on the set of votes and the options other than
// Workers, bit for bit: the CSR orders are sorted (item, annotator, class) and
// (annotator, item, class) whatever order the votes came in, every sum runs in
// a fixed order, and the parallel E-step works on fixed shards of
// dsShardItems items whose partial sums are added in shard order.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Defaults for DawidSkeneOptions fields left zero.
const (
	// DefaultDawidSkeneMaxIterations caps EM; well-posed data converges in
	// tens of iterations.
	DefaultDawidSkeneMaxIterations = 200
	// DefaultDawidSkeneTolerance is the log-likelihood change per vote below
	// which EM counts as converged.
	DefaultDawidSkeneTolerance = 1e-7
	// DefaultDawidSkeneSmoothing is the Dirichlet pseudo-count α added to
	// every confusion cell and class count.
	DefaultDawidSkeneSmoothing = 0.01
)

// dsShardItems is the number of items in one E-step shard. It is fixed, not
// derived from the worker count, so that the partial sums, and hence the
// result, do not depend on how many goroutines ran.
const dsShardItems = 4096

// ErrVoteOutOfRange reports a vote whose item, annotator or class index lies
// outside the dimensions given to NewVoteMatrix.
var ErrVoteOutOfRange = errors.New("vote index out of range")

// Vote is one annotator's nominal label for one item. All three fields are
// zero-based indexes that the caller maps from its own ids (item ids, user
// ids, the project's label values).
type Vote struct {
	Item      int
	Annotator int
	Class     int
}

// VoteMatrix is the sparse items × annotators matrix of nominal labels, built
// once by NewVoteMatrix and read by MajorityVote and DawidSkene. It is
// immutable and safe for concurrent use.
type VoteMatrix struct {
	items, annotators, classes int

	// Votes by item: those of item i are itemCode[itemStart[i]:itemStart[i+1]],
	// each coded annotator*classes + class and sorted ascending.
	itemStart []int
	itemCode  []int32

	// Votes by annotator: those of annotator j are at
	// annStart[j]:annStart[j+1] in annItem and annClass, sorted by item, then
	// class.
	annStart []int
	annItem  []int32
	annClass []int32
}

// NewVoteMatrix checks votes against the dimensions (items and annotators may
// be zero, classes at least one) and builds the matrix. Items without votes are
// allowed. The order of votes does not matter.
func NewVoteMatrix(items, annotators, classes int, votes []Vote) (*VoteMatrix, error) {
	switch {
	case items < 0 || items > math.MaxInt32:
		return nil, fmt.Errorf("new vote matrix: items %d outside [0, %d]", items, math.MaxInt32)
	case annotators < 0:
		return nil, fmt.Errorf("new vote matrix: annotators %d is negative", annotators)
	case classes < 1:
		return nil, fmt.Errorf("new vote matrix: classes %d, need at least 1", classes)
	case annotators > 0 && classes > math.MaxInt32/annotators:
		return nil, fmt.Errorf("new vote matrix: annotators × classes = %d × %d exceeds %d", annotators, classes, math.MaxInt32)
	}
	m := &VoteMatrix{
		items: items, annotators: annotators, classes: classes,
		itemStart: make([]int, items+1),
		annStart:  make([]int, annotators+1),
	}
	codes := annotators * classes
	codeStart := make([]int, codes+1)
	for n, v := range votes {
		switch {
		case v.Item < 0 || v.Item >= items:
			return nil, fmt.Errorf("new vote matrix: vote %d: item %d outside [0, %d): %w", n, v.Item, items, ErrVoteOutOfRange)
		case v.Annotator < 0 || v.Annotator >= annotators:
			return nil, fmt.Errorf("new vote matrix: vote %d: annotator %d outside [0, %d): %w", n, v.Annotator, annotators, ErrVoteOutOfRange)
		case v.Class < 0 || v.Class >= classes:
			return nil, fmt.Errorf("new vote matrix: vote %d: class %d outside [0, %d): %w", n, v.Class, classes, ErrVoteOutOfRange)
		}
		m.itemStart[v.Item+1]++
		m.annStart[v.Annotator+1]++
		codeStart[v.Annotator*classes+v.Class+1]++
	}
	prefixSum(m.itemStart)
	prefixSum(m.annStart)
	prefixSum(codeStart)

	// Three stable counting sorts: by code, then by item (so each item's votes
	// are in code order), then by annotator from the item order (so each
	// annotator's votes are in item order). The result is independent of the
	// input order.
	byCode := make([]int32, len(votes))
	cursor := make([]int, max(codes, items, annotators))
	copy(cursor, codeStart[:codes])
	for _, v := range votes {
		c := v.Annotator*classes + v.Class
		byCode[cursor[c]] = int32(v.Item)
		cursor[c]++
	}
	m.itemCode = make([]int32, len(votes))
	copy(cursor, m.itemStart[:items])
	for c := range codes {
		for _, i := range byCode[codeStart[c]:codeStart[c+1]] {
			m.itemCode[cursor[i]] = int32(c)
			cursor[i]++
		}
	}
	byCode = nil
	m.annItem = make([]int32, len(votes))
	m.annClass = make([]int32, len(votes))
	copy(cursor, m.annStart[:annotators])
	for i := range items {
		for _, c := range m.itemCode[m.itemStart[i]:m.itemStart[i+1]] {
			j := int(c) / classes
			m.annItem[cursor[j]] = int32(i)
			m.annClass[cursor[j]] = c - int32(j*classes)
			cursor[j]++
		}
	}
	return m, nil
}

// prefixSum turns counts shifted by one (s[x+1] = count of x) into start
// offsets in place.
func prefixSum(s []int) {
	for x := 1; x < len(s); x++ {
		s[x] += s[x-1]
	}
}

// Items returns the number of items, including those without votes.
func (m *VoteMatrix) Items() int { return m.items }

// Annotators returns the number of annotators, including those without votes.
func (m *VoteMatrix) Annotators() int { return m.annotators }

// Classes returns the number of classes.
func (m *VoteMatrix) Classes() int { return m.classes }

// Len returns the number of votes.
func (m *VoteMatrix) Len() int { return len(m.itemCode) }

// ItemVotes returns the number of votes on item i, which must be in
// [0, Items()).
func (m *VoteMatrix) ItemVotes(i int) int { return m.itemStart[i+1] - m.itemStart[i] }

// AnnotatorVotes returns the number of votes annotator j, in
// [0, Annotators()), cast.
func (m *VoteMatrix) AnnotatorVotes(j int) int { return m.annStart[j+1] - m.annStart[j] }

// MajorityLabel is the majority-vote consensus on one item.
type MajorityLabel struct {
	// Class is the winning class, or -1 when the item has no votes (or only
	// votes of weight zero).
	Class int
	// Share is the winning class's share of the item's total vote weight, in
	// (0, 1]; 0 when Class is -1.
	Share float64
}

// MajorityVote returns the plurality class of every item. With weights nil
// every vote counts 1; otherwise weights has one finite, non-negative entry
// per annotator and a vote counts its annotator's weight. An exact tie
// between classes goes to the lowest class index, so the result is deterministic and
// does not depend on the order of the votes.
func MajorityVote(m *VoteMatrix, weights []float64) ([]MajorityLabel, error) {
	if m == nil {
		return nil, errors.New("majority vote: nil vote matrix")
	}
	if weights != nil {
		if len(weights) != m.annotators {
			return nil, fmt.Errorf("majority vote: %d weights for %d annotators", len(weights), m.annotators)
		}
		for j, w := range weights {
			if !(w >= 0) || math.IsInf(w, 1) {
				return nil, fmt.Errorf("majority vote: annotator %d: weight %v is not finite and non-negative", j, w)
			}
		}
	}
	K := m.classes
	score := make([]float64, K)
	out := make([]MajorityLabel, m.items)
	for i := range m.items {
		clear(score)
		total := 0.0
		for _, c := range m.itemCode[m.itemStart[i]:m.itemStart[i+1]] {
			w := 1.0
			if weights != nil {
				w = weights[int(c)/K]
			}
			score[int(c)%K] += w
			total += w
		}
		best := 0
		for k := 1; k < K; k++ {
			if score[k] > score[best] {
				best = k
			}
		}
		if total == 0 {
			out[i] = MajorityLabel{Class: -1}
			continue
		}
		out[i] = MajorityLabel{Class: best, Share: score[best] / total}
	}
	return out, nil
}

// DawidSkeneOptions tune DawidSkene. Zero fields take the defaults; negative
// or non-finite values are errors.
type DawidSkeneOptions struct {
	// MaxIterations caps the EM iterations (one M-step and one E-step each).
	// Default DefaultDawidSkeneMaxIterations.
	MaxIterations int
	// Tolerance: EM has converged when the log-likelihood changes by less
	// than Tolerance × (number of votes) from one iteration to the next, so
	// one setting suits a hundred votes and five million. Default
	// DefaultDawidSkeneTolerance.
	Tolerance float64
	// Smoothing is the Dirichlet pseudo-count α (see the file comment).
	// Default DefaultDawidSkeneSmoothing; 1 gives Laplace smoothing.
	Smoothing float64
	// Workers is the number of goroutines for the E- and M-steps. Default
	// GOMAXPROCS. The result does not depend on it.
	Workers int
}

func (o DawidSkeneOptions) withDefaults() (DawidSkeneOptions, error) {
	switch {
	case o.MaxIterations < 0:
		return o, fmt.Errorf("max iterations %d is negative", o.MaxIterations)
	case !(o.Tolerance >= 0) || math.IsInf(o.Tolerance, 1):
		return o, fmt.Errorf("tolerance %v is not finite and non-negative", o.Tolerance)
	case !(o.Smoothing >= 0) || math.IsInf(o.Smoothing, 1):
		return o, fmt.Errorf("smoothing %v is not finite and non-negative", o.Smoothing)
	case o.Workers < 0:
		return o, fmt.Errorf("workers %d is negative", o.Workers)
	}
	o.MaxIterations = cmp.Or(o.MaxIterations, DefaultDawidSkeneMaxIterations)
	o.Tolerance = cmp.Or(o.Tolerance, DefaultDawidSkeneTolerance)
	o.Smoothing = cmp.Or(o.Smoothing, DefaultDawidSkeneSmoothing)
	o.Workers = cmp.Or(o.Workers, runtime.GOMAXPROCS(0))
	return o, nil
}

// DawidSkeneLabel is the Dawid–Skene consensus on one item.
type DawidSkeneLabel struct {
	// Class is the class with the highest posterior; the lowest index wins a
	// tie. Items without votes get the most likely class a priori.
	Class int
	// Prob is the posterior probability of Class.
	Prob float64
}

// DawidSkeneResult is a fitted Dawid–Skene model. Slices are flat and
// row-major; the accessors return views of one item's or one annotator's
// part.
type DawidSkeneResult struct {
	// Items, Annotators and Classes are the matrix dimensions (I, J, K).
	Items, Annotators, Classes int
	// Labels has one consensus label per item.
	Labels []DawidSkeneLabel
	// Posteriors holds P(class k | votes on item i) at [i*K+k].
	Posteriors []float64
	// Priors holds the class priors π_k.
	Priors []float64
	// Confusion holds P(annotator j answers l | true class k) at
	// [(j*K+k)*K+l]; every row sums to 1.
	Confusion []float64
	// Accuracy holds each annotator's probability of answering the true
	// class, Σ_k π_k·θ_j[k][k].
	Accuracy []float64
	// Iterations is the number of EM iterations run.
	Iterations int
	// Converged reports whether the tolerance was met before MaxIterations.
	Converged bool
	// LogLikelihood is log P(votes | Priors, Confusion), the natural log of
	// the marginal likelihood of all votes under the returned parameters.
	LogLikelihood float64
}

// Posterior returns the posterior over the classes of item i, in [0, Items)
// (a view into Posteriors).
func (r *DawidSkeneResult) Posterior(i int) []float64 {
	K := r.Classes
	return r.Posteriors[i*K : (i+1)*K : (i+1)*K]
}

// ConfusionMatrix returns the K×K confusion matrix of annotator j, in
// [0, Annotators), rows indexed by the true class and columns by the answer
// (views into Confusion).
func (r *DawidSkeneResult) ConfusionMatrix(j int) [][]float64 {
	K := r.Classes
	rows := make([][]float64, K)
	for k := range rows {
		at := (j*K + k) * K
		rows[k] = r.Confusion[at : at+K : at+K]
	}
	return rows
}

// DawidSkene fits the Dawid–Skene model to m by EM (see the file comment) and
// returns the consensus labels, the model and how the fit went. It checks ctx
// between iterations. Reaching MaxIterations is not an error: the result has
// Converged false.
func DawidSkene(ctx context.Context, m *VoteMatrix, opts DawidSkeneOptions) (*DawidSkeneResult, error) {
	if m == nil {
		return nil, errors.New("dawid-skene: nil vote matrix")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("dawid-skene: %w", err)
	}
	f := newDSFit(m, o)
	f.initMajority()
	tol := o.Tolerance * float64(max(1, m.Len()))
	res := &DawidSkeneResult{Items: m.items, Annotators: m.annotators, Classes: m.classes}
	prev := math.Inf(-1)
	for it := 1; it <= o.MaxIterations; it++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("dawid-skene: before iteration %d: %w", it, err)
		}
		f.mStep()
		ll := f.eStep()
		if math.IsNaN(ll) || math.IsInf(ll, 0) {
			// Smoothing keeps every probability positive, so this means a
			// bug rather than bad input; report it instead of returning junk.
			return nil, fmt.Errorf("dawid-skene: iteration %d: log-likelihood %v", it, ll)
		}
		res.Iterations, res.LogLikelihood = it, ll
		if math.Abs(ll-prev) < tol {
			res.Converged = true
			break
		}
		prev = ll
	}
	f.finish(res)
	return res, nil
}

// dsFit is the working state of one fit. post is the only I-sized array;
// everything else is J·K² or smaller.
type dsFit struct {
	m       *VoteMatrix
	alpha   float64
	workers int

	observed int       // items with at least one vote
	post     []float64 // [i*K+k] posteriors (soft labels)
	priorSum []float64 // [k] Σ over observed items of post
	logPrior []float64 // [k]
	prior    []float64 // [k]
	conf     []float64 // [(j*K+k)*K+l] θ_j[k][l]
	logConfT []float64 // [(j*K+l)*K+k] log θ_j[k][l]: one vote's K terms are contiguous

	shardLL    []float64 // [s] E-step partial log-likelihoods
	shardPrior []float64 // [s*K+k] E-step partial prior sums
	scratch    []float64 // [w*K*K ...] per-worker buffers
}

func newDSFit(m *VoteMatrix, o DawidSkeneOptions) *dsFit {
	K, J := m.classes, m.annotators
	shards := (m.items + dsShardItems - 1) / dsShardItems
	f := &dsFit{
		m: m, alpha: o.Smoothing, workers: max(1, o.Workers),
		post:       make([]float64, m.items*K),
		priorSum:   make([]float64, K),
		logPrior:   make([]float64, K),
		prior:      make([]float64, K),
		conf:       make([]float64, J*K*K),
		logConfT:   make([]float64, J*K*K),
		shardLL:    make([]float64, shards),
		shardPrior: make([]float64, shards*K),
	}
	f.scratch = make([]float64, f.workers*K*K)
	return f
}

// initMajority sets every observed item's soft label to its vote fractions.
func (f *dsFit) initMajority() {
	m, K := f.m, f.m.classes
	for i := range m.items {
		votes := m.itemCode[m.itemStart[i]:m.itemStart[i+1]]
		if len(votes) == 0 {
			continue
		}
		f.observed++
		row := f.post[i*K : (i+1)*K]
		for _, c := range votes {
			row[int(c)%K]++
		}
		inv := 1 / float64(len(votes))
		for k := range row {
			row[k] *= inv
			f.priorSum[k] += row[k]
		}
	}
}

// mStep re-estimates priors and confusion matrices from post, in parallel
// over annotators (each annotator's rows are written by one goroutine only).
func (f *dsFit) mStep() {
	m, K, a := f.m, f.m.classes, f.alpha
	den := float64(f.observed) + float64(K)*a
	for k := range K {
		f.prior[k] = (f.priorSum[k] + a) / den
		f.logPrior[k] = math.Log(f.prior[k])
	}
	KK := K * K
	dsParallel(f.workers, m.annotators, func(w, j int) {
		cnt := f.scratch[w*KK : (w+1)*KK] // [l*K+k]
		clear(cnt)
		lo, hi := m.annStart[j], m.annStart[j+1]
		for p, i := range m.annItem[lo:hi] {
			row := f.post[int(i)*K : int(i)*K+K]
			dst := cnt[int(m.annClass[lo+p])*K:]
			dst = dst[:len(row)]
			for k, v := range row {
				dst[k] += v
			}
		}
		base := j * KK
		for k := range K {
			tot := float64(K) * a
			for l := range K {
				tot += cnt[l*K+k]
			}
			for l := range K {
				v := (cnt[l*K+k] + a) / tot
				f.conf[base+k*K+l] = v
				f.logConfT[base+l*K+k] = math.Log(v)
			}
		}
	})
}

// eStep recomputes post for every observed item and returns the
// log-likelihood; it also refreshes priorSum for the next M-step. Shards are
// fixed ranges of items, and their partial sums are added in shard order.
func (f *dsFit) eStep() float64 {
	m, K := f.m, f.m.classes
	KK := K * K
	dsParallel(f.workers, len(f.shardLL), func(w, s int) {
		acc := f.scratch[w*KK : w*KK+K]
		ps := f.shardPrior[s*K : (s+1)*K]
		clear(ps)
		ll := 0.0
		for i := s * dsShardItems; i < min(m.items, (s+1)*dsShardItems); i++ {
			votes := m.itemCode[m.itemStart[i]:m.itemStart[i+1]]
			if len(votes) == 0 {
				continue
			}
			copy(acc, f.logPrior)
			for _, c := range votes {
				lc := f.logConfT[int(c)*K:]
				lc = lc[:len(acc)]
				for k, v := range lc {
					acc[k] += v
				}
			}
			top := acc[0]
			for _, v := range acc[1:] {
				top = max(top, v)
			}
			out := f.post[i*K : i*K+K]
			out = out[:len(acc)]
			sum := 0.0
			for k, v := range acc {
				e := math.Exp(v - top)
				out[k] = e
				sum += e
			}
			inv := 1 / sum
			for k := range out {
				out[k] *= inv
				ps[k] += out[k]
			}
			ll += top + math.Log(sum)
		}
		f.shardLL[s] = ll
	})
	clear(f.priorSum)
	ll := 0.0
	for s, v := range f.shardLL {
		ll += v
		for k := range K {
			f.priorSum[k] += f.shardPrior[s*K+k]
		}
	}
	return ll
}

// finish copies the model into res and labels every item; items without
// votes get the prior.
func (f *dsFit) finish(res *DawidSkeneResult) {
	m, K := f.m, f.m.classes
	res.Priors = f.prior
	res.Confusion = f.conf
	res.Posteriors = f.post
	res.Labels = make([]DawidSkeneLabel, m.items)
	for i := range m.items {
		row := f.post[i*K : (i+1)*K]
		if m.itemStart[i] == m.itemStart[i+1] {
			copy(row, f.prior)
		}
		best := 0
		for k := 1; k < K; k++ {
			if row[k] > row[best] {
				best = k
			}
		}
		res.Labels[i] = DawidSkeneLabel{Class: best, Prob: row[best]}
	}
	res.Accuracy = make([]float64, m.annotators)
	for j := range res.Accuracy {
		acc := 0.0
		for k := range K {
			acc += f.prior[k] * f.conf[(j*K+k)*K+k]
		}
		res.Accuracy[j] = acc
	}
}

// dsParallel runs fn(worker, task) for every task in [0, n) on up to workers
// goroutines. Each task must write only its own outputs; worker indexes a
// per-goroutine scratch buffer.
func dsParallel(workers, n int, fn func(w, t int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for t := range n {
			fn(0, t)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				t := int(next.Add(1) - 1)
				if t >= n {
					return
				}
				fn(w, t)
			}
		})
	}
	wg.Wait()
}
