package sgemm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// The reference for every test is refGemm, the textbook triple loop accumulated
// in float64. A float32 result may differ from it by the rounding of k+2
// float32 operations on each term, so the tolerance is the standard bound
// γ(k+2)·(|alpha|·Σ|a·b| + |beta·c|) with γ(n) = n·2⁻²⁴ (Higham, "Accuracy and
// Stability of Numerical Algorithms", §3.5), computed per element.

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	padA, padB     int // extra row stride beyond the stored columns
	padC           int
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d alpha=%g beta=%g pad=%d,%d,%d",
		tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.padA, tc.padB, tc.padC)
}

// operandsFor builds random A, B, C for tc. Stride padding is filled with NaN
// so that any read outside the matrices shows up in the result; when beta == 0,
// C is NaN throughout because BLAS must not read it.
func operandsFor(tc gemmCase, rng *rand.Rand) (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = tc.n, tc.k
	}
	fill := func(rows, cols, pad int, nanAll bool) ([]float32, int) {
		ld := max(1, cols+pad)
		x := make([]float32, rows*ld)
		for i := range x {
			if nanAll || i%ld >= cols {
				x[i] = float32(math.NaN())
			} else {
				x[i] = float32(rng.NormFloat64())
			}
		}
		return x, ld
	}
	a, lda = fill(ar, ac, tc.padA, false)
	b, ldb = fill(br, bc, tc.padB, false)
	c, ldc = fill(tc.m, tc.n, tc.padC, tc.beta == 0)
	return
}

// refGemm returns the expected C and the per-element error bound.
func refGemm(tc gemmCase, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) (want, tol []float64) {
	want = make([]float64, tc.m*tc.n)
	tol = make([]float64, tc.m*tc.n)
	gamma := float64(tc.k+2) * math.Pow(2, -24)
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			var s, sabs float64
			if tc.alpha != 0 {
				for p := 0; p < tc.k; p++ {
					var av, bv float32
					if tc.transA {
						av = a[p*lda+i]
					} else {
						av = a[i*lda+p]
					}
					if tc.transB {
						bv = b[j*ldb+p]
					} else {
						bv = b[p*ldb+j]
					}
					s += float64(av) * float64(bv)
					sabs += math.Abs(float64(av) * float64(bv))
				}
			}
			s *= float64(tc.alpha)
			sabs *= math.Abs(float64(tc.alpha))
			if tc.beta != 0 {
				s += float64(tc.beta) * float64(c[i*ldc+j])
				sabs += math.Abs(float64(tc.beta) * float64(c[i*ldc+j]))
			}
			want[i*tc.n+j] = s
			tol[i*tc.n+j] = gamma*sabs + 1e-30
		}
	}
	return want, tol
}

// checkCase runs gemm on tc and compares with refGemm; it also checks that
// the stride padding of C (NaN) was left alone.
func checkCase(t *testing.T, name string, tc gemmCase, rng *rand.Rand, gemm func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)) {
	t.Helper()
	a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
	want, tol := refGemm(tc, a, lda, b, ldb, c, ldc)
	gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < ldc; j++ {
			got := c[i*ldc+j]
			if j >= tc.n {
				if !math.IsNaN(float64(got)) {
					t.Fatalf("%s %v: C[%d,%d] in the stride padding was written (%g)", name, tc, i, j, got)
				}
				continue
			}
			w, e := want[i*tc.n+j], tol[i*tc.n+j]
			if d := math.Abs(float64(got) - w); !(d <= e) {
				if bad++; bad <= 3 {
					t.Errorf("%s %v: C[%d,%d] = %g, want %g (|diff| %.3g > tol %.3g)", name, tc, i, j, got, w, d, e)
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s %v: %d of %d elements wrong", name, tc, bad, tc.m*tc.n)
	}
}

// forEachImpl runs f with every native kernel this CPU supports at 1, 2 and
// 3 goroutines, with the parallel threshold lowered so small cases split too,
// and with the public Gemm (OpenBLAS under -tags openblas).
func forEachImpl(t *testing.T, f func(name string, gemm func(bool, bool, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int))) {
	saved := parallelMinMACs
	parallelMinMACs = 0
	defer func() { parallelMinMACs = saved }()
	for _, kern := range availableKernels() {
		for _, th := range []int{1, 2, 3} {
			f(fmt.Sprintf("%s/threads=%d", kern.name, th), func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
				checkGemm(tA, tB, m, n, k, a, lda, b, ldb, c, ldc)
				gemmPacked(kern, th, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
			})
		}
	}
	f("Gemm/"+Kernel(), Gemm)
}

func TestGemmEdgeShapes(t *testing.T) {
	sizes := []int{1, 2, 5, 6, 7, 13, 14, 15, 16, 17, 22, 31, 32, 33, 47}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {2.5, -1}, {0, 0.5}, {0, 0}, {1.5, 0}}
	forEachImpl(t, func(name string, gemm func(bool, bool, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int)) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for trial := 0; trial < 40; trial++ {
					s := scalars[trial%len(scalars)]
					tc := gemmCase{transA: tA, transB: tB,
						m: sizes[rng.IntN(len(sizes))], n: sizes[rng.IntN(len(sizes))], k: sizes[rng.IntN(len(sizes))],
						alpha: s[0], beta: s[1], padA: rng.IntN(3) * 3, padB: rng.IntN(3) * 5, padC: rng.IntN(3) * 2}
					checkCase(t, name, tc, rng, gemm)
				}
				// 1×1, k = 1 and k = 0 explicitly.
				checkCase(t, name, gemmCase{transA: tA, transB: tB, m: 1, n: 1, k: 1, alpha: 1, beta: 0}, rng, gemm)
				checkCase(t, name, gemmCase{transA: tA, transB: tB, m: 29, n: 35, k: 1, alpha: -2, beta: 0.5, padC: 3}, rng, gemm)
				checkCase(t, name, gemmCase{transA: tA, transB: tB, m: 9, n: 40, k: 0, alpha: 1, beta: 0.5}, rng, gemm)
				checkCase(t, name, gemmCase{transA: tA, transB: tB, m: 9, n: 40, k: 0, alpha: 1, beta: 0}, rng, gemm)
			}
		}
	})
}

// TestGemmBlocking uses shapes that cross the cache-block boundaries
// (kc, mc, nc), so that later k blocks accumulate with beta = 1, and large
// enough k to take the split-K path.
func TestGemmBlocking(t *testing.T) {
	cases := []gemmCase{
		{m: 200, n: 70, k: 700, alpha: 1, beta: 0, padA: 1, padB: 2, padC: 3},
		{m: 3, n: 5, k: 1500, alpha: 0.5, beta: -2},
		{m: 30, n: 4200, k: 20, alpha: 1, beta: 1, padC: 1},
		{m: 61, n: 261, k: 261, alpha: 1, beta: 0},
		{m: 400, n: 33, k: 300, alpha: -1, beta: 0.5, padA: 7},
		{m: 40, n: 20, k: 2100, alpha: 1, beta: 1}, // split-K at the default kc = 1024 too
	}
	// Also with tiny blocks (kc = 16, mc = one panel, nc = 64), so that small
	// matrices run through many k, A and B blocks.
	defer func() { kcTarget, mcPanels, ncTarget = kcTargetConst, mcPanelsConst, ncTargetConst }()
	for _, blocks := range [][3]int{{kcTargetConst, mcPanelsConst, ncTargetConst}, {16, 1, 64}} {
		kcTarget, mcPanels, ncTarget = blocks[0], blocks[1], blocks[2]
		testBlocking(t, cases, fmt.Sprintf("kc=%d,mcPanels=%d,nc=%d", blocks[0], blocks[1], blocks[2]))
	}
}

func testBlocking(t *testing.T, cases []gemmCase, blocking string) {
	forEachImpl(t, func(name string, gemm func(bool, bool, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int)) {
		name += "/" + blocking
		rng := rand.New(rand.NewPCG(3, 4))
		for _, base := range cases {
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					tc := base
					tc.transA, tc.transB = tA, tB
					checkCase(t, name, tc, rng, gemm)
				}
			}
		}
	})
}

// TestGemmAlphaZeroIgnoresNaN: with alpha = 0, BLAS does not read A or B.
func TestGemmAlphaZeroIgnoresNaN(t *testing.T) {
	nan := float32(math.NaN())
	a := []float32{nan, nan, nan, nan}
	b := []float32{nan, nan, nan, nan}
	c := []float32{1, 2, 3, 4}
	Gemm(false, false, 2, 2, 2, 0, a, 2, b, 2, 3, c, 2)
	if want := []float32{3, 6, 9, 12}; fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("C = %v, want %v", c, want)
	}
}

func TestGemmDimensionErrors(t *testing.T) {
	ok := make([]float32, 16)
	cases := []struct {
		name string
		call func()
	}{
		{"negative m", func() { Gemm(false, false, -1, 2, 2, 1, ok, 2, ok, 2, 0, ok, 2) }},
		{"lda < k", func() { Gemm(false, false, 2, 2, 3, 1, ok, 2, ok, 2, 0, ok, 2) }},
		{"lda < m with transA", func() { Gemm(true, false, 3, 2, 2, 1, ok, 2, ok, 2, 0, ok, 2) }},
		{"ldb < k with transB", func() { Gemm(false, true, 2, 2, 3, 1, ok, 3, ok, 2, 0, ok, 2) }},
		{"ldc < n", func() { Gemm(false, false, 2, 3, 2, 1, ok, 2, ok, 3, 0, ok, 2) }},
		{"short A", func() { Gemm(false, false, 5, 2, 4, 1, ok, 4, ok, 2, 0, make([]float32, 10), 2) }},
		{"short C", func() { Gemm(false, false, 2, 2, 2, 1, ok, 2, ok, 2, 0, make([]float32, 3), 2) }},
		{"zero lda", func() { Gemm(false, false, 0, 0, 0, 1, nil, 0, nil, 1, 0, nil, 1) }},
	}
	for _, tc := range cases {
		func() {
			defer func() {
				r := recover()
				var de DimensionError
				if err, isErr := r.(error); !isErr || !errors.As(err, &de) {
					t.Errorf("%s: recovered %v (%T), want a DimensionError", tc.name, r, r)
				}
			}()
			tc.call()
		}()
	}
	// Empty products with valid strides are no-ops, not errors.
	Gemm(false, false, 0, 3, 2, 1, nil, 2, ok, 3, 0, nil, 3)
}

// TestGemmConcurrent calls Gemm from several goroutines at once on shapes
// that are themselves split across goroutines; run it with -race.
func TestGemmConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tc := gemmCase{transB: true, m: 150, n: 140, k: 300, alpha: 1, beta: 0}
	a, lda, b, ldb, _, _ := operandsFor(tc, rng)
	want, tol := refGemm(tc, a, lda, b, ldb, nil, tc.n)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			c := make([]float32, tc.m*tc.n)
			for rep := 0; rep < 5; rep++ {
				Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, 0, c, tc.n)
				for i, v := range c {
					if d := math.Abs(float64(v) - want[i]); !(d <= tol[i]) {
						errs <- fmt.Sprintf("goroutine %d: C[%d] = %g, want %g", g, i, v, want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestSetThreads(t *testing.T) {
	defer SetThreads(0)
	SetThreads(3)
	if Threads() != 3 {
		t.Fatalf("Threads() = %d after SetThreads(3)", Threads())
	}
	SetThreads(0)
	if Threads() < 1 {
		t.Fatalf("Threads() = %d by default", Threads())
	}
}

// TestAllocs: steady-state calls allocate nothing, on one goroutine and
// when split across helpers (packing buffers and task batches are pooled).
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race (sync.Pool drops items); checked in the plain test run")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	tc := gemmCase{transB: true, m: 64, n: 64, k: 64, alpha: 1, beta: 0}
	a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
	for _, th := range []int{1, 2} {
		call := func() { gemmPacked(bestKernel, th, false, true, 64, 64, 64, 1, a, lda, b, ldb, 0, c, ldc) }
		saved := parallelMinMACs
		parallelMinMACs = 0
		call()
		n := testing.AllocsPerRun(20, call)
		parallelMinMACs = saved
		if n != 0 {
			t.Errorf("Gemm on %d goroutines allocates %v times per call", th, n)
		}
	}
	if n := testing.AllocsPerRun(20, func() { Gemm(false, true, 64, 64, 64, 1, a, lda, b, ldb, 0, c, ldc) }); n != 0 {
		t.Errorf("Gemm (%s) allocates %v times per call", Kernel(), n)
	}
}

// TestGemmSerialEqualsGemm: the single-goroutine entry point gives the same bits as the parallel
// one (the work split never changes the order of the k-sums).
func TestGemmSerialEqualsGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []gemmCase{
		{transB: true, m: 300, n: 257, k: 129, alpha: 1, beta: 0},
		{m: 97, n: 64, k: 300, alpha: 0.5, beta: 1},
	} {
		a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
		c2 := append([]float32(nil), c...)
		Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
		GemmSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c2, ldc)
		for i := range c {
			if c[i] != c2[i] && !(c[i] != c[i] && c2[i] != c2[i]) {
				t.Fatalf("%+v: element %d: %g vs %g", tc, i, c[i], c2[i])
			}
		}
	}
}
