package matching_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/matching"
)

var ctx = context.Background()

func TestRandomSmallMatchesBruteForce(t *testing.T) {
	runs := 5000
	if matching.RaceEnabled {
		runs = 2000
	}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 1))
		in := generate(rng, genParams{
			jobs:          1 + rng.IntN(7),
			users:         1 + rng.IntN(4),
			maxCap:        3,
			langs:         []string{"", "en", "de", "En"},
			excludeChance: 0.3,
			reviewers:     seed%3 == 0,
			quirks:        true,
		})
		res, err := in.solve()
		require.NoError(t, err, "seed %d", seed)
		require.NoError(t, in.check(res), "seed %d", seed)
		require.Equal(t, in.bruteForce(), in.evaluate(res), "seed %d: objective (−score, −assigned, Σdue, Σload, Σid)", seed)
	}
}

func TestRandomMediumMatchesHungarian(t *testing.T) {
	runs := 16
	if matching.RaceEnabled {
		runs = 4
	}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 2))
		in := generate(rng, genParams{
			jobs:          60 + rng.IntN(140),
			users:         8 + rng.IntN(25),
			maxCap:        6,
			langs:         []string{"", "en", "de", "zh"},
			excludeChance: 0.15,
			reviewers:     seed%4 == 1,
			quirks:        seed%2 == 0,
		})
		res, err := in.solve()
		require.NoError(t, err, "seed %d", seed)
		require.NoError(t, in.check(res), "seed %d", seed)
		require.Equal(t, in.hungarian(), in.evaluate(res), "seed %d: objective (−score, −assigned, Σdue, Σload, Σid)", seed)
	}
}
