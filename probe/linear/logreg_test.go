package linear

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
)

func randomProblem(n, d, k int, seed uint64) ([]float64, []int, []float64) {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, n*d)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	y := make([]int, n)
	for i := range y {
		y[i] = r.IntN(k)
	}
	p := make([]float64, k*d+k)
	for i := range p {
		p[i] = 0.7 * r.NormFloat64()
	}
	return x, y, p
}

// naiveObjective is the textbook per-sample definition, written independently of the kernels:
// (Σᵢ [log Σ_c exp(zᵢc) − zᵢy] + ‖W‖²/(2C)) / n with z = W·x + b.
func naiveObjective(x []float64, n, d, k int, y []int, c float64, p []float64) float64 {
	loss := 0.0
	for i := range n {
		z := make([]float64, k)
		for cl := range k {
			z[cl] = p[k*d+cl]
			for j := range d {
				z[cl] += p[cl*d+j] * x[i*d+j]
			}
		}
		s := 0.0
		for _, v := range z {
			s += math.Exp(v)
		}
		loss += math.Log(s) - z[y[i]]
	}
	w := 0.0
	for _, v := range p[:k*d] {
		w += v * v
	}
	return (loss + w/(2*c)) / float64(n)
}

// The objective over several partitions, with rows not a multiple of the 4-row block and widths
// not a multiple of the 8-wide FMA loop, must equal the per-sample definition to round-off (1e-12
// relative), with the assembly kernels and with the portable ones.
func TestObjectiveMatchesDefinition(t *testing.T) {
	saved := useFMA
	defer func() { useFMA = saved }()
	for _, fma := range []bool{false, saved} {
		useFMA = fma
		for _, sz := range [][3]int{{1, 3, 2}, {7, 5, 3}, {1037, 13, 6}, {2100, 9, 10}, {301, 64, 4}, {45, 200, 3}} {
			n, d, k := sz[0], sz[1], sz[2]
			x, y, p := randomProblem(n, d, k, uint64(n))
			got := newObjective(x, n, d, k, y, 0.37).eval(nil, p)
			want := naiveObjective(x, n, d, k, y, 0.37, p)
			if math.Abs(got-want) > 1e-12*math.Abs(want) {
				t.Errorf("fma=%v n=%d d=%d k=%d: objective %.17g, definition %.17g", fma, n, d, k, got, want)
			}
		}
	}
}

// naiveGradient is ∂/∂W and ∂/∂b of naiveObjective, per sample: (softmax(z) − onehot(y)) xᵀ / n + W/(Cn).
func naiveGradient(x []float64, n, d, k int, y []int, c float64, p []float64) []float64 {
	g := make([]float64, len(p))
	for i := range n {
		z := make([]float64, k)
		mx := math.Inf(-1)
		for cl := range k {
			z[cl] = p[k*d+cl]
			for j := range d {
				z[cl] += p[cl*d+j] * x[i*d+j]
			}
			mx = max(mx, z[cl])
		}
		s := 0.0
		for cl := range z {
			z[cl] = math.Exp(z[cl] - mx)
			s += z[cl]
		}
		for cl := range k {
			r := z[cl] / s
			if cl == y[i] {
				r--
			}
			for j := range d {
				g[cl*d+j] += r * x[i*d+j] / float64(n)
			}
			g[k*d+cl] += r / float64(n)
		}
	}
	for j := range k * d {
		g[j] += p[j] / (c * float64(n))
	}
	return g
}

// The fused gradient kernels (assembly and portable) against the per-sample formula, 1e-12.
func TestGradientMatchesDefinition(t *testing.T) {
	saved := useFMA
	defer func() { useFMA = saved }()
	for _, fma := range []bool{false, saved} {
		useFMA = fma
		for _, sz := range [][3]int{{7, 5, 3}, {1037, 13, 6}, {301, 64, 4}, {45, 200, 3}} {
			n, d, k := sz[0], sz[1], sz[2]
			x, y, p := randomProblem(n, d, k, uint64(n)+1)
			got := make([]float64, len(p))
			newObjective(x, n, d, k, y, 0.8).eval(got, p)
			want := naiveGradient(x, n, d, k, y, 0.8, p)
			for j := range got {
				if math.Abs(got[j]-want[j]) > 1e-12*(1+math.Abs(want[j])) {
					t.Fatalf("fma=%v n=%d d=%d k=%d: gradient[%d] %.17g, definition %.17g", fma, n, d, k, j, got[j], want[j])
				}
			}
		}
	}
}

// Analytic gradient against central finite differences of the objective (step 1e-5; the error of
// the difference quotient is O(h²)·f”' ≈ 1e-10, so 1e-7 absolute is a safe bar).
func TestGradientFiniteDifferences(t *testing.T) {
	for _, sz := range [][3]int{{9, 4, 3}, {601, 6, 5}} {
		n, d, k := sz[0], sz[1], sz[2]
		x, y, p := randomProblem(n, d, k, 7)
		o := newObjective(x, n, d, k, y, 0.5)
		g := make([]float64, len(p))
		o.eval(g, p)
		const h = 1e-5
		for j := range p {
			q := append([]float64(nil), p...)
			q[j] = p[j] + h
			fp := o.eval(nil, q)
			q[j] = p[j] - h
			fm := o.eval(nil, q)
			fd := (fp - fm) / (2 * h)
			if math.Abs(fd-g[j]) > 1e-7 {
				t.Errorf("n=%d param %d: analytic %.10g, finite difference %.10g", n, j, g[j], fd)
			}
		}
	}
}

// A symmetric two-class problem in one feature (x = +1 for class 1, −1 for class 0, n/2 each) has
// a closed-form optimum: W = [−a, a], b0 = b1, where a/C = n·σ(−2a). We solve that scalar equation
// by bisection and compare.
func TestFitSymmetricClosedForm(t *testing.T) {
	const n, c = 10, 0.05
	x := make([]float64, n)
	y := make([]int, n)
	for i := range n {
		y[i] = i % 2
		x[i] = float64(2*y[i] - 1)
	}
	lo, hi := 0.0, 10.0
	for range 200 {
		a := (lo + hi) / 2
		if a/c-n/(1+math.Exp(2*a)) < 0 {
			lo = a
		} else {
			hi = a
		}
	}
	a := (lo + hi) / 2
	p, info, err := FitStandardized(x, n, 1, 2, y, c, nil, FitOptions{Tol: 1e-12})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(p[0]+a) > 1e-7 || math.Abs(p[1]-a) > 1e-7 || math.Abs(p[2]-p[3]) > 1e-7 {
		t.Fatalf("params %v, want W=[%g %g] and equal intercepts (%s)", p, -a, a, info.Status)
	}
}

type sklearnRef struct {
	C           float64     `json:"C"`
	TestAcc     float64     `json:"test_acc"`
	TrainAcc    float64     `json:"train_acc"`
	ObjectiveUs float64     `json:"objective_ours"`
	Coef        [][]float64 `json:"coef"`
	Intercept   []float64   `json:"intercept"`
}

// Parity with scikit-learn 1.2.1 LogisticRegression(solver="lbfgs", multi_class="multinomial",
// tol=1e-10, max_iter=10000) on the synthetic set in testdata/sklearn (written by
// gen_synthetic.go; references by sklearn_compare.py --coef). Checks:
//   - our objective evaluated at sklearn's coefficients equals the value sklearn_compare.py
//     computed (1e-10 relative): same objective, same standardisation, unpenalised intercept;
//   - our minimum is no higher than sklearn's (scipy stops on its ftol a little early: sklearn's
//     point is 3e-9 … 3e-8 relative above ours);
//   - the weights agree within what strong convexity allows: f(W) − f* ≥ ‖W − W*‖²/(2C), so
//     ‖W_sk − W_ours‖ ≤ √(2C(f_sk − f_ours + δ)) + √(2Cδ), with δ = 1e-9·f bounding our own gap;
//   - the test accuracy is identical.
//
// Two sets: testdata/sklearn, synthetic (see gen_synthetic.go), C ∈ {0.01, 1, 100}; and
// testdata/digits, scikit-learn's bundled 8×8 digits (load_digits, 1797 × 64, 10 classes, many
// constant pixels; rows 0–1299 train, the rest test, saved with np.save), C ∈ {0.01, 1}.
func TestFitMatchesSklearn(t *testing.T) {
	testSklearnParity(t, "testdata/sklearn", 5, []string{"0.01", "1", "100"})
	testSklearnParity(t, "testdata/digits", 10, []string{"0.01", "1"})
}

func testSklearnParity(t *testing.T, dir string, k int, cs []string) {
	xtr, shape := readNPY(t, dir+"/train_x.npy")
	ytrF, _ := readNPY(t, dir+"/train_y.npy")
	xte, _ := readNPY(t, dir+"/test_x.npy")
	yteF, _ := readNPY(t, dir+"/test_y.npy")
	n, d := shape[0], shape[1]
	x32 := make([]float32, len(xtr)+len(xte))
	y := make([]int, n+len(yteF))
	for i, v := range append(xtr, xte...) {
		x32[i] = float32(v)
	}
	for i, v := range append(ytrF, yteF...) {
		y[i] = int(v)
	}
	train := make([]int, n)
	test := make([]int, len(yteF))
	for i := range train {
		train[i] = i
	}
	for i := range test {
		test[i] = n + i
	}
	st := NewStandardizer(x32, d, train)
	xs := make([]float64, n*d)
	st.Apply(xs, x32, d, train)
	for _, name := range cs {
		b, err := os.ReadFile(dir + "/reference_C" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var ref sklearnRef
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatal(err)
		}
		skParams := make([]float64, 0, k*d+k)
		for c := range k {
			skParams = append(skParams, ref.Coef[c]...)
		}
		skParams = append(skParams, ref.Intercept...)
		fSk := newObjective(xs, n, d, k, y[:n], ref.C).eval(nil, skParams) * float64(n)
		if rel := math.Abs(fSk-ref.ObjectiveUs) / ref.ObjectiveUs; rel > 1e-10 {
			t.Errorf("C=%g: our objective at sklearn's point %.12g, sklearn_compare.py %.12g", ref.C, fSk, ref.ObjectiveUs)
		}
		m, info, err := Fit(x32, d, train, y, k, ref.C, FitOptions{Tol: 1e-10})
		if err != nil {
			t.Fatal(err)
		}
		if info.Objective > fSk*(1+1e-12) {
			t.Errorf("C=%g: our minimum %.12g is above sklearn's %.12g", ref.C, info.Objective, fSk)
		}
		dist := 0.0
		for c := range k {
			for j := range d {
				dist += (m.W[c*d+j] - ref.Coef[c][j]) * (m.W[c*d+j] - ref.Coef[c][j])
			}
		}
		dist = math.Sqrt(dist)
		delta := 1e-9 * info.Objective
		bound := math.Sqrt(2*ref.C*(fSk-info.Objective+delta)) + math.Sqrt(2*ref.C*delta)
		if dist > bound {
			t.Errorf("C=%g: ‖W − W_sklearn‖ = %.3g exceeds the convexity bound %.3g", ref.C, dist, bound)
		}
		acc := evalModel(m, x32, y, test).Top1
		if acc != ref.TestAcc {
			t.Errorf("C=%g: test accuracy %.4f, sklearn %.4f", ref.C, acc, ref.TestAcc)
		}
		t.Logf("%s C=%g: objective %.10g (sklearn %.10g), test acc %.4f (sklearn %.4f), ‖ΔW‖ %.2g ≤ %.2g, %d iterations",
			dir, ref.C, info.Objective, fSk, acc, ref.TestAcc, dist, bound, info.Iterations)
	}
}

// Sums over rows use a fixed partition, so the objective and gradient are bitwise the same
// whatever the number of threads.
func TestObjectiveIndependentOfGOMAXPROCS(t *testing.T) {
	n, d, k := 3001, 40, 7
	x, y, p := randomProblem(n, d, k, 11)
	o := newObjective(x, n, d, k, y, 2)
	eval := func(procs int) (float64, []float64) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		g := make([]float64, len(p))
		return o.eval(g, p), g
	}
	f1, g1 := eval(1)
	f4, g4 := eval(4)
	if f1 != f4 || !slices.Equal(g1, g4) {
		t.Fatalf("GOMAXPROCS 1 and 4 differ: %.17g vs %.17g", f1, f4)
	}
}
