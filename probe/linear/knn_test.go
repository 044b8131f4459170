package linear

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Hand-worked kNN: bank rows at angles 0°, 10°, 90°, 180° (classes 0, 0, 1, 1; magnitudes vary,
// cosine ignores them), query at 30°, k = 3, T = 0.5. Similarities cos 30° = 0.8660, cos 20° =
// 0.9397, cos 60° = 0.5 for the three nearest (180° is excluded). Votes: class 0 gets
// e^{0.8660/0.5} + e^{0.9397/0.5}, class 1 gets e^{0.5/0.5}.
func TestKNNHandWorked(t *testing.T) {
	deg := math.Pi / 180
	pt := func(a, r float64) []float32 {
		return []float32{float32(r * math.Cos(a*deg)), float32(r * math.Sin(a*deg))}
	}
	x := slices.Concat(pt(0, 1), pt(10, 3), pt(90, 0.5), pt(180, 2), pt(30, 7))
	y := []int{0, 0, 1, 1, 0}
	got := make([]float64, 2)
	KNNScores(got, x, 2, y, 2, []int{0, 1, 2, 3}, []int{4}, KNNOptions{K: 3, Temperature: 0.5})
	want := []float64{math.Exp(math.Cos(30*deg)/0.5) + math.Exp(math.Cos(20*deg)/0.5), math.Exp(math.Cos(60*deg) / 0.5)}
	for c := range want {
		if math.Abs(got[c]-want[c]) > 1e-5*want[c] { // float32 similarities
			t.Errorf("class %d: vote %.6f, want %.6f", c, got[c], want[c])
		}
	}
}

// topK against a full sort, including ties (the lower index first).
func TestTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 50 {
		n := 1 + r.IntN(60)
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(r.IntN(10)) // many ties
		}
		k := 1 + r.IntN(25)
		idx := make([]int, k)
		val := make([]float32, k)
		got := topK(idx, val, s)
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case s[a] > s[b]:
				return -1
			case s[a] < s[b]:
				return 1
			}
			return 0
		})
		want := order[:min(k, n)]
		if got != len(want) || !slices.Equal(idx[:got], want) {
			t.Fatalf("trial %d: topK %v, sorted %v", trial, idx[:got], want)
		}
	}
}
