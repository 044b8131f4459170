package linear

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Several k from one search equal separate single-k searches exactly, and k is capped at the
// bank size.
func TestKNNScoresMultiEqualsSingle(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const n, d, classes = 120, 7, 3
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]int, n)
	for i := range y {
		y[i] = r.IntN(classes)
	}
	var bank, query []int
	for i := range n {
		if i%4 == 0 {
			query = append(query, i)
		} else {
			bank = append(bank, i)
		}
	}
	ks := []int{10, 1, 50, 500} // 500 > bank: capped
	multi := make([][]float64, len(ks))
	for i := range multi {
		multi[i] = make([]float64, len(query)*classes)
	}
	KNNScoresMulti(multi, x, d, y, classes, bank, query, ks, 0.07)
	for i, k := range ks {
		single := make([]float64, len(query)*classes)
		KNNScores(single, x, d, y, classes, bank, query, KNNOptions{K: k})
		if !slices.Equal(single, multi[i]) {
			t.Errorf("k=%d: multi-k votes differ from a single-k search", k)
		}
	}
	all := make([]float64, len(query)*classes)
	KNNScores(all, x, d, y, classes, bank, query, KNNOptions{K: len(bank)})
	if !slices.Equal(all, multi[3]) {
		t.Errorf("k=500 with %d bank rows should vote with the whole bank", len(bank))
	}
}

func TestEvaluateKNNByKAndConcatenation(t *testing.T) {
	ds := blobs(600, 3, []float64{-3, 0, 3}, []float64{1. / 3, 1. / 3, 1. / 3}, 7)
	// A second column: noise only. The concatenation must carry the first column's signal.
	noise := blobs(600, 2, []float64{0, 0, 0}, []float64{1. / 3, 1. / 3, 1. / 3}, 8)
	tab := &Table{Columns: []string{"block1_mean", "block2_mean"}, Values: [][]float32{ds.X, noise.X}, Dims: []int{3, 2}, N: 600, Y: ds.Y, Classes: ds.Classes}
	cat, err := tab.Dataset("block1_mean+block2_mean")
	if err != nil {
		t.Fatal(err)
	}
	if cat.D != 5 {
		t.Fatalf("concatenated dim %d, want 5", cat.D)
	}
	for _, row := range []int{0, 17, 599} {
		want := slices.Concat(ds.X[row*3:(row+1)*3], noise.X[row*2:(row+1)*2])
		if !slices.Equal(cat.X[row*5:(row+1)*5], want) {
			t.Fatalf("row %d: %v, want %v", row, cat.X[row*5:(row+1)*5], want)
		}
	}
	if _, err := tab.SelectColumns([]string{"block1_mean+block9_mean"}); err == nil {
		t.Error("an unknown part of a concatenation must be an error")
	}
	res, err := EvaluateAll(tab, []string{"block2_mean", "block1_mean+block2_mean"}, Config{Seed: 3, Cs: []float64{0.1, 1}, KNN: KNNOptions{Ks: []int{5, 20}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Depth order: a concatenation sits at its deepest part (block2), a tie with block2_mean
	// broken by name.
	if res[0].Column != "block1_mean+block2_mean" || res[1].Column != "block2_mean" {
		t.Fatalf("columns %s, %s", res[0].Column, res[1].Column)
	}
	if a, _ := Depth("block2_mean+layer9_max", 6); a != 12 {
		t.Errorf("depth of block2_mean+layer9_max = %v, want 12 (block 2 = layer 12, deeper than layer 9)", a)
	}
	for _, r := range res {
		if len(r.KNNByK) != 2 || r.KNNByK[0].K != 5 || r.KNNByK[1].K != 20 || r.KNN != &r.KNNByK[0].Metrics {
			t.Errorf("%s: kNN by k %+v", r.Column, r.KNNByK)
		}
		if math.IsNaN(r.Test.BalancedAcc) {
			t.Errorf("%s: balanced accuracy undefined", r.Column)
		}
	}
	byName := map[string]*Result{res[0].Column: res[0], res[1].Column: res[1]}
	if c, n := byName["block1_mean+block2_mean"].Test.Top1, byName["block2_mean"].Test.Top1; c < 0.8 || n > 0.5 {
		t.Errorf("top-1: concatenation %.3f (want ≥ 0.8: means 3 apart), noise alone %.3f (want chance ≈ 1/3)", c, n)
	}
}

// Hand-computed: sample sd of {1, 2, 3, 4} is √(5/3).
func TestMeanSD(t *testing.T) {
	m, sd := meanSD([]float64{1, 2, 3, 4})
	if m != 2.5 || math.Abs(sd-math.Sqrt(5.0/3)) > 1e-15 {
		t.Errorf("mean %v sd %v, want 2.5 and √(5/3)", m, sd)
	}
	if _, sd := meanSD([]float64{7}); !math.IsNaN(sd) {
		t.Errorf("sd of one value = %v, want NaN", sd)
	}
}

// numpy.percentile([1, 2, 3, 4, 5], 2.5) = 1.1 and (…, 97.5) = 4.9 (linear interpolation).
func TestPercentile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5}
	if lo, hi := percentile(s, 0.025), percentile(s, 0.975); math.Abs(lo-1.1) > 1e-12 || math.Abs(hi-4.9) > 1e-12 {
		t.Errorf("percentiles %v %v, want 1.1 4.9", lo, hi)
	}
}

// The bootstrap interval of a proportion p = 0.7 over n = 2000 rows is close to the normal
// approximation p ± 1.96·√(p(1−p)/n) = 0.7 ± 0.0201; with 2000 resamples the percentile estimates
// wander by about 0.002, so we allow 0.005.
func TestBootstrapCI(t *testing.T) {
	correct := make([]bool, 2000)
	for i := range 1400 {
		correct[i] = true
	}
	ci := bootstrapCI(correct, 2000, 1)
	half := 1.96 * math.Sqrt(0.7*0.3/2000)
	if math.Abs(ci[0]-(0.7-half)) > 0.005 || math.Abs(ci[1]-(0.7+half)) > 0.005 {
		t.Errorf("CI %v, want ≈ [%.4f, %.4f]", ci, 0.7-half, 0.7+half)
	}
	if again := bootstrapCI(correct, 2000, 1); again != ci {
		t.Errorf("same seed, different interval: %v vs %v", again, ci)
	}
}

func TestFewShot(t *testing.T) {
	ds := blobs(900, 3, []float64{-4, 0, 4}, []float64{1. / 3, 1. / 3, 1. / 3}, 9)
	cfg := Config{Seed: 2, Cs: []float64{0.01, 1}, Shots: []int{1, 5, 1000}, Seeds: 4, Bootstrap: 200, NoKNN: true}
	r, err := Evaluate("block1_mean", ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.FewShot) != 3 {
		t.Fatalf("few-shot results %d, want 3", len(r.FewShot))
	}
	for _, f := range r.FewShot {
		if len(f.Top1) != 4 || len(f.C) != 4 || f.Seeds != 4 {
			t.Errorf("%d-shot: %d draws, want 4", f.Shots, len(f.Top1))
		}
		m, sd := meanSD(f.Top1)
		if m != f.Top1Mean || sd != float64(f.Top1SD) {
			t.Errorf("%d-shot: mean ± sd %v ± %v, recomputed %v ± %v", f.Shots, f.Top1Mean, f.Top1SD, m, sd)
		}
	}
	if f := r.FewShot[0]; f.MinPerClass != 1 || slices.Min(f.Top1) == slices.Max(f.Top1) {
		t.Errorf("1-shot: min per class %d (want 1), draws %v (want different draws)", f.MinPerClass, f.Top1)
	}
	// 1000 shots exceeds every class: all train rows, so every draw is the same fit.
	if f := r.FewShot[2]; f.MinPerClass >= 1000 || slices.Min(f.Top1) != slices.Max(f.Top1) {
		t.Errorf("1000-shot: min per class %d, draws %v", f.MinPerClass, f.Top1)
	}
	if r.FewShot[1].Top1Mean < 0.7 {
		t.Errorf("5-shot top-1 %.3f on classes 4σ apart; want ≥ 0.7", r.FewShot[1].Top1Mean)
	}
	if ci := r.TestTop1CI95; ci == nil || !(ci[0] <= r.Test.Top1 && r.Test.Top1 <= ci[1]) {
		t.Errorf("bootstrap CI %v does not contain top-1 %v", ci, r.Test.Top1)
	}
	again, _ := Evaluate("block1_mean", ds, cfg)
	if !slices.Equal(again.FewShot[0].Top1, r.FewShot[0].Top1) {
		t.Errorf("few-shot draws not repeatable with one seed")
	}
}
