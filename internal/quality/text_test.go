package quality_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/quality"
)

// dpLevenshtein is the textbook two-row recurrence over code points, the
// oracle for the bit-parallel implementation and the benchmark's baseline.
func dpLevenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			sub := prev[j-1]
			if ra[i-1] != rb[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func TestLevenshteinByHand(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"kitten", "sitting", 3},
		{"flaw", "lawn", 2},
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"abc", "abc", 0},
		{"héllo", "hello", 1},   // é is one code point (two bytes)
		{"🐱 cat", " cat", 1},    // the emoji is one code point (four bytes)
		{"a\r\nb", "a\nb", 1},   // \r\n is two code points, as in offsets
		{"abcdef", "azcdxf", 2}, // two substitutions
		{"ab", "ba", 2},         // no transpositions in Levenshtein
		{"sunday", "saturday", 3},
	} {
		require.Equal(t, tc.d, quality.Levenshtein(tc.a, tc.b), "%q → %q", tc.a, tc.b)
		require.Equal(t, tc.d, quality.Levenshtein(tc.b, tc.a), "%q → %q", tc.b, tc.a)
		require.Equal(t, tc.d, dpLevenshtein(tc.a, tc.b), "oracle %q → %q", tc.a, tc.b)
	}
}

func TestTextSimilarity(t *testing.T) {
	require.InDelta(t, 1-3.0/7, quality.TextSimilarity("kitten", "sitting"), 1e-15)
	require.Equal(t, 1.0, quality.TextSimilarity("", ""))
	require.Equal(t, 0.0, quality.TextSimilarity("", "x"))
	require.Equal(t, 0.0, quality.TextSimilarity("abc", "xyz"))
	require.Equal(t, 1.0, quality.TextSimilarity("日本語", "日本語"))
	require.InDelta(t, 2.0/3, quality.TextSimilarity("日本語", "日本"), 1e-15, "normalised by code points, not bytes")
}

// randomText draws n code points from a small alphabet mixing ASCII and
// multi-byte runes, so that random strings share a lot.
func randomText(rng *rand.Rand, n int, alphabet []rune) string {
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

// mutate applies k random edits to s.
func mutate(rng *rand.Rand, s string, k int, alphabet []rune) string {
	r := []rune(s)
	for range k {
		switch op := rng.IntN(3); {
		case op == 0 || len(r) == 0:
			i := rng.IntN(len(r) + 1)
			r = append(r[:i], append([]rune{alphabet[rng.IntN(len(alphabet))]}, r[i:]...)...)
		case op == 1:
			i := rng.IntN(len(r))
			r = append(r[:i], r[i+1:]...)
		default:
			r[rng.IntN(len(r))] = alphabet[rng.IntN(len(alphabet))]
		}
	}
	return string(r)
}

// TestLevenshteinAgainstDP covers the block structure: lengths on either
// side of the 64-row word boundaries, unrelated and nearly equal strings.
func TestLevenshteinAgainstDP(t *testing.T) {
	alphabets := [][]rune{[]rune("ab"), []rune("abcé🐱"), []rune("abcdefghijklmnopqrstuvwxyz 日本")}
	lengths := []int{0, 1, 2, 63, 64, 65, 127, 128, 129, 200, 300}
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 9))
		alpha := alphabets[rng.IntN(len(alphabets))]
		n := lengths[rng.IntN(len(lengths))]
		a := randomText(rng, n, alpha)
		var b string
		if rng.IntN(2) == 0 {
			b = randomText(rng, lengths[rng.IntN(len(lengths))], alpha)
		} else {
			b = mutate(rng, a, rng.IntN(20), alpha)
		}
		require.Equal(t, dpLevenshtein(a, b), quality.Levenshtein(a, b), "seed %d: %d × %d code points", seed, len([]rune(a)), len([]rune(b)))
	}
}

// BenchmarkLevenshtein compares the bit-parallel distance with the textbook
// recurrence on two 3,000-code-point texts 10% apart (a long transcription
// and its correction), both timed in the same run.
func BenchmarkLevenshtein(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	alpha := []rune("abcdefghijklmnopqrstuvwxyz    .,é")
	x := randomText(rng, 3000, alpha)
	y := mutate(rng, x, 300, alpha)
	want := dpLevenshtein(x, y)

	start := time.Now()
	const baseRuns = 5
	for range baseRuns {
		if dpLevenshtein(x, y) != want {
			b.Fatal("oracle changed its mind")
		}
	}
	base := float64(time.Since(start).Nanoseconds()) / baseRuns

	b.ResetTimer()
	for b.Loop() {
		if quality.Levenshtein(x, y) != want {
			b.Fatal("wrong distance")
		}
	}
	b.StopTimer()
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(per/1e6, "ms/op-bitparallel")
	b.ReportMetric(base/1e6, "ms/op-dp")
	b.ReportMetric(base/per, "speedup")
}
