package sgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// packedGemm adapts PackB + GemmPacked to Gemm's signature for checkCase.
func packedGemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	GemmPacked(m, alpha, a, lda, tA, PackB(tB, k, n, b, ldb), nil, beta, c, ldc)
}

// TestGemmPackedAccuracy checks the public entry point against refGemm (float64 triple loop,
// tolerance as in sgemm_test.go) on odd shapes, stride padding (NaN-filled) and alpha/beta cases.
func TestGemmPackedAccuracy(t *testing.T) {
	sizes := []int{1, 2, 5, 13, 14, 15, 31, 32, 33, 47}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {0, 0.5}, {1.5, 0}}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for trial := 0; trial < 30; trial++ {
				s := scalars[trial%len(scalars)]
				tc := gemmCase{transA: tA, transB: tB,
					m: sizes[rng.IntN(len(sizes))], n: sizes[rng.IntN(len(sizes))], k: sizes[rng.IntN(len(sizes))],
					alpha: s[0], beta: s[1], padA: rng.IntN(3) * 3, padB: rng.IntN(3) * 5, padC: rng.IntN(3) * 2}
				checkCase(t, "GemmPacked", tc, rng, packedGemm)
			}
			checkCase(t, "GemmPacked", gemmCase{transA: tA, transB: tB, m: 9, n: 40, k: 0, alpha: 1, beta: 0.5}, rng, packedGemm)
			checkCase(t, "GemmPacked", gemmCase{transA: tA, transB: tB, m: 0, n: 40, k: 3, alpha: 1, beta: 0.5}, rng, packedGemm)
			checkCase(t, "GemmPacked", gemmCase{transA: tA, transB: tB, m: 300, n: 257, k: 1100, alpha: 1, beta: 1, padB: 3}, rng, packedGemm)
		}
	}
}

// TestGemmPackedBitIdentical: for every native kernel, thread count and blocking, a product with
// pre-packed B gives exactly Gemm's bits (same kc blocks, so the same order of k-sums), except
// where Gemm splits k over goroutines, which GemmPacked never does.
func TestGemmPackedBitIdentical(t *testing.T) {
	shapes := [][3]int{{1, 1, 1}, {7, 33, 17}, {15, 47, 31}, {29, 1000, 13}, {200, 70, 700}, {61, 261, 261}, {3, 65, 1500}, {513, 96, 1024}}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {2, -1}}
	rng := rand.New(rand.NewPCG(13, 14))
	forEachSetting([]int{1, 2, 3}, func(kern *microKernel, th int, blocks [3]int) {
		for si, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			if th > 1 && k >= 2*kcTarget {
				continue // Gemm may split k here; see GemmPacked's doc
			}
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					s := scalars[si%len(scalars)]
					tc := gemmCase{transA: tA, transB: tB, m: m, n: n, k: k, alpha: s[0], beta: s[1], padA: 1, padB: 2, padC: 3}
					a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
					c2 := append([]float32(nil), c...)
					gemmPacked(kern, th, tA, tB, m, n, k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
					pb := packNative(kern, tB, k, n, b, ldb)
					gemmPrepacked(th, m, tc.alpha, a, lda, tA, pb, nil, tc.beta, c2, ldc)
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(c2[i]) && !(c[i] != c[i] && c2[i] != c2[i]) {
							t.Fatalf("%s threads=%d blocks=%v %v: element %d: Gemm %g, GemmPacked %g",
								kern.name, th, blocks, tc, i, c[i], c2[i])
						}
					}
				}
			}
		}
	})
}

// forEachSetting runs fn for every native kernel, each thread count given, and two blockings: the
// real one and a tiny one, so that products span several kc, mc and nc blocks. Products of any
// size are split over the threads.
func forEachSetting(threads []int, fn func(kern *microKernel, th int, blocks [3]int)) {
	saved := parallelMinMACs
	parallelMinMACs = 0
	defer func() {
		parallelMinMACs = saved
		kcTarget, mcPanels, ncTarget = kcTargetConst, mcPanelsConst, ncTargetConst
	}()
	for _, blocks := range [][3]int{{kcTargetConst, mcPanelsConst, ncTargetConst}, {16, 1, 64}} {
		kcTarget, mcPanels, ncTarget = blocks[0], blocks[1], blocks[2]
		for _, kern := range availableKernels() {
			for _, th := range threads {
				fn(kern, th, blocks)
			}
		}
	}
}

// TestGemmPackedBias checks the fused bias against a float64 reference, (alpha·AB + bias) +
// beta·C, for every native kernel, thread count and blocking (so edge tiles, several kc blocks,
// where the bias must be added once, and several column blocks), with NaN in C when beta == 0.
func TestGemmPackedBias(t *testing.T) {
	shapes := [][3]int{{1, 1, 1}, {7, 33, 17}, {15, 47, 31}, {29, 100, 13}, {61, 261, 70}, {3, 65, 150}}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {0, 1}}
	rng := rand.New(rand.NewPCG(17, 18))
	forEachSetting([]int{1, 2}, func(kern *microKernel, th int, blocks [3]int) {
		for si, sh := range shapes {
			s := scalars[si%len(scalars)]
			tc := gemmCase{transA: si%2 == 1, transB: true, m: sh[0], n: sh[1], k: sh[2], alpha: s[0], beta: s[1], padA: 1, padB: 2, padC: 3}
			a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
			bias := make([]float32, tc.n)
			for j := range bias {
				bias[j] = float32(rng.NormFloat64())
			}
			want, tol := refGemm(tc, a, lda, b, ldb, c, ldc)
			pb := packNative(kern, tc.transB, tc.k, tc.n, b, ldb)
			gemmPrepacked(th, tc.m, tc.alpha, a, lda, tc.transA, pb, bias, tc.beta, c, ldc)
			for i := 0; i < tc.m; i++ {
				for j := 0; j < tc.n; j++ {
					w := want[i*tc.n+j] + float64(bias[j])
					e := tol[i*tc.n+j] + math.Abs(w)*0x1p-23
					if got := c[i*ldc+j]; !(math.Abs(float64(got)-w) <= e) {
						t.Fatalf("%s threads=%d blocks=%v %v: C[%d,%d] = %g, want %g ± %.3g", kern.name, th, blocks, tc, i, j, got, w, e)
					}
				}
			}
		}
	})
}

func TestGemmPackedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race (sync.Pool drops items); checked in the plain test run")
	}
	rng := rand.New(rand.NewPCG(15, 16))
	tc := gemmCase{transB: true, m: 256, n: 256, k: 64, alpha: 1, beta: 0}
	a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
	pb := PackB(true, 64, 256, b, ldb)
	bias := make([]float32, 256)
	call := func() { GemmPacked(256, 1, a, lda, false, pb, bias, 0, c, ldc) }
	call()
	if n := testing.AllocsPerRun(20, call); n != 0 {
		t.Errorf("GemmPacked allocates %v times per call", n)
	}
}

func TestGemmPackedDimensionErrors(t *testing.T) {
	pb := PackB(true, 4, 3, make([]float32, 12), 4)
	for name, f := range map[string]func(){
		"short B":    func() { PackB(true, 4, 3, make([]float32, 11), 4) },
		"negative k": func() { PackB(false, -1, 3, nil, 3) },
		"short A":    func() { GemmPacked(2, 1, make([]float32, 7), 4, false, pb, nil, 0, make([]float32, 6), 3) },
		"short C":    func() { GemmPacked(2, 1, make([]float32, 8), 4, false, pb, nil, 0, make([]float32, 5), 3) },
		"ldc":        func() { GemmPacked(2, 1, make([]float32, 8), 4, false, pb, nil, 0, make([]float32, 6), 2) },
		"bias": func() {
			GemmPacked(2, 1, make([]float32, 8), 4, false, pb, make([]float32, 2), 0, make([]float32, 6), 3)
		},
	} {
		func() {
			defer func() {
				if _, ok := recover().(DimensionError); !ok {
					t.Errorf("%s: no DimensionError panic", name)
				}
			}()
			f()
		}()
	}
}

// BenchmarkLinearPacked compares a Linear-layer product, x[m,1024]·Wᵀ with W [1024,1024], with
// B packed per call (Gemm) and once (GemmPacked).
func BenchmarkLinearPacked(b *testing.B) {
	const in, out = 1024, 1024
	for _, m := range []int{512, 4096} {
		x := make([]float32, m*in)
		w := make([]float32, out*in)
		for i := range w {
			w[i] = float32(i%7) - 3
		}
		c := make([]float32, m*out)
		pb := PackB(true, in, out, w, in)
		b.Run(fmt.Sprintf("m=%d/Gemm", m), func(b *testing.B) {
			b.SetBytes(0)
			for b.Loop() {
				Gemm(false, true, m, out, in, 1, x, in, w, in, 0, c, out)
			}
			b.ReportMetric(float64(2*m*in*out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
		b.Run(fmt.Sprintf("m=%d/GemmPacked", m), func(b *testing.B) {
			for b.Loop() {
				GemmPacked(m, 1, x, in, false, pb, nil, 0, c, out)
			}
			b.ReportMetric(float64(2*m*in*out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
		pb16 := PackBWith(BFloat16, true, in, out, w, in)
		b.Run(fmt.Sprintf("m=%d/GemmPacked-bf16", m), func(b *testing.B) {
			for b.Loop() {
				GemmPacked(m, 1, x, in, false, pb16, nil, 0, c, out)
			}
			b.ReportMetric(float64(2*m*in*out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}
