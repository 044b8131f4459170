package linear

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// blobs draws n rows of d features: class c with probability prior[c], informative feature 0 ~
// N(means[c], 1), the others N(0, 1) noise scaled by 10 and shifted by 5 (standardisation must
// undo that).
func blobs(n, d int, means, prior []float64, seed uint64) Dataset {
	r := rand.New(rand.NewPCG(seed, 3))
	ds := Dataset{X: make([]float32, n*d), N: n, D: d, Y: make([]int, n)}
	for c := range means {
		ds.Classes = append(ds.Classes, string(rune('a'+c)))
	}
	for i := range n {
		u, c := r.Float64(), 0
		for c < len(prior)-1 && u >= prior[c] {
			u -= prior[c]
			c++
		}
		ds.Y[i] = c
		ds.X[i*d] = float32(means[c] + r.NormFloat64())
		for j := 1; j < d; j++ {
			ds.X[i*d+j] = float32(5 + 10*r.NormFloat64())
		}
	}
	return ds
}

// Well-separated classes (means 12 apart, σ = 1: a row crosses the midpoint with probability
// ~1e-9) must be classified perfectly by the probe. (kNN is not required to be: 3 of 4 features
// are large noise.)
func TestEvaluateSeparable(t *testing.T) {
	ds := blobs(1500, 4, []float64{-12, 0, 12}, []float64{1. / 3, 1. / 3, 1. / 3}, 1)
	r, err := Evaluate("block1_mean", ds, Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Test.Top1 != 1 || r.Test.MacroF1 != 1 {
		t.Fatalf("separable: top-1 %v macro-F1 %v, want 1", r.Test.Top1, r.Test.MacroF1)
	}
	if !math.IsNaN(r.Test.Top5) {
		t.Errorf("top-5 with 3 classes should be undefined, got %v", r.Test.Top5)
	}
	if r.NTest != 300 || r.NVal != 150 || r.NTrain != 1050 {
		t.Errorf("split sizes %d/%d/%d, want ≈1050/150/300", r.NTrain, r.NVal, r.NTest)
	}
}

// Two overlapping classes: x0 ~ N(±1, 1), equal priors. The Bayes rule (sign of x0) has accuracy
// Φ(1) = 0.8413 and log-loss E[log(1+e^{−2x})], x ~ N(1,1), ≈ 0.3563 (numerical integral, below). With
// 4000 test rows the standard error of accuracy is 0.006; we allow 0.025 (4σ), and 0.03 on
// the log-loss (its standard error here is ≈ 0.008).
func TestEvaluateOverlappingMatchesBayes(t *testing.T) {
	ds := blobs(20000, 3, []float64{-1, 1}, []float64{0.5, 0.5}, 2)
	r, err := Evaluate("cross_mean", ds, Config{Seed: 2, NoKNN: true})
	if err != nil {
		t.Fatal(err)
	}
	bayesAcc := 0.5 * (1 + math.Erf(1/math.Sqrt2))
	// Bayes log-loss: E over x ~ N(1,1) of log(1 + exp(−2x)) (the posterior logit is 2x).
	bayesLL := 0.0
	const h = 1e-3
	for x := -9.0; x < 11; x += h {
		bayesLL += h * math.Exp(-(x-1)*(x-1)/2) / math.Sqrt(2*math.Pi) * math.Log1p(math.Exp(-2*x))
	}
	if math.Abs(r.Test.Top1-bayesAcc) > 0.025 {
		t.Errorf("overlapping: top-1 %.4f, Bayes %.4f", r.Test.Top1, bayesAcc)
	}
	if math.Abs(r.Test.LogLoss-bayesLL) > 0.03 {
		t.Errorf("overlapping: log-loss %.4f, Bayes %.4f", r.Test.LogLoss, bayesLL)
	}
	t.Logf("top-1 %.4f (Bayes %.4f), log-loss %.4f (Bayes %.4f), best C %g", r.Test.Top1, bayesAcc, r.Test.LogLoss, bayesLL, r.BestC)
}

// Imbalanced 95/5 classes, separated by 4σ: the stratified split keeps the ratio in every part,
// and per-class accuracy of the rare class is reported separately (Bayes recall of the rare class
// with the optimal threshold is ≈ 0.93; a majority-vote classifier would score 0).
func TestEvaluateImbalanced(t *testing.T) {
	ds := blobs(8000, 2, []float64{0, 4}, []float64{0.95, 0.05}, 3)
	r, err := Evaluate("decoder", ds, Config{Seed: 3, NoKNN: true})
	if err != nil {
		t.Fatal(err)
	}
	rare := 0
	for _, v := range r.Test.Confusion[1] {
		rare += v
	}
	if frac := float64(rare) / float64(r.NTest); math.Abs(frac-0.05) > 0.01 {
		t.Errorf("rare class is %.3f of test, want ≈0.05 (stratified)", frac)
	}
	if acc := r.Test.PerClassAcc[1]; acc < 0.75 || acc > 1 {
		t.Errorf("rare-class accuracy %.3f, want ≈0.9", acc)
	}
	if r.Test.MacroF1 >= r.Test.Top1 {
		t.Errorf("macro-F1 %.3f should be below top-1 %.3f on imbalanced data", r.Test.MacroF1, r.Test.Top1)
	}
}

// Same seed → the same result (durations aside); another seed → another split.
func TestEvaluateDeterministic(t *testing.T) {
	ds := blobs(900, 6, []float64{-1, 0, 1, 2, 3}, []float64{0.2, 0.2, 0.2, 0.2, 0.2}, 4)
	cfg := Config{Seed: 42, Folds: 3, Cs: []float64{0.01, 1}}
	a, err := Evaluate("layer3", ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Evaluate("layer3", ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Compare what the report holds (JSON; NaN ≠ NaN would defeat reflect.DeepEqual).
	a.Durations, b.Durations = Durations{}, Durations{}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatal("two runs with the same seed differ")
	}
	cfg.Seed = 43
	c, err := Evaluate("layer3", ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Test.Confusion, c.Test.Confusion) && a.ByC[0].ValTop1 == c.ByC[0].ValTop1 {
		t.Error("a different seed gave an identical evaluation")
	}
	if len(a.ByC[0].Fits) != 3 {
		t.Errorf("3-fold selection recorded %d fits per C", len(a.ByC[0].Fits))
	}
}

// A split column is honoured exactly.
func TestEvaluateSplitColumn(t *testing.T) {
	ds := blobs(300, 3, []float64{-3, 3}, []float64{0.5, 0.5}, 5)
	ds.Split = make([]string, ds.N)
	for i := range ds.Split {
		ds.Split[i] = []string{"train", "train", "train", "validation", "test"}[i%5]
	}
	r, err := Evaluate("x", ds, Config{NoKNN: true, Cs: []float64{1}})
	if err != nil {
		t.Fatal(err)
	}
	if r.NTrain != 180 || r.NVal != 60 || r.NTest != 60 || r.SplitFrom != "column" {
		t.Fatalf("split %d/%d/%d from %q, want 180/60/60 from the column", r.NTrain, r.NVal, r.NTest, r.SplitFrom)
	}
}

func TestEvaluateBadInput(t *testing.T) {
	good := func() Dataset { return blobs(200, 3, []float64{-3, 3}, []float64{0.5, 0.5}, 6) }
	cases := []struct {
		name   string
		mutate func(*Dataset, *Config)
		want   string
	}{
		{"NaN", func(d *Dataset, _ *Config) { d.X[7] = float32(math.NaN()) }, "row 2 feature 1 is NaN"},
		{"Inf", func(d *Dataset, _ *Config) { d.X[3] = float32(math.Inf(1)) }, "row 1 feature 0 is +Inf"},
		{"single class", func(d *Dataset, _ *Config) { d.Classes = d.Classes[:1] }, "at least 2 classes"},
		{"one class present", func(d *Dataset, _ *Config) { clear(d.Y) }, "train split has 1 class"},
		{"label range", func(d *Dataset, _ *Config) { d.Y[5] = 9 }, "row 5 has label 9"},
		{"shape", func(d *Dataset, _ *Config) { d.X = d.X[:10] }, "10 values"},
		{"empty test split", func(d *Dataset, _ *Config) {
			d.Split = make([]string, d.N)
			for i := range d.Split {
				d.Split[i] = []string{"train", "val"}[i%2]
			}
		}, "empty test split"},
		{"bad split value", func(d *Dataset, _ *Config) { d.Split = make([]string, d.N) }, `split value "" is not`},
		{"bad C", func(_ *Dataset, c *Config) { c.Cs = []float64{1, -2} }, "C must be positive"},
		{"fractions", func(_ *Dataset, c *Config) { c.ValFrac, c.TestFrac = 0.6, 0.5 }, "sum below 1"},
	}
	for _, c := range cases {
		ds, cfg := good(), Config{Cs: []float64{1}}
		c.mutate(&ds, &cfg)
		_, err := Evaluate("block2_mean", ds, cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "block2_mean") && c.name != "bad C" && c.name != "fractions" {
			t.Errorf("%s: error %v, want one naming the column and containing %q", c.name, err, c.want)
		}
	}
}

func TestEvaluateAllMissingColumn(t *testing.T) {
	ds := blobs(100, 2, []float64{-3, 3}, []float64{0.5, 0.5}, 7)
	tab := &Table{Columns: []string{"cross_mean", "block1_mean"}, Values: [][]float32{ds.X, ds.X}, Dims: []int{2, 2},
		N: ds.N, Y: ds.Y, Classes: ds.Classes}
	_, err := EvaluateAll(tab, []string{"block9_mean"}, Config{}, nil)
	if err == nil || !strings.Contains(err.Error(), `column "block9_mean" not in features (have: cross_mean, block1_mean)`) {
		t.Fatalf("got %v", err)
	}
}
