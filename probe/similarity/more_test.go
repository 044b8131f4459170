package similarity

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// bruteKNN is the definition written plainly: every x̂ᵢ·x̂ⱼ in float64, j ≠ i, sorted by
// decreasing similarity then increasing j, the first k kept.
func bruteKNN(x []float32, n, d, k int) [][]int {
	u := make([][]float64, n)
	for i := range u {
		u[i] = make([]float64, d)
		s := 0.0
		for f := range d {
			u[i][f] = float64(x[i*d+f])
			s += u[i][f] * u[i][f]
		}
		for f := range d {
			u[i][f] /= math.Max(math.Sqrt(s), 1e-12)
		}
	}
	out := make([][]int, n)
	for i := range n {
		type js struct {
			j int
			s float64
		}
		var all []js
		for j := range n {
			if j != i {
				s := 0.0
				for f := range d {
					s += u[i][f] * u[j][f]
				}
				all = append(all, js{j, s})
			}
		}
		slices.SortStableFunc(all, func(a, b js) int { return cmp.Compare(b.s, a.s) })
		for _, e := range all[:k] {
			out[i] = append(out[i], e.j)
		}
	}
	return out
}

func checkGraph(t *testing.T, name string, g *knnGraph, want [][]int) {
	t.Helper()
	for i, w := range want {
		for p, j := range w {
			if int(g.idx[i*g.k+p]) != j {
				t.Fatalf("%s: row %d neighbour %d = %d, want %d (all: %v, want %v)", name, i, p, g.idx[i*g.k+p], j, g.idx[i*g.k:(i+1)*g.k], w)
			}
		}
	}
}

// The blocked, float32-screened, float64-re-ranked search returns exactly the brute-force float64
// neighbours: over several tiles (n > knnBlock, so off-diagonal tiles are scanned both ways), with
// exact duplicates (ties to the earlier row), with near-duplicates 1e-7 apart that float32
// cannot order, and with 60 identical rows, more than the screen keeps, so that rows fall back to
// a full float64 search.
func TestKNNGraphMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, d, k = 2300, 8, 10
	x := gaussian(rng, n, d, 0.3)
	copy(x[5*d:6*d], x[2*d:3*d]) // exact duplicate: row 2 before row 5
	for f := range d {           // near-duplicate of row 9, closer than float32 can tell
		x[40*d+f] = x[9*d+f] * (1 + 1e-7*float32(f%3))
	}
	for i := 100; i < 160; i++ { // 60 identical rows
		copy(x[i*d:(i+1)*d], x[1100*d:1101*d])
	}
	g := buildKNN(Representation{Name: "x", Data: x, Dim: d}, k)
	checkGraph(t, "blocked", g, bruteKNN(x, n, d, k))
	if g.recomputed < 60 {
		t.Errorf("%d rows searched in full; want at least the 60 identical rows (their candidates tie beyond the screen)", g.recomputed)
	}
	// K = n−1: every row is a neighbour, the screen keeps them all.
	small := x[:12*d]
	checkGraph(t, "k=n-1", buildKNN(Representation{Name: "s", Data: small, Dim: d}, 11), bruteKNN(small, 12, d, 11))
}

// mutual-knn and cknna of a representation against itself, and CKNNA's asymmetry: a
// self-comparison computes both orders (the masks are row-wise and its HSIC pairs Ã with B̃ᵀ).
func TestKNNMethodsSelfAndOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 150
	x := gaussian(rng, n, 12, 0)
	y := mix(rng, x, n, 12, 9, 0.8)
	reps := []Representation{{Name: "x", Data: x, Dim: 12}, {Name: "y", Data: y, Dim: 9}}
	for _, m := range []Method{MutualKNN, CKNNA} {
		res, err := Compare(reps, nil, Options{Method: m, KNNK: 7})
		if err != nil {
			t.Fatal(err)
		}
		xy, yx := pair(t, x, 12, y, 9, Options{Method: m, KNNK: 7}), pair(t, y, 9, x, 12, Options{Method: m, KNNK: 7})
		if res.Matrix[0][1] != xy || res.Matrix[1][0] != yx {
			t.Errorf("%s: self-comparison [0][1] %v [1][0] %v; pairs give %v and %v", m, res.Matrix[0][1], res.Matrix[1][0], xy, yx)
		}
		diag := 1.0
		if m == CKNNA {
			// s/(s + 1e-6), as platonic-rep: just under 1.
			s := res.Matrix[0][0]
			if !(s < 1 && s > 1-1e-3) {
				t.Errorf("cknna of x with itself = %v, want s/(s+1e-6), just under 1", s)
			}
			continue
		}
		if res.Matrix[0][0] != diag || res.Matrix[1][1] != diag {
			t.Errorf("%s diagonal %v %v, want 1", m, res.Matrix[0][0], res.Matrix[1][1])
		}
	}
	if a, b := pair(t, x, 12, y, 9, Options{Method: CKNNA}), pair(t, y, 9, x, 12, Options{Method: CKNNA}); a == b {
		t.Logf("cknna happened to be symmetric here: %v", a)
	}
}

// Closed forms of the distances and SVCCA: an orthogonal transform, a translation and a scaling
// leave the Procrustes and angular-CKA distances at 0 and SVCCA at 1 (netrep: the metric is
// invariant to them; SVCCA's subspaces are the same). Tolerances: 2e-3 rad for the distances
// (arccos near 1 turns a float32 rounding δ into √(2δ)), 1e-6 for SVCCA (float64 subspaces).
func TestDistancesAndSVCCAInvariances(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, d = 200, 16
	x := gaussian(rng, n, d, 0.5)
	xq := matmul(x, n, d, randomOrthogonal(rng, d), d)
	for i := range xq {
		xq[i] = 2.5*xq[i] + float32(i%d) // scale, then translate each column
	}
	for _, m := range []Method{Procrustes, AngularCKA} {
		if got := pair(t, x, d, xq, d, Options{Method: m}); math.Abs(got) > 2e-3 {
			t.Errorf("%s(X, 2.5·XQ + c) = %v rad, want 0", m, got)
		}
		y := gaussian(rng, n, d, 0)
		if got := pair(t, x, d, y, d, Options{Method: m}); !(got > 0.3 && got <= math.Pi/2) {
			t.Errorf("%s of independent data = %v rad, want well above 0 and ≤ π/2", m, got)
		}
	}
	// SVCCA: rows are unit-normalised first, so only a transform that keeps row norms' ratios
	// (an orthogonal one, a uniform scaling) preserves the subspace.
	xo := matmul(x, n, d, randomOrthogonal(rng, d), d)
	if got := pair(t, x, d, xo, d, Options{Method: SVCCA, SVCCADims: d}); math.Abs(got-1) > 1e-6 {
		t.Errorf("svcca(X, XQ) with all %d dims = %v, want 1", d, got)
	}
}

func TestNewMethodsBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := gaussian(rng, 10, 3, 0)
	r := []Representation{{Name: "x", Data: x, Dim: 3}}
	for _, c := range []struct {
		opt  Options
		want string
	}{
		{Options{Method: MutualKNN, KNNK: 10}, "needs at least 11 rows, have 10"},
		{Options{Method: CKNNA, KNNK: 1}, "K ≥ 2"},
		{Options{Method: SVCCA, Permutations: 5}, "permutation tests are available for"},
		{Options{Method: Procrustes, KNNK: -1}, "must be ≥ 1"},
	} {
		_, err := Compare(r, nil, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.opt, err, c.want)
		}
	}
	// A constant representation: the distances and SVCCA are undefined (null), not a number.
	flat := make([]float32, 30)
	for i := range flat {
		flat[i] = 1
	}
	for _, m := range []Method{Procrustes, SVCCA} {
		res, err := Compare([]Representation{{Name: "flat", Data: flat, Dim: 3}}, r, Options{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		if v := res.Matrix[0][0]; !math.IsNaN(v) {
			t.Errorf("%s of a constant representation = %v, want NaN (null)", m, v)
		}
	}
}
