package similarity

import (
	"cmp"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// gaussian returns n×d standard normal values (plus offset, to exercise centring).
func gaussian(rng *rand.Rand, n, d int, offset float64) []float32 {
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64() + offset)
	}
	return x
}

// mix returns x·W + noise·E ([n, dy]), a representation related to x.
func mix(rng *rand.Rand, x []float32, n, dx, dy int, noise float64) []float32 {
	w := gaussian(rng, dx, dy, 0)
	y := make([]float32, n*dy)
	for i := range n {
		for j := range dy {
			s := 0.0
			for k := range dx {
				s += float64(x[i*dx+k]) * float64(w[k*dy+j])
			}
			y[i*dy+j] = float32(s/math.Sqrt(float64(dx)) + noise*rng.NormFloat64())
		}
	}
	return y
}

func pair(t *testing.T, x []float32, dx int, y []float32, dy int, opt Options) float64 {
	t.Helper()
	r, err := Compare([]Representation{{Name: "x", Data: x, Dim: dx}}, []Representation{{Name: "y", Data: y, Dim: dy}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return r.Matrix[0][0]
}

// The float32 feature-space estimators against float64 n×n references. Tolerance 2e-5 absolute:
// products are float32 (relative rounding 6e-8 per term), sums float64.
func TestCKAMatchesFloat64Reference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ n, dx, dy int }{{50, 8, 12}, {64, 40, 20}, {30, 100, 80}, {5, 3, 7}} {
		x := gaussian(rng, c.n, c.dx, 3)
		y := mix(rng, x, c.n, c.dx, c.dy, 0.7)
		k, l := refLinearKernel(toRef(x, c.n, c.dx)), refLinearKernel(toRef(y, c.n, c.dy))
		for _, m := range []Method{CKA, DebiasedCKA} {
			want := refCKA(k, l, m == DebiasedCKA)
			got := pair(t, x, c.dx, y, c.dy, Options{Method: m})
			if math.Abs(got-want) > 2e-5 {
				t.Errorf("n=%d dx=%d dy=%d %s: got %.8f, float64 reference %.8f", c.n, c.dx, c.dy, m, got, want)
			}
		}
	}
}

// The reference HSIC₁ formula is itself checked against the U-statistic it equals (Song et al.
// 2012, Theorem 2), by brute force over all 4-tuples, to 1e-9 relative.
func TestReferenceUnbiasedHSICIsUStatistic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{5, 7} {
		x, y := gaussian(rng, n, 3, 1), gaussian(rng, n, 4, -2)
		k, l := refLinearKernel(toRef(x, n, 3)), refLinearKernel(toRef(y, n, 4))
		got, want := refHSICUnbiased(k, l), refHSICUStatistic(k, l)
		if math.Abs(got-want) > 1e-9*math.Abs(want) {
			t.Errorf("n=%d: closed form %.12g, U-statistic %.12g", n, got, want)
		}
	}
}

// With fewer rows than features, plain CKA of independent data is inflated while debiased CKA
// stays near 0 (Kornblith et al. 2019 and the debiased-CKA literature). Thresholds: plain CKA of
// independent Gaussians with n=40, d=400 is about 0.9 (tr(K)² dominates); the debiased estimate
// has a standard deviation of order 1/n.
func TestDebiasedCKANearZeroWhenFewRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, d = 40, 400
	x, y := gaussian(rng, n, d, 0), gaussian(rng, n, d, 0)
	plain := pair(t, x, d, y, d, Options{Method: CKA})
	deb := pair(t, x, d, y, d, Options{Method: DebiasedCKA})
	k, l := refLinearKernel(toRef(x, n, d)), refLinearKernel(toRef(y, n, d))
	if want := refCKA(k, l, true); math.Abs(deb-want) > 2e-5 {
		t.Errorf("debiased %.8f, float64 reference %.8f", deb, want)
	}
	if want := refCKA(k, l, false); math.Abs(plain-want) > 2e-5 {
		t.Errorf("plain %.8f, float64 reference %.8f", plain, want)
	}
	if plain < 0.5 {
		t.Errorf("plain CKA of independent data with n < d = %.4f; expected inflated (> 0.5)", plain)
	}
	if math.Abs(deb) > 0.05 {
		t.Errorf("debiased CKA of independent data = %.4f; want |·| < 0.05", deb)
	}
	t.Logf("n=%d d=%d independent: plain CKA %.4f, debiased %.5f", n, d, plain, deb)
}

func randomOrthogonal(rng *rand.Rand, d int) []float32 {
	a := mat.NewDense(d, d, nil)
	for i := range d {
		for j := range d {
			a.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(a)
	var q mat.Dense
	qr.QTo(&q)
	out := make([]float32, d*d)
	for i := range d {
		for j := range d {
			out[i*d+j] = float32(q.At(i, j))
		}
	}
	return out
}

func matmul(x []float32, n, k int, w []float32, m int) []float32 {
	out := make([]float32, n*m)
	for i := range n {
		for j := range m {
			s := 0.0
			for p := range k {
				s += float64(x[i*k+p]) * float64(w[p*m+j])
			}
			out[i*m+j] = float32(s)
		}
	}
	return out
}

// Closed forms: CKA(X, XQ) = 1 for orthogonal Q, and CKA(X, cY) = CKA(X, Y) (Kornblith et al.
// 2019, section 3: invariance to orthogonal transforms and isotropic scaling). The RBF kernel
// with a median-based bandwidth and the Euclidean RDM share both invariances. Tolerance 1e-5.
func TestInvariances(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n, d = 60, 16
	x := gaussian(rng, n, d, 0.5)
	xq := matmul(x, n, d, randomOrthogonal(rng, d), d)
	y := mix(rng, x, n, d, 10, 1)
	scaled := make([]float32, len(y))
	for i, v := range y {
		scaled[i] = 3.7 * v
	}
	for _, opt := range []Options{{Method: CKA}, {Method: DebiasedCKA}, {Method: RBFCKA}, {Method: RBFCKA, RBFThreshold: 0.4},
		{Method: RSA, RDM: RDMEuclidean}, {Method: RSA, RDM: RDMEuclidean, Compare: ComparePearson}} {
		if got := pair(t, x, d, xq, d, opt); math.Abs(got-1) > 1e-5 {
			t.Errorf("%+v: similarity of X and XQ = %.8f, want 1", opt, got)
		}
		a, b := pair(t, x, d, y, 10, opt), pair(t, x, d, scaled, 10, opt)
		if math.Abs(a-b) > 1e-5 {
			t.Errorf("%+v: similarity with Y %.8f, with 3.7·Y %.8f", opt, a, b)
		}
	}
}

func TestRBFCKAMatchesFloat64Reference(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, c := range []struct {
		n, dx, dy int
		threshold float64
	}{{40, 6, 9, 1}, {31, 20, 5, 0.5}, {50, 3, 3, 2}} {
		x := gaussian(rng, c.n, c.dx, 2)
		y := mix(rng, x, c.n, c.dx, c.dy, 0.5)
		k, sx := refRBFKernel(toRef(x, c.n, c.dx), c.threshold)
		l, _ := refRBFKernel(toRef(y, c.n, c.dy), c.threshold)
		want := refCKA(k, l, false)
		r, err := Compare([]Representation{{Name: "x", Data: x, Dim: c.dx}}, []Representation{{Name: "y", Data: y, Dim: c.dy}},
			Options{Method: RBFCKA, RBFThreshold: c.threshold})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Matrix[0][0]; math.Abs(got-want) > 2e-5 {
			t.Errorf("%+v: got %.8f, float64 reference %.8f", c, got, want)
		}
		if math.Abs(r.Bandwidths[0]-sx) > 1e-5*sx {
			t.Errorf("%+v: bandwidth %.8g, reference %.8g", c, r.Bandwidths[0], sx)
		}
	}
}

func TestRSAMatchesFloat64Reference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, dx, dy = 26, 12, 7
	x := gaussian(rng, n, dx, 1)
	y := mix(rng, x, n, dx, dy, 1.5)
	rx, ry := toRef(x, n, dx), toRef(y, n, dy)
	for _, rdm := range []string{RDMCorrelation, RDMCosine, RDMEuclidean} {
		for _, cmp := range []string{CompareSpearman, ComparePearson, CompareKendall} {
			want := refRSA(rx, ry, rdm, cmp)
			got := pair(t, x, dx, y, dy, Options{Method: RSA, RDM: rdm, Compare: cmp})
			if math.Abs(got-want) > 1e-5 {
				t.Errorf("%s/%s: got %.8f, float64 reference %.8f", rdm, cmp, got, want)
			}
		}
	}
}

// tiedData returns n×d values in {−1, 1} whose every column sums to 0 (n even), so centring is
// exact in float32 and the Euclidean RDM (distances √(4·Hamming)) is exact, with many ties.
func tiedData(rng *rand.Rand, n, d int) []float32 {
	x := make([]float32, n*d)
	col := make([]float32, n)
	for j := range d {
		for i := range col {
			col[i] = 1
			if i < n/2 {
				col[i] = -1
			}
		}
		rng.Shuffle(n, func(a, b int) { col[a], col[b] = col[b], col[a] })
		for i := range n {
			x[i*d+j] = col[i]
		}
	}
	return x
}

// RSA with heavily tied RDMs: Spearman's average ranks and Kendall's τ_b tie corrections must
// match the float64 references exactly up to rounding of the final sums (1e-9).
func TestRSAWithTies(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const n, d = 24, 6
	x, y := tiedData(rng, n, d), tiedData(rng, n, d)
	for i := range n { // related: the first half of the columns agree (column sums stay 0)
		copy(y[i*d:i*d+d/2], x[i*d:i*d+d/2])
	}
	rdm := refRDM(toRef(x, n, d), RDMEuclidean)
	distinct := map[float64]bool{}
	for _, v := range rdm {
		distinct[v] = true
	}
	if len(distinct) > 8 {
		t.Fatalf("test data has %d distinct distances; want heavy ties", len(distinct))
	}
	for _, cmp := range []string{CompareSpearman, CompareKendall, ComparePearson} {
		want := refRSA(toRef(x, n, d), toRef(y, n, d), RDMEuclidean, cmp)
		got := pair(t, x, d, y, d, Options{Method: RSA, RDM: RDMEuclidean, Compare: cmp})
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("%s with ties: got %.10f, float64 reference %.10f", cmp, got, want)
		}
	}
}

func TestAverageRanks(t *testing.T) {
	// By hand: sorted 1,1,3,4,5,5,5 → ranks 1.5,1.5,3,4,6,6,6.
	got := AverageRanks([]float32{3, 1, 5, 4, 1, 5, 5})
	want := []float64{3, 1.5, 6, 4, 1.5, 6, 6}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("AverageRanks = %v, want %v", got, want)
		}
	}
	if r := AverageRanks([]float32{float32(math.Copysign(0, -1)), 0, -1}); r[0] != 2.5 || r[1] != 2.5 || r[2] != 1 {
		t.Errorf("-0 and 0 must tie: %v", r)
	}
}

func TestKendallTauBMatchesCounting(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for trial := range 20 {
		m := 2 + rng.IntN(60)
		a, b := make([]float32, m), make([]float32, m)
		fa, fb := make([]float64, m), make([]float64, m)
		for i := range m {
			a[i] = float32(rng.IntN(1 + trial%7)) // few levels: ties in a
			b[i] = float32(rng.IntN(5)) + a[i]/2
			fa[i], fb[i] = float64(a[i]), float64(b[i])
		}
		got, want := kendallTauB(denseRanks(a), denseRanks(b)), refKendallTauB(fa, fb)
		if !(math.Abs(got-want) <= 1e-12) && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("m=%d: τ_b %.15f, counting %.15f", m, got, want)
		}
	}
}

// The statistic under a permutation equals the statistic of explicitly permuted rows.
func TestPermutedStatisticEqualsPermutedRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	const n, d = 20, 5
	x := gaussian(rng, n, d, 0)
	y := mix(rng, x, n, d, d, 1)
	perm := permutations(n, 1, 99)[0]
	yp := make([]float32, len(y))
	for i, p := range perm {
		copy(yp[i*d:(i+1)*d], y[p*d:(p+1)*d])
	}
	for _, opt := range []Options{{Method: CKA}, {Method: DebiasedCKA}, {Method: RBFCKA}, {Method: RSA}, {Method: RSA, Compare: CompareKendall}} {
		opt = opt.withDefaults()
		px, _ := prepare(Representation{Data: x, Dim: d}, opt)
		py, _ := prepare(Representation{Data: y, Dim: d}, opt)
		ppy, _ := prepare(Representation{Data: yp, Dim: d}, opt)
		got, want := px.stat(&py, perm, opt.Method), px.stat(&ppy, nil, opt.Method)
		if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: permuted statistic %.10g, statistic of permuted rows %.10g", opt.Method, got, want)
		}
	}
}

func TestPermutationPValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	const n, d = 40, 6
	x := gaussian(rng, n, d, 0)
	related := mix(rng, x, n, d, d, 0.3)
	indep := gaussian(rng, n, d, 0)
	for _, m := range Methods {
		if !m.permutable() {
			continue // refused: TestNewMethodsBadInput
		}
		opt := Options{Method: m, Permutations: 99, Seed: 5}
		r, err := Compare([]Representation{{Name: "x", Data: x, Dim: d}}, []Representation{{Name: "rel", Data: related, Dim: d}, {Name: "ind", Data: indep, Dim: d}}, opt)
		if err != nil {
			t.Fatal(err)
		}
		if p := r.PValues[0][0]; p != 0.01 {
			t.Errorf("%s: p-value of a strongly related pair = %v, want 1/100", m, p)
		}
		if p := r.PValues[0][1]; p < 0.02 {
			t.Errorf("%s: p-value of an independent pair = %v; expected not small", m, p)
		}
		again, _ := Compare([]Representation{{Name: "x", Data: x, Dim: d}}, []Representation{{Name: "rel", Data: related, Dim: d}, {Name: "ind", Data: indep, Dim: d}}, opt)
		if again.PValues[0][1] != r.PValues[0][1] {
			t.Errorf("%s: p-values differ between runs with one seed", m)
		}
	}
}

// A set against itself equals the set against a copy of itself, and is symmetric (CKNNA, which is
// not, computes both orders). The diagonal is 1 for the similarities (s/(s + 1e-6) for CKNNA, as
// platonic-rep) and 0 for the distances; a distance's diagonal against a copy goes through the
// general float32 path, where arccos turns a rounding δ near 1 into √(2δ): 1e-3 there.
func TestSelfComparisonSymmetric(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	const n = 30
	x := gaussian(rng, n, 8, 0)
	reps := []Representation{{Name: "a", Data: x, Dim: 8}, {Name: "b", Data: mix(rng, x, n, 8, 5, 1), Dim: 5}, {Name: "c", Data: gaussian(rng, n, 3, 0), Dim: 3}}
	for _, m := range Methods {
		opt := Options{Method: m, KNNK: 5}
		self, err := Compare(reps, nil, opt)
		if err != nil {
			t.Fatal(err)
		}
		full, err := Compare(reps, reps, opt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range reps {
			d := self.Matrix[i][i]
			switch {
			case m.Distance():
				if math.Abs(d) > 1e-6 {
					t.Errorf("%s: diagonal %d = %.8f, want 0", m, i, d)
				}
			case m == CKNNA:
				if !(d < 1 && d > 1-1e-3) {
					t.Errorf("%s: diagonal %d = %.8f, want s/(s+1e-6), just under 1", m, i, d)
				}
			default:
				if math.Abs(d-1) > 1e-6 {
					t.Errorf("%s: diagonal %d = %.8f, want 1", m, i, d)
				}
			}
			for j := range reps {
				tol := 1e-12
				if m.Distance() && i == j {
					tol = 1e-3
				}
				if (m != CKNNA && self.Matrix[i][j] != self.Matrix[j][i]) || math.Abs(self.Matrix[i][j]-full.Matrix[i][j]) > tol {
					t.Errorf("%s: [%d][%d] self %.10f / %.10f, full %.10f", m, i, j, self.Matrix[i][j], self.Matrix[j][i], full.Matrix[i][j])
				}
			}
		}
	}
}

func TestInPlaceLeavesSameResult(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	x := gaussian(rng, 25, 4, 5)
	keep := append([]float32(nil), x...)
	for _, m := range Methods {
		a := pair(t, x, 4, x, 4, Options{Method: m})
		for i := range x {
			if x[i] != keep[i] {
				t.Fatalf("%s without InPlace changed the input", m)
			}
		}
		y := append([]float32(nil), x...)
		z := append([]float32(nil), x...)
		b := pair(t, y, 4, z, 4, Options{Method: m, InPlace: true})
		if math.Abs(a-b) > 1e-12 {
			t.Errorf("%s: %v copied, %v in place", m, a, b)
		}
	}
}

func TestBadInput(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	for _, c := range []struct {
		a, b []Representation
		opt  Options
		want string
	}{
		{[]Representation{{Name: "x", Data: x, Dim: 2}}, nil, Options{Method: DebiasedCKA}, "cka-debiased needs at least 4 rows, have 3"},
		{[]Representation{{Name: "x", Data: x, Dim: 2}}, []Representation{{Name: "y", Data: x, Dim: 3}}, Options{}, "y: 2 rows, want 3"},
		{[]Representation{{Name: "x", Data: x, Dim: 4}}, nil, Options{}, "x: 6 values are not whole rows of 4"},
		{[]Representation{{Name: "x", Data: []float32{1, float32(math.NaN()), 0, 0, 1, 1, 2, 2}, Dim: 2}}, nil, Options{}, "x: row 0 feature 1 is NaN"},
		{[]Representation{{Name: "x", Data: x, Dim: 2}}, nil, Options{Method: "cca"}, `method "cca"`},
		{[]Representation{{Name: "x", Data: x, Dim: 2}}, nil, Options{Method: RSA, RDM: "manhattan"}, `rdm "manhattan"`},
		{[]Representation{{Name: "x", Data: x, Dim: 2}}, nil, Options{Method: RSA, Compare: "cosine"}, `compare "cosine"`},
		{nil, nil, Options{}, "no representations"},
	} {
		_, err := Compare(c.a, c.b, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: error %v, want one line containing %q", c.opt, err, c.want)
		}
	}
}

// A constant representation has no variance: debiased CKA and RSA are NaN, written as null.
func TestUndefinedIsNullInJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	constant := make([]float32, 10*3)
	r, err := Compare([]Representation{{Name: "c", Data: constant, Dim: 3}}, []Representation{{Name: "g", Data: gaussian(rng, 10, 3, 0), Dim: 3}}, Options{Method: DebiasedCKA})
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(r.Matrix[0][0]) {
		t.Fatalf("debiased CKA of a constant = %v, want NaN", r.Matrix[0][0])
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"matrix":[[null]]`) {
		t.Errorf("JSON %s: want a null matrix entry", b)
	}
}

// The radix sort against the standard library's sort, with many equal values.
func TestRadixSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	for _, n := range []int{0, 1, 7, 1000, 70000} {
		keys := make([]uint64, n)
		for i := range keys {
			keys[i] = uint64(rng.IntN(50))<<40 | uint64(rng.Uint32())<<8 | uint64(i&0xff)
		}
		full, high := slices.Clone(keys), slices.Clone(keys)
		want := slices.Clone(keys)
		slices.Sort(want)
		radixSort(full, 0)
		if !slices.Equal(full, want) {
			t.Fatalf("n=%d: radixSort(·, 0) differs from slices.Sort", n)
		}
		wantHigh := slices.Clone(keys)
		slices.SortStableFunc(wantHigh, func(a, b uint64) int { return cmp.Compare(a>>32, b>>32) })
		radixSort(high, 32)
		if !slices.Equal(high, wantHigh) {
			t.Fatalf("n=%d: radixSort(·, 32) is not a stable sort by the upper 32 bits", n)
		}
	}
}

func TestSortKeysRoundTrip(t *testing.T) {
	v := []float32{3.5, -2, 0, float32(math.Copysign(0, -1)), 1e-30, -1e30, 7}
	keys := sortKeys(v)
	want := []float32{-1e30, -2, 0, 0, 1e-30, 3.5, 7}
	for i, k := range keys {
		if keyValue(k) != want[i] {
			t.Fatalf("sorted values %v…: position %d is %v, want %v", keys, i, keyValue(k), want[i])
		}
	}
}

// The blocked symmetric self-product equals the full product (relative 1e-6: float32 entries,
// float64 sums in another order).
func TestSelfProductBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	const n, d = 300, 515 // d ≥ 512: 4 uneven blocks
	x := gaussian(rng, n, d, 1)
	c := centre(make([]float32, n*d), x, n, d, true)
	scratch := make([]float32, d*d)
	full := crossProduct(c.x, c.x, n, d, d, scratch)
	if got := selfProduct(c.x, n, d, scratch); math.Abs(got-full) > 1e-6*full {
		t.Errorf("blocked ‖XᵀX‖² = %.10g, full product %.10g", got, full)
	}
}
