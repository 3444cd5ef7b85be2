package quality_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/quality"
)

// consPlanted is a synthetic labelling run with known truth.
type consPlanted struct {
	items, annotators, classes int
	votes                      []quality.Vote
	truth                      []int     // true class per item
	accuracy                   []float64 // planted P(correct) per annotator
}

// consPlant draws items with classes from priors and has perItem distinct
// random annotators label each. Annotator j answers the true class with
// probability accuracy[j], drawn uniformly from [accLo, accHi], and otherwise
// one of the other classes uniformly, so its planted Dawid–Skene accuracy
// Σ_k π_k θ_j[k][k] is accuracy[j] whatever the priors.
func consPlant(seed uint64, items, annotators, perItem int, priors []float64, accLo, accHi float64) consPlanted {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	K := len(priors)
	p := consPlanted{
		items: items, annotators: annotators, classes: K,
		votes:    make([]quality.Vote, 0, items*perItem),
		truth:    make([]int, items),
		accuracy: make([]float64, annotators),
	}
	for j := range p.accuracy {
		p.accuracy[j] = accLo + (accHi-accLo)*rng.Float64()
	}
	perm := make([]int, annotators)
	for j := range perm {
		perm[j] = j
	}
	for i := range items {
		u, k := rng.Float64(), 0
		for k < K-1 && u >= priors[k] {
			u -= priors[k]
			k++
		}
		p.truth[i] = k
		for n := range perItem { // partial Fisher–Yates: perItem distinct annotators
			x := n + rng.IntN(annotators-n)
			perm[n], perm[x] = perm[x], perm[n]
			j := perm[n]
			l := k
			if rng.Float64() >= p.accuracy[j] {
				l = (k + 1 + rng.IntN(K-1)) % K
			}
			p.votes = append(p.votes, quality.Vote{Item: i, Annotator: j, Class: l})
		}
	}
	return p
}

func (p consPlanted) matrix(t testing.TB) *quality.VoteMatrix {
	t.Helper()
	m, err := quality.NewVoteMatrix(p.items, p.annotators, p.classes, p.votes)
	require.NoError(t, err)
	return m
}

// consNaiveEStep computes posteriors and the log-likelihood in linear space
// straight from the votes, independently of the package's log-space CSR code.
// Items without votes get the prior and add nothing to the log-likelihood.
func consNaiveEStep(items, classes int, votes []quality.Vote, priors, conf []float64) ([]float64, float64) {
	K := classes
	post := make([]float64, items*K)
	for i := range items {
		copy(post[i*K:(i+1)*K], priors)
	}
	seen := make([]bool, items)
	for _, v := range votes {
		seen[v.Item] = true
		for k := range K {
			post[v.Item*K+k] *= conf[(v.Annotator*K+k)*K+v.Class]
		}
	}
	ll := 0.0
	for i := range items {
		if !seen[i] {
			continue
		}
		sum := 0.0
		for k := range K {
			sum += post[i*K+k]
		}
		ll += math.Log(sum)
		for k := range K {
			post[i*K+k] /= sum
		}
	}
	return post, ll
}

// consNaiveMStep applies the documented smoothed M-step formulas directly to
// the vote list.
func consNaiveMStep(items, annotators, classes int, votes []quality.Vote, post []float64, alpha float64) (priors, conf []float64) {
	K := classes
	seen := make([]bool, items)
	counts := make([]float64, annotators*K*K)
	for _, v := range votes {
		seen[v.Item] = true
		for k := range K {
			counts[(v.Annotator*K+k)*K+v.Class] += post[v.Item*K+k]
		}
	}
	priors = make([]float64, K)
	observed := 0
	for i := range items {
		if seen[i] {
			observed++
			for k := range K {
				priors[k] += post[i*K+k]
			}
		}
	}
	for k := range K {
		priors[k] = (priors[k] + alpha) / (float64(observed) + float64(K)*alpha)
	}
	conf = make([]float64, len(counts))
	for r := 0; r < len(counts); r += K {
		tot := float64(K) * alpha
		for l := range K {
			tot += counts[r+l]
		}
		for l := range K {
			conf[r+l] = (counts[r+l] + alpha) / tot
		}
	}
	return priors, conf
}

func TestNewVoteMatrix(t *testing.T) {
	t.Run("counts match the votes", func(t *testing.T) {
		votes := []quality.Vote{{2, 1, 0}, {0, 0, 1}, {2, 0, 2}, {2, 1, 1}, {0, 1, 1}}
		m, err := quality.NewVoteMatrix(4, 3, 3, votes)
		require.NoError(t, err)
		require.Equal(t, 4, m.Items())
		require.Equal(t, 3, m.Annotators())
		require.Equal(t, 3, m.Classes())
		require.Equal(t, 5, m.Len())
		require.Equal(t, []int{2, 0, 3, 0}, []int{m.ItemVotes(0), m.ItemVotes(1), m.ItemVotes(2), m.ItemVotes(3)})
		require.Equal(t, []int{2, 3, 0}, []int{m.AnnotatorVotes(0), m.AnnotatorVotes(1), m.AnnotatorVotes(2)})
	})
	t.Run("empty matrix", func(t *testing.T) {
		m, err := quality.NewVoteMatrix(0, 0, 1, nil)
		require.NoError(t, err)
		require.Equal(t, 0, m.Len())
	})

	bad := []struct {
		name                       string
		items, annotators, classes int
		votes                      []quality.Vote
		outOfRange                 bool
	}{
		{name: "negative items", items: -1, annotators: 1, classes: 2},
		{name: "negative annotators", items: 1, annotators: -1, classes: 2},
		{name: "no classes", items: 1, annotators: 1, classes: 0},
		{name: "too many items", items: math.MaxInt32 + 1, annotators: 1, classes: 2},
		{name: "annotators times classes overflows int32", items: 1, annotators: 1 << 16, classes: 1 << 15},
		{name: "class too large", items: 2, annotators: 2, classes: 3, votes: []quality.Vote{{0, 0, 1}, {1, 1, 3}}, outOfRange: true},
		{name: "negative class", items: 2, annotators: 2, classes: 3, votes: []quality.Vote{{0, 0, -1}}, outOfRange: true},
		{name: "annotator too large", items: 2, annotators: 2, classes: 3, votes: []quality.Vote{{0, 2, 0}}, outOfRange: true},
		{name: "negative annotator", items: 2, annotators: 2, classes: 3, votes: []quality.Vote{{0, -1, 0}}, outOfRange: true},
		{name: "item too large", items: 2, annotators: 2, classes: 3, votes: []quality.Vote{{2, 0, 0}}, outOfRange: true},
		{name: "negative item", items: 2, annotators: 2, classes: 3, votes: []quality.Vote{{-1, 0, 0}}, outOfRange: true},
	}
	for _, tc := range bad {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			m, err := quality.NewVoteMatrix(tc.items, tc.annotators, tc.classes, tc.votes)
			require.Error(t, err)
			require.Nil(t, m)
			require.Equal(t, tc.outOfRange, errors.Is(err, quality.ErrVoteOutOfRange), "error %v", err)
		})
	}
	t.Run("error names the vote", func(t *testing.T) {
		_, err := quality.NewVoteMatrix(2, 2, 3, []quality.Vote{{0, 0, 1}, {1, 1, 3}})
		require.ErrorContains(t, err, "vote 1: class 3 outside [0, 3)")
	})
}

func TestMajorityVote(t *testing.T) {
	// item 0: 0,0,1 → 0 with 2/3; item 1: 1 vs 2 tie → 1 (lowest class);
	// item 2: no votes; item 3: 2,2 unanimous.
	votes := []quality.Vote{
		{0, 0, 0}, {0, 1, 0}, {0, 2, 1},
		{1, 0, 2}, {1, 1, 1},
		{3, 1, 2}, {3, 2, 2},
	}
	m, err := quality.NewVoteMatrix(4, 3, 3, votes)
	require.NoError(t, err)

	t.Run("unweighted, tie to lowest class", func(t *testing.T) {
		got, err := quality.MajorityVote(m, nil)
		require.NoError(t, err)
		require.Equal(t, []quality.MajorityLabel{
			{Class: 0, Share: 2.0 / 3}, {Class: 1, Share: 0.5}, {Class: -1}, {Class: 2, Share: 1},
		}, got)
	})
	t.Run("weighted", func(t *testing.T) {
		// Annotator 2 weighs 3: item 0 is 0 (2) vs 1 (3) → 1 with 3/5;
		// item 1 is 2 (1) vs 1 (1) → tie → 1.
		got, err := quality.MajorityVote(m, []float64{1, 1, 3})
		require.NoError(t, err)
		require.Equal(t, []quality.MajorityLabel{
			{Class: 1, Share: 0.6}, {Class: 1, Share: 0.5}, {Class: -1}, {Class: 2, Share: 1},
		}, got)
	})
	t.Run("only zero-weight votes count as none", func(t *testing.T) {
		got, err := quality.MajorityVote(m, []float64{0, 0, 1})
		require.NoError(t, err)
		require.Equal(t, []quality.MajorityLabel{
			{Class: 1, Share: 1}, {Class: -1}, {Class: -1}, {Class: 2, Share: 1},
		}, got)
	})
	for name, w := range map[string][]float64{
		"too few weights": {1, 1},
		"negative weight": {1, -1, 1},
		"NaN weight":      {1, math.NaN(), 1},
		"infinite weight": {1, math.Inf(1), 1},
	} {
		t.Run("rejects "+name, func(t *testing.T) {
			_, err := quality.MajorityVote(m, w)
			require.Error(t, err)
		})
	}
	t.Run("rejects nil matrix", func(t *testing.T) {
		_, err := quality.MajorityVote(nil, nil)
		require.Error(t, err)
	})
}

// TestDawidSkeneOneIterationByHand checks one EM iteration against values
// worked out on paper. Two annotators, two classes, Laplace smoothing (α=1):
//
//	item 0: a0→0, a1→0   soft label (1, 0)
//	item 1: a0→0, a1→1   soft label (½, ½)
//	item 2: a0→1, a1→1   soft label (0, 1)
//
// M-step: π = ((1.5+1)/(3+2), (1.5+1)/(3+2)) = (½, ½).
// a0: true 0 answered 0 with weight 1.5, 1 with 0   → (2.5/3.5, 1/3.5) = (5/7, 2/7);
// a0: true 1 answered 0 with weight 0.5, 1 with 1   → (1.5/3.5, 2/3.5) = (3/7, 4/7).
// a1: true 0: 0 with 1, 1 with 0.5                  → (4/7, 3/7);
// a1: true 1: 0 with 0, 1 with 1.5                  → (2/7, 5/7).
// E-step (the common factor ½ cancels):
// item 0: (5/7·4/7, 3/7·2/7) = (20, 6)/49  → (10/13, 3/13);
// item 1: (5/7·3/7, 3/7·5/7) = (15, 15)/49 → (½, ½), tie → class 0;
// item 2: (2/7·3/7, 4/7·5/7) = (6, 20)/49  → (3/13, 10/13).
// log L = log(½·26/49) + log(½·30/49) + log(½·26/49) = log(13·15·13/49³).
// Accuracy of both: ½·5/7 + ½·4/7 = 9/14.
func TestDawidSkeneOneIterationByHand(t *testing.T) {
	votes := []quality.Vote{{0, 0, 0}, {0, 1, 0}, {1, 0, 0}, {1, 1, 1}, {2, 0, 1}, {2, 1, 1}}
	m, err := quality.NewVoteMatrix(3, 2, 2, votes)
	require.NoError(t, err)
	res, err := quality.DawidSkene(context.Background(), m, quality.DawidSkeneOptions{MaxIterations: 1, Smoothing: 1})
	require.NoError(t, err)

	const eps = 1e-12
	require.Equal(t, 1, res.Iterations)
	require.False(t, res.Converged)
	require.InDeltaSlice(t, []float64{0.5, 0.5}, res.Priors, eps)
	require.InDeltaSlice(t, []float64{5.0 / 7, 2.0 / 7, 3.0 / 7, 4.0 / 7}, res.Confusion[:4], eps)
	require.InDeltaSlice(t, []float64{4.0 / 7, 3.0 / 7, 2.0 / 7, 5.0 / 7}, res.Confusion[4:], eps)
	require.InDeltaSlice(t, []float64{10.0 / 13, 3.0 / 13, 0.5, 0.5, 3.0 / 13, 10.0 / 13}, res.Posteriors, eps)
	require.InDelta(t, math.Log(13.0*15*13/(49*49*49)), res.LogLikelihood, eps)
	require.InDeltaSlice(t, []float64{9.0 / 14, 9.0 / 14}, res.Accuracy, eps)
	require.Equal(t, []int{0, 0, 1}, []int{res.Labels[0].Class, res.Labels[1].Class, res.Labels[2].Class})
	require.InDeltaSlice(t, []float64{10.0 / 13, 0.5, 10.0 / 13}, []float64{res.Labels[0].Prob, res.Labels[1].Prob, res.Labels[2].Prob}, eps)
	require.InDeltaSlice(t, []float64{0.5, 0.5}, res.Posterior(1), eps)
	require.Equal(t, [][]float64{res.Confusion[4:6], res.Confusion[6:8]}, res.ConfusionMatrix(1))
}

func TestDawidSkeneUnanimous(t *testing.T) {
	// Three annotators agree on every item: two of class 0, two of class 1.
	truth := []int{0, 0, 1, 1}
	var votes []quality.Vote
	for i, k := range truth {
		for j := range 3 {
			votes = append(votes, quality.Vote{Item: i, Annotator: j, Class: k})
		}
	}
	m, err := quality.NewVoteMatrix(len(truth), 3, 2, votes)
	require.NoError(t, err)
	res, err := quality.DawidSkene(context.Background(), m, quality.DawidSkeneOptions{})
	require.NoError(t, err)
	require.True(t, res.Converged)
	// Each annotator is right on both items of each class, so θ[k][k] is
	// (2+α)/(2+2α) ≈ 0.995 and a posterior is about 1 - (0.005/0.995)³.
	const a = quality.DefaultDawidSkeneSmoothing
	for i, k := range truth {
		require.Equal(t, k, res.Labels[i].Class, "item %d", i)
		require.Greater(t, res.Labels[i].Prob, 1-1e-6, "item %d", i)
	}
	for j := range 3 {
		cm := res.ConfusionMatrix(j)
		require.InDelta(t, (2+a)/(2+2*a), cm[0][0], 1e-6)
		require.InDelta(t, (2+a)/(2+2*a), cm[1][1], 1e-6)
		require.InDelta(t, (2+a)/(2+2*a), res.Accuracy[j], 1e-6)
	}
	require.InDeltaSlice(t, []float64{0.5, 0.5}, res.Priors, 1e-12)
}

// TestDawidSkeneOutvotesSpammers: three annotators always answer 0, two
// always answer the truth. Majority vote is wrong on every item of class 1
// (3 against 2); Dawid–Skene learns that the spammers' answers carry no
// information and follows the two good annotators.
func TestDawidSkeneOutvotesSpammers(t *testing.T) {
	truth := []int{0, 1, 0, 1, 1, 0, 1, 0, 1, 1}
	var votes []quality.Vote
	for i, k := range truth {
		votes = append(votes,
			quality.Vote{Item: i, Annotator: 0, Class: k},
			quality.Vote{Item: i, Annotator: 1, Class: k},
			quality.Vote{Item: i, Annotator: 2, Class: 0},
			quality.Vote{Item: i, Annotator: 3, Class: 0},
			quality.Vote{Item: i, Annotator: 4, Class: 0},
		)
	}
	m, err := quality.NewVoteMatrix(len(truth), 5, 2, votes)
	require.NoError(t, err)

	mv, err := quality.MajorityVote(m, nil)
	require.NoError(t, err)
	for i := range truth {
		require.Equal(t, 0, mv[i].Class, "majority on item %d", i)
	}

	res, err := quality.DawidSkene(context.Background(), m, quality.DawidSkeneOptions{})
	require.NoError(t, err)
	require.True(t, res.Converged)
	for i, k := range truth {
		require.Equal(t, k, res.Labels[i].Class, "item %d", i)
		require.Greater(t, res.Labels[i].Prob, 0.99, "item %d", i)
	}
	for j := 2; j < 5; j++ {
		cm := res.ConfusionMatrix(j)
		require.Greater(t, cm[0][0], 0.99, "spammer %d, true 0", j)
		require.Greater(t, cm[1][0], 0.99, "spammer %d, true 1", j)
	}
	// Priors 4/10 and 6/10 up to smoothing; good annotators near 1, spammers
	// near π_0 = 0.4.
	require.InDeltaSlice(t, []float64{0.4, 0.6}, res.Priors, 1e-3)
	require.Greater(t, res.Accuracy[0], 0.99)
	require.InDelta(t, 0.4, res.Accuracy[2], 1e-2)
}

func TestDawidSkeneEmptyItemsAndIdleAnnotators(t *testing.T) {
	// Items 1 and 4 have no votes; annotator 3 cast none.
	votes := []quality.Vote{{0, 0, 1}, {0, 1, 1}, {0, 2, 0}, {2, 0, 0}, {2, 1, 0}, {3, 2, 1}, {3, 1, 1}}
	m, err := quality.NewVoteMatrix(5, 4, 2, votes)
	require.NoError(t, err)
	res, err := quality.DawidSkene(context.Background(), m, quality.DawidSkeneOptions{})
	require.NoError(t, err)
	wantClass := 0
	if res.Priors[1] > res.Priors[0] {
		wantClass = 1
	}
	for _, i := range []int{1, 4} {
		require.Equal(t, res.Priors, res.Posterior(i), "item %d", i)
		require.Equal(t, quality.DawidSkeneLabel{Class: wantClass, Prob: res.Priors[wantClass]}, res.Labels[i])
	}
	require.Equal(t, [][]float64{{0.5, 0.5}, {0.5, 0.5}}, res.ConfusionMatrix(3))
	require.InDelta(t, 0.5, res.Accuracy[3], 1e-15)

	// The empty items change nothing else: the fit without them is the same.
	compact := []quality.Vote{{0, 0, 1}, {0, 1, 1}, {0, 2, 0}, {1, 0, 0}, {1, 1, 0}, {2, 2, 1}, {2, 1, 1}}
	m2, err := quality.NewVoteMatrix(3, 3, 2, compact)
	require.NoError(t, err)
	res2, err := quality.DawidSkene(context.Background(), m2, quality.DawidSkeneOptions{})
	require.NoError(t, err)
	require.Equal(t, res2.Priors, res.Priors)
	require.Equal(t, res2.Confusion, res.Confusion[:len(res2.Confusion)])
	require.Equal(t, res2.LogLikelihood, res.LogLikelihood)
	require.Equal(t, res2.Iterations, res.Iterations)
}

// TestDawidSkenePlanted fits data drawn from the model itself: 10,000 items,
// 20 annotators with accuracies in [0.55, 0.95], 4 classes, 5 annotators per
// item. The size is set by sampling noise, not by the fit: an annotator's
// ~2,500 votes give its empirical accuracy a standard deviation of at most
// 0.01, so the 0.05 bound is 5σ for each of the 20 annotators. (With the
// 2,000 items first planned, sampling noise alone pushed some annotator past
// 0.05 for a quarter of the seeds; at 10,000 none of 200 seeds did, the worst
// error being 0.039, and Dawid–Skene beat majority vote on all of them.)
//
// The consensus is also held against the Bayes-optimal labels computed from
// the planted parameters, the best any method can do on this data.
func TestDawidSkenePlanted(t *testing.T) {
	priors := []float64{0.4, 0.3, 0.2, 0.1}
	p := consPlant(16, 10_000, 20, 5, priors, 0.55, 0.95)
	m := p.matrix(t)
	res, err := quality.DawidSkene(context.Background(), m, quality.DawidSkeneOptions{})
	require.NoError(t, err)
	require.True(t, res.Converged, "iterations %d", res.Iterations)

	for j, want := range p.accuracy {
		require.InDelta(t, want, res.Accuracy[j], 0.05, "annotator %d", j)
	}
	for k, want := range priors {
		require.InDelta(t, want, res.Priors[k], 0.02, "prior %d", k)
	}

	// Planted confusion: accuracy on the diagonal, the rest spread evenly.
	K := p.classes
	planted := make([]float64, p.annotators*K*K)
	for j, a := range p.accuracy {
		for k := range K {
			for l := range K {
				planted[(j*K+k)*K+l] = (1 - a) / float64(K-1)
			}
			planted[(j*K+k)*K+k] = a
		}
	}
	oraclePost, _ := consNaiveEStep(p.items, K, p.votes, priors, planted)

	mv, err := quality.MajorityVote(m, nil)
	require.NoError(t, err)
	dsRight, mvRight, oracleRight := 0, 0, 0
	for i, k := range p.truth {
		if res.Labels[i].Class == k {
			dsRight++
		}
		if mv[i].Class == k {
			mvRight++
		}
		best := 0
		for c := 1; c < K; c++ {
			if oraclePost[i*K+c] > oraclePost[i*K+best] {
				best = c
			}
		}
		if best == k {
			oracleRight++
		}
	}
	n := float64(p.items)
	t.Logf("accuracy over %d items: Dawid–Skene %.4f, majority %.4f, Bayes-optimal %.4f; %d iterations",
		p.items, float64(dsRight)/n, float64(mvRight)/n, float64(oracleRight)/n, res.Iterations)
	require.GreaterOrEqual(t, dsRight, mvRight)
	require.GreaterOrEqual(t, float64(dsRight)/n, float64(oracleRight)/n-0.005)
}

// TestDawidSkeneFixedPoint recomputes both EM steps naively from the vote
// list: at convergence the returned posteriors and log-likelihood follow from
// the returned parameters, and the M-step of those posteriors gives the
// parameters back.
func TestDawidSkeneFixedPoint(t *testing.T) {
	p := consPlant(7, 400, 9, 4, []float64{0.5, 0.3, 0.2}, 0.5, 0.9)
	res, err := quality.DawidSkene(context.Background(), p.matrix(t), quality.DawidSkeneOptions{Tolerance: 1e-12, MaxIterations: 2000})
	require.NoError(t, err)
	require.True(t, res.Converged)

	post, ll := consNaiveEStep(p.items, p.classes, p.votes, res.Priors, res.Confusion)
	require.InDeltaSlice(t, post, res.Posteriors, 1e-9)
	require.InDelta(t, ll, res.LogLikelihood, 1e-9*math.Abs(ll))

	priors, conf := consNaiveMStep(p.items, p.annotators, p.classes, p.votes, res.Posteriors, quality.DefaultDawidSkeneSmoothing)
	require.InDeltaSlice(t, priors, res.Priors, 1e-6)
	require.InDeltaSlice(t, conf, res.Confusion, 1e-6)
	for j := range p.annotators {
		for k, row := range res.ConfusionMatrix(j) {
			sum := 0.0
			for _, v := range row {
				sum += v
			}
			require.InDelta(t, 1, sum, 1e-12, "annotator %d row %d", j, k)
		}
	}
}

// TestDawidSkeneMonotone checks the EM guarantee: from the second iteration
// on, each one does not decrease the penalised log-likelihood that smoothed
// EM maximises, log L + α·Σ log θ + α·Σ log π (the Dirichlet(1+α) log-prior),
// recomputed here from the returned parameters.
func TestDawidSkeneMonotone(t *testing.T) {
	p := consPlant(3, 300, 6, 3, []float64{0.6, 0.25, 0.15}, 0.4, 0.8)
	m := p.matrix(t)
	const alpha = 0.5
	prev := math.Inf(-1)
	for it := 1; it <= 25; it++ {
		res, err := quality.DawidSkene(context.Background(), m, quality.DawidSkeneOptions{MaxIterations: it, Tolerance: 1e-300, Smoothing: alpha})
		require.NoError(t, err)
		require.Equal(t, it, res.Iterations)
		_, ll := consNaiveEStep(p.items, p.classes, p.votes, res.Priors, res.Confusion)
		require.InDelta(t, ll, res.LogLikelihood, 1e-9*math.Abs(ll))
		obj := ll
		for _, v := range res.Confusion {
			obj += alpha * math.Log(v)
		}
		for _, v := range res.Priors {
			obj += alpha * math.Log(v)
		}
		require.GreaterOrEqual(t, obj, prev-1e-9*math.Abs(obj), "iteration %d", it)
		prev = obj
	}
}

// TestDawidSkeneDeterministic: the result is the same bit for bit whatever
// the order of the votes and the number of workers. 9,000 items make three
// E-step shards, so several workers really run.
func TestDawidSkeneDeterministic(t *testing.T) {
	p := consPlant(11, 9000, 12, 3, []float64{0.3, 0.3, 0.4}, 0.5, 0.9)
	want, err := quality.DawidSkene(context.Background(), p.matrix(t), quality.DawidSkeneOptions{Workers: 1})
	require.NoError(t, err)

	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(p.votes), func(a, b int) { p.votes[a], p.votes[b] = p.votes[b], p.votes[a] })
	shuffled := p.matrix(t)
	for _, workers := range []int{1, 2, 3, 8} {
		got, err := quality.DawidSkene(context.Background(), shuffled, quality.DawidSkeneOptions{Workers: workers})
		require.NoError(t, err)
		require.Equal(t, want, got, "workers %d", workers)
	}
}

func TestDawidSkeneErrors(t *testing.T) {
	m, err := quality.NewVoteMatrix(2, 2, 2, []quality.Vote{{0, 0, 0}, {1, 1, 1}})
	require.NoError(t, err)
	ctx := context.Background()

	t.Run("nil matrix", func(t *testing.T) {
		_, err := quality.DawidSkene(ctx, nil, quality.DawidSkeneOptions{})
		require.Error(t, err)
	})
	for name, o := range map[string]quality.DawidSkeneOptions{
		"negative max iterations": {MaxIterations: -1},
		"negative tolerance":      {Tolerance: -1e-3},
		"NaN tolerance":           {Tolerance: math.NaN()},
		"infinite tolerance":      {Tolerance: math.Inf(1)},
		"negative smoothing":      {Smoothing: -0.1},
		"NaN smoothing":           {Smoothing: math.NaN()},
		"negative workers":        {Workers: -2},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := quality.DawidSkene(ctx, m, o)
			require.Error(t, err)
			require.Nil(t, res)
		})
	}
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		res, err := quality.DawidSkene(cctx, m, quality.DawidSkeneOptions{})
		require.ErrorIs(t, err, context.Canceled)
		require.Nil(t, res)
	})
	t.Run("cancelled between iterations", func(t *testing.T) {
		cctx := &consCountdownCtx{Context: ctx, left: 3}
		res, err := quality.DawidSkene(cctx, m, quality.DawidSkeneOptions{Tolerance: 1e-300})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "before iteration 4")
		require.Nil(t, res)
	})
	t.Run("no votes at all", func(t *testing.T) {
		empty, err := quality.NewVoteMatrix(3, 2, 4, nil)
		require.NoError(t, err)
		res, err := quality.DawidSkene(ctx, empty, quality.DawidSkeneOptions{})
		require.NoError(t, err)
		require.True(t, res.Converged)
		require.Equal(t, 0.0, res.LogLikelihood)
		require.InDeltaSlice(t, []float64{0.25, 0.25, 0.25, 0.25}, res.Priors, 1e-15)
		require.Equal(t, quality.DawidSkeneLabel{Class: 0, Prob: 0.25}, res.Labels[2])
	})
}

// consCountdownCtx reports cancellation from its (left+1)-th Err call on.
type consCountdownCtx struct {
	context.Context
	left int
}

func (c *consCountdownCtx) Err() error {
	if c.left == 0 {
		return context.Canceled
	}
	c.left--
	return nil
}
