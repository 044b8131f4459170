package linear

import (
	"math/rand/v2"
	"testing"
)

// benchFeatures makes n×d float32 features for k classes: each class has a random mean direction
// of norm 2 in feature space, plus N(0,1) noise (a linear probe scores ≈ 64 % top-1).
func benchFeatures(n, d, k int) ([]float32, []int) {
	r := rand.New(rand.NewPCG(1, 2))
	means := make([]float64, k*d)
	for i := range means {
		means[i] = 2 * r.NormFloat64() / 32 // norm ≈ 2 for d = 1024
	}
	x := make([]float32, n*d)
	y := make([]int, n)
	for i := range n {
		y[i] = i % k
		for j := range d {
			x[i*d+j] = float32(means[y[i]*d+j] + r.NormFloat64())
		}
	}
	return x, y
}

// One evaluation of the objective and its gradient at 60,000 × 1,024, 10 classes.
func BenchmarkObjectiveEval60k(b *testing.B) {
	n, d, k := 60000, 1024, 10
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, n*d)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	y := make([]int, n)
	for i := range y {
		y[i] = i % k
	}
	o := newObjective(x, n, d, k, y, 1)
	p := make([]float64, k*d+k)
	for i := range p {
		p[i] = 0.01 * r.NormFloat64()
	}
	g := make([]float64, len(p))
	b.ResetTimer()
	for b.Loop() {
		o.eval(g, p)
	}
}

// The acceptance benchmark: fit one C (standardisation included) on 60,000 × 1,024 features with
// 10 classes, default tolerance. Run with -benchtime 1x.
func BenchmarkFit60kx1024(b *testing.B) {
	n, d, k := 60000, 1024, 10
	x, y := benchFeatures(n, d, k)
	b.ResetTimer()
	for b.Loop() {
		_, info, err := Fit(x, d, nil, y, k, 1, FitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(info.Iterations), "iters")
		b.ReportMetric(float64(info.FuncEvals), "evals")
	}
}

// A harder, more embedding-like variant: 32 shared latent factors with random loadings make the
// features strongly correlated (an ill-conditioned Hessian), and the class signal is weak.
func BenchmarkFit60kx1024Correlated(b *testing.B) {
	n, d, k, f := 60000, 1024, 10, 32
	x, y := benchFeatures(n, d, k)
	r := rand.New(rand.NewPCG(5, 6))
	load := make([]float64, f*d)
	for i := range load {
		load[i] = 3 * r.NormFloat64()
	}
	z := make([]float64, f)
	for i := range n {
		for q := range z {
			z[q] = r.NormFloat64()
		}
		row := x[i*d : (i+1)*d]
		for q, zq := range z {
			for j := range row {
				row[j] += float32(zq * load[q*d+j])
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		_, info, err := Fit(x, d, nil, y, k, 1, FitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(info.Iterations), "iters")
	}
}

// kNN baseline: 1,000 queries against a bank of 10,000 rows of 1,024 features.
func BenchmarkKNNScores(b *testing.B) {
	n, d, k := 11000, 1024, 10
	x, y := benchFeatures(n, d, k)
	bank := make([]int, 10000)
	query := make([]int, 1000)
	for i := range bank {
		bank[i] = i
	}
	for i := range query {
		query[i] = 10000 + i
	}
	dst := make([]float64, len(query)*k)
	b.ResetTimer()
	for b.Loop() {
		KNNScores(dst, x, d, y, k, bank, query, KNNOptions{})
	}
}

// The fused objective with and without the FMA kernels (same data), to show what the assembly buys.
func BenchmarkObjectiveEvalKernels(b *testing.B) {
	n, d, k := 8192, 1024, 10
	x, y, p := randomProblem(n, d, k, 3)
	o := newObjective(x, n, d, k, y, 1)
	g := make([]float64, len(p))
	saved := useFMA
	defer func() { useFMA = saved }()
	for _, fma := range []bool{false, true} {
		if fma && !saved {
			continue
		}
		useFMA = fma
		name := "go"
		if fma {
			name = "fma"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				o.eval(g, p)
			}
		})
	}
}

// The whole protocol for one column with one C (fit on train, score val, warm-started refit on
// train+val, score test), kNN off: 60,000 × 1,024, 10 classes.
func BenchmarkEvaluate60kx1024OneC(b *testing.B) {
	n, d, k := 60000, 1024, 10
	x, y := benchFeatures(n, d, k)
	ds := Dataset{X: x, N: n, D: d, Y: y, Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}}
	b.ResetTimer()
	for b.Loop() {
		r, err := Evaluate("block8_mean", ds, Config{Cs: []float64{1}, NoKNN: true})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Test.Top1, "top1")
		b.ReportMetric(float64(r.Refit.Iterations), "refit-iters")
	}
}

// The C sweep, 10,000 × 256, 10 classes, kNN off: the old 8-value grid (1e-4 … 1e3) against
// CLIP's 13-value default (1e-6 … 1e6), both warm-started from strong to weak regularisation.
// The total L-BFGS iterations over the sweep are reported.
func BenchmarkCSweep(b *testing.B) {
	n, d, k := 10000, 256, 10
	x, y := benchFeatures(n, d, k)
	ds := Dataset{X: x, N: n, D: d, Y: y, Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}}
	for _, grid := range []struct {
		name string
		cs   []float64
	}{{"1e-4..1e3", []float64{1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000}}, {"default-1e-6..1e6", nil}} {
		b.Run(grid.name, func(b *testing.B) {
			for b.Loop() {
				r, err := Evaluate("block8_mean", ds, Config{Cs: grid.cs, NoKNN: true})
				if err != nil {
					b.Fatal(err)
				}
				iters := 0
				for _, f := range fitsOf(r) {
					iters += f.Iterations
				}
				b.ReportMetric(float64(iters), "sweep-iters")
			}
		})
	}
}
