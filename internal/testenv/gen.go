package testenv

import (
	"math/rand/v2"
	"strconv"
)

// words gives generated text a realistic letter and word distribution, so that
// compression ratios in tests and benchmarks resemble real exports.
var words = []string{
	"the", "of", "and", "to", "in", "is", "label", "image", "annotation", "bounding",
	"box", "person", "car", "tree", "approved", "rejected", "review", "quality",
	"confidence", "segment", "polygon", "keypoint", "frame", "video", "audio",
	"transcript", "speaker", "sentence", "token", "entity", "location", "organization",
	"date", "time", "value", "comment", "missing", "occluded", "truncated", "difficult",
	"left", "right", "top", "bottom", "width", "height", "category", "dataset", "batch",
	"pedestrian", "bicycle", "traffic", "light", "sign", "road", "lane", "marking",
}

// TextBytes returns n bytes of CSV-like annotation text, deterministic in seed.
func TextBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x1abe1))
	b := make([]byte, 0, n+256)
	for row := 0; len(b) < n; row++ {
		b = strconv.AppendInt(b, int64(row), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, 1700000000+int64(rng.IntN(10000000)), 10)
		b = append(b, ',')
		b = append(b, words[rng.IntN(len(words))]...)
		b = append(b, ',')
		b = strconv.AppendFloat(b, rng.Float64(), 'f', 3, 64)
		b = append(b, ',')
		for i, k := 0, 3+rng.IntN(12); i < k; i++ {
			if i > 0 {
				b = append(b, ' ')
			}
			// Zipf-like: common words far more often than rare ones.
			b = append(b, words[min(rng.IntN(len(words)), rng.IntN(len(words)))]...)
		}
		b = append(b, '\n')
	}
	return b[:n]
}

// RandomBytes returns n incompressible bytes (like an image or a video),
// deterministic in seed.
func RandomBytes(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}
