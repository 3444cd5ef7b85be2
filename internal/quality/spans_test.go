package quality_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/quality"
)

func span(start, end int, labels ...string) quality.Span {
	return quality.Span{Start: start, End: end, Labels: labels}
}

// TestSpanF1ByHand counts a small NER case by hand:
//
//	got                 ref                 exact   overlap
//	0  [0,5)   PER      0  [0,5)   PER      yes     yes
//	1  [10,15) ORG      1  [10,15) LOC      no      no (labels differ)
//	2  [20,30) LOC      2  [22,28) LOC      no      yes
//	3  [40,45) PER      —                   no      no
//	4  [50,55) PER      3  [52,60) PER      no      yes
//	—                   4  [70,80) ORG      no      no
//
// Exact: TP 1 of 5 and 5: P = R = F1 = 0.2. Overlap: TP 3: 0.6.
func TestSpanF1ByHand(t *testing.T) {
	got := []quality.Span{span(0, 5, "PER"), span(10, 15, "ORG"), span(20, 30, "LOC"), span(40, 45, "PER"), span(50, 55, "PER")}
	ref := []quality.Span{span(0, 5, "PER"), span(10, 15, "LOC"), span(22, 28, "LOC"), span(52, 60, "PER"), span(70, 80, "ORG")}
	s, err := quality.SpanF1(got, ref)
	require.NoError(t, err)
	require.Equal(t, quality.PRF{TP: 1, FP: 4, FN: 4, Precision: 0.2, Recall: 0.2, F1: 0.2}, s.Exact)
	require.Equal(t, 3, s.Overlap.TP)
	require.InDelta(t, 0.6, s.Overlap.F1, 1e-15)
	require.InDelta(t, 0.6, s.Overlap.Precision, 1e-15)
	require.InDelta(t, 0.6, s.Overlap.Recall, 1e-15)
	require.Equal(t, []quality.Pair{
		{Got: 0, Ref: 0, IoU: 1},
		{Got: 2, Ref: 2, IoU: 6.0 / 10},
		{Got: 4, Ref: 3, IoU: 3.0 / 10},
	}, s.Pairs)
}

func TestSpanF1OneToOne(t *testing.T) {
	t.Run("two spans on one reference span count once", func(t *testing.T) {
		s, err := quality.SpanF1([]quality.Span{span(0, 10, "A"), span(5, 15, "A")}, []quality.Span{span(0, 12, "A")})
		require.NoError(t, err)
		require.Equal(t, 1, s.Overlap.TP)
		require.Equal(t, 1, s.Overlap.FP)
		require.Equal(t, 0, s.Exact.TP)
	})
	t.Run("duplicates match exactly once", func(t *testing.T) {
		s, err := quality.SpanF1([]quality.Span{span(3, 7, "A"), span(3, 7, "A")}, []quality.Span{span(3, 7, "A")})
		require.NoError(t, err)
		require.Equal(t, quality.PRF{TP: 1, FP: 1, Precision: 0.5, Recall: 1, F1: 2.0 / 3}, s.Exact)
	})
	t.Run("the most pairs, not the best single overlap", func(t *testing.T) {
		// X = [0,10) overlaps R1 = [0,10) fully and R2 = [2,4); Y = [9,20)
		// overlaps only R1. Taking X–R1 (IoU 1) leaves one pair; X–R2 and
		// Y–R1 make two.
		got := []quality.Span{span(0, 10, "A"), span(9, 20, "A")}
		ref := []quality.Span{span(0, 10, "A"), span(2, 4, "A")}
		s, err := quality.SpanF1(got, ref)
		require.NoError(t, err)
		require.Equal(t, 2, s.Overlap.TP)
		require.Equal(t, []quality.Pair{{Got: 0, Ref: 1, IoU: 0.2}, {Got: 1, Ref: 0, IoU: 1.0 / 20}}, s.Pairs)
		require.Equal(t, 1, s.Exact.TP)
	})
	t.Run("overlap decides among as many pairs", func(t *testing.T) {
		// Both pairings have two pairs; X–R1 + Y–R2 overlap more.
		got := []quality.Span{span(0, 10, "A"), span(10, 20, "A")}
		ref := []quality.Span{span(1, 11, "A"), span(9, 19, "A")}
		s, err := quality.SpanF1(got, ref)
		require.NoError(t, err)
		require.Equal(t, []quality.Pair{{Got: 0, Ref: 0, IoU: 9.0 / 11}, {Got: 1, Ref: 1, IoU: 9.0 / 11}}, s.Pairs)
	})
	t.Run("label sets compare as sets", func(t *testing.T) {
		s, err := quality.SpanF1([]quality.Span{span(0, 4, "B", "A")}, []quality.Span{span(0, 4, "A", "B", "A")})
		require.NoError(t, err)
		require.Equal(t, 1, s.Exact.TP)
		s, err = quality.SpanF1([]quality.Span{span(0, 4, "A")}, []quality.Span{span(0, 4, "A", "B")})
		require.NoError(t, err)
		require.Equal(t, 0, s.Overlap.TP)
	})
	t.Run("touching spans do not overlap", func(t *testing.T) {
		s, err := quality.SpanF1([]quality.Span{span(0, 5, "A")}, []quality.Span{span(5, 9, "A")})
		require.NoError(t, err)
		require.Equal(t, 0, s.Overlap.TP)
	})
}

func TestSpanF1Empty(t *testing.T) {
	s, err := quality.SpanF1(nil, nil)
	require.NoError(t, err)
	perfect := quality.PRF{Precision: 1, Recall: 1, F1: 1}
	require.Equal(t, perfect, s.Exact)
	require.Equal(t, perfect, s.Overlap)

	s, err = quality.SpanF1(nil, []quality.Span{span(0, 1, "A")})
	require.NoError(t, err)
	require.Equal(t, quality.PRF{FN: 1}, s.Exact)
	s, err = quality.SpanF1([]quality.Span{span(0, 1, "A")}, nil)
	require.NoError(t, err)
	require.Equal(t, quality.PRF{FP: 1}, s.Overlap)
}
