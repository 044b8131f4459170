package linear

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestStratifiedSplit(t *testing.T) {
	y := make([]int, 0, 1000)
	counts := []int{500, 300, 150, 47, 3}
	for c, n := range counts {
		for range n {
			y = append(y, c)
		}
	}
	s := StratifiedSplit(y, len(counts), 0.1, 0.2, 9)
	all := append(append(append([]int{}, s.Train...), s.Val...), s.Test...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("splits do not partition the rows (index %d holds %d)", i, v)
		}
	}
	for c, n := range counts {
		var tr, va, te int
		for _, r := range s.Train {
			tr += b2i(y[r] == c)
		}
		for _, r := range s.Val {
			va += b2i(y[r] == c)
		}
		for _, r := range s.Test {
			te += b2i(y[r] == c)
		}
		wantTe, wantVa := int(math.Round(0.2*float64(n))), int(math.Round(0.1*float64(n)))
		if te != wantTe || va != wantVa || tr != n-wantTe-wantVa {
			t.Errorf("class %d (%d rows): %d/%d/%d, want %d/%d/%d", c, n, tr, va, te, n-wantTe-wantVa, wantVa, wantTe)
		}
	}
	if !reflect.DeepEqual(s, StratifiedSplit(y, len(counts), 0.1, 0.2, 9)) {
		t.Error("same seed, different split")
	}
	if reflect.DeepEqual(s, StratifiedSplit(y, len(counts), 0.1, 0.2, 10)) {
		t.Error("different seed, same split")
	}
}

// The permutation depends only on PCG's defined output stream: it must equal a separate
// restatement of Fisher–Yates (j = ⌊u·(i+1)/2⁶⁴⌋) written with 32-bit arithmetic.
func TestShufflePinned(t *testing.T) {
	s := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	shuffle(s, rand.NewPCG(1, 2))
	ref := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	pcg := rand.NewPCG(1, 2)
	for i := len(ref) - 1; i > 0; i-- {
		// Independent restatement: j = floor(u·(i+1) / 2^64) for the first u whose low product
		// passes Lemire's test (for n ≤ 10 rejection has probability < 1e-18).
		u := pcg.Uint64()
		j := int(mulHi(u, uint64(i+1)))
		ref[i], ref[j] = ref[j], ref[i]
	}
	if !slices.Equal(s, ref) {
		t.Fatalf("shuffle %v, Fisher–Yates reference %v", s, ref)
	}
}

// mulHi computes ⌊a·b / 2^64⌋ with big-number arithmetic on 32-bit halves.
func mulHi(a, b uint64) uint64 {
	aHi, aLo := a>>32, a&0xffffffff
	bHi, bLo := b>>32, b&0xffffffff
	mid1 := aHi * bLo
	mid2 := aLo * bHi
	carry := ((aLo*bLo)>>32 + mid1&0xffffffff + mid2&0xffffffff) >> 32
	return aHi*bHi + mid1>>32 + mid2>>32 + carry
}

func TestStratifiedFolds(t *testing.T) {
	y := []int{0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2}
	rows := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	folds := StratifiedFolds(rows, y, 3, 3, 1)
	seen := map[int]bool{}
	for f, fold := range folds {
		if len(fold) != 4 {
			t.Errorf("fold %d has %d rows, want 4", f, len(fold))
		}
		per := make([]int, 3)
		for _, r := range fold {
			if seen[r] {
				t.Fatalf("row %d in two folds", r)
			}
			seen[r] = true
			per[y[r]]++
		}
		if per[0] != 2 || per[1] != 1 || per[2] != 1 {
			t.Errorf("fold %d class counts %v, want [2 1 1]", f, per)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
