package quality

import (
	"slices"
)

// TextSimilarity is 1 − d/max(|a|, |b|), d being the Levenshtein distance
// between a and b (insertions, deletions and substitutions of one code point
// each) and |·| lengths in code points. Two empty strings are identical:
// similarity 1. The result is in [0, 1].
func TextSimilarity(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	longer := max(len(ra), len(rb))
	if longer == 0 {
		return 1
	}
	return 1 - float64(levenshtein(ra, rb))/float64(longer)
}

// Levenshtein is the edit distance between a and b in code points: the
// fewest insertions, deletions and substitutions of one code point that turn
// a into b. Invalid UTF-8 bytes count as one code point (U+FFFD) each.
func Levenshtein(a, b string) int {
	return levenshtein([]rune(a), []rune(b))
}

// levenshtein trims the common prefix and suffix, which changes no distance,
// and runs Myers' bit-parallel algorithm in Hyyrö's formulation for the
// Levenshtein distance (H. Hyyrö, "A bit-vector algorithm for computing
// Levenshtein and Damerau edit distances", 2003), blocked in 64-row words as
// in Myers (1999) and edlib: the dynamic-programming matrix is kept as
// vertical deltas, a column of 64 cells per word operation. It costs
// ⌈m/64⌉·n word steps, m the shorter string, against m·n cells for the
// textbook recurrence (text_test.go checks it against that recurrence), and
// O(m) memory.
func levenshtein(a, b []rune) int {
	for len(a) > 0 && len(b) > 0 && a[0] == b[0] {
		a, b = a[1:], b[1:]
	}
	for len(a) > 0 && len(b) > 0 && a[len(a)-1] == b[len(b)-1] {
		a, b = a[:len(a)-1], b[:len(b)-1]
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	m := len(a)
	if m == 0 {
		return len(b)
	}
	blocks := (m + 63) / 64

	// peq: for each code point of the pattern a, the blocks where it occurs
	// and its bit mask there, sorted by block. A text code point walks its
	// list alongside the blocks, so memory stays O(m) whatever the alphabet.
	type occ struct {
		block int
		mask  uint64
	}
	index := make(map[rune]int, min(m, 256))
	var peq [][]occ
	for i, r := range a {
		k, ok := index[r]
		if !ok {
			k = len(peq)
			index[r] = k
			peq = append(peq, nil)
		}
		blk, bit := i/64, uint64(1)<<(i%64)
		if l := peq[k]; len(l) > 0 && l[len(l)-1].block == blk {
			l[len(l)-1].mask |= bit
		} else {
			peq[k] = append(l, occ{block: blk, mask: bit})
		}
	}

	pv := slices.Repeat([]uint64{^uint64(0)}, blocks) // vertical deltas +1: D[i][0] = i
	mv := make([]uint64, blocks)
	lastBit := uint64(1) << ((m - 1) % 64)
	score := m
	for _, r := range b {
		var list []occ
		if k, ok := index[r]; ok {
			list = peq[k]
		}
		// hin is the horizontal delta entering a block's top row, −1, 0 or
		// +1; row 0 of the matrix is D[0][j] = j, so it starts at +1.
		hin := 1
		for blk := range blocks {
			var eq uint64
			if len(list) > 0 && list[0].block == blk {
				eq = list[0].mask
				list = list[1:]
			}
			high := uint64(1) << 63
			if blk == blocks-1 {
				high = lastBit
			}
			// One column step of a block (edlib's calculateBlock). Bits above
			// high in a last, partial block hold garbage that never reaches
			// the rows in use: carries and shifts only move upwards.
			p, n := pv[blk], mv[blk]
			xv := eq | n
			if hin < 0 {
				eq |= 1
			}
			xh := (((eq & p) + p) ^ p) | eq
			ph := n | ^(xh | p)
			mh := p & xh
			hout := 0
			if ph&high != 0 {
				hout = 1
			} else if mh&high != 0 {
				hout = -1
			}
			ph <<= 1
			mh <<= 1
			if hin < 0 {
				mh |= 1
			} else if hin > 0 {
				ph |= 1
			}
			pv[blk] = mh | ^(xv | ph)
			mv[blk] = ph & xv
			hin = hout
		}
		score += hin
	}
	return score
}
