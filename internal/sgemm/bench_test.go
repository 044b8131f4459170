package sgemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The shapes the Perceiver IO vision model multiplies (224² image, 512×1024
// latents, 261-wide inputs, 8 heads of 128). GFLOPS counts 2·m·n·k per call.
var benchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
	lda, ldb, ldc  int // 0 means packed (the stored row length)
}{
	{name: "Linear_512x1024x1024_NT", transB: true, m: 512, n: 1024, k: 1024},
	{name: "LinearPretransposed_512x1024x1024_NN", m: 512, n: 1024, k: 1024},
	{name: "Linear_batch8_4096x1024x1024_NT", transB: true, m: 4096, n: 1024, k: 1024},
	{name: "EncoderKV_50176x261x261_NT", transB: true, m: 50176, n: 261, k: 261},
	{name: "EncoderScores_512x50176x261_NT", transB: true, m: 512, n: 50176, k: 261},
	{name: "EncoderContext_512x261x50176_NN", m: 512, n: 261, k: 50176},
	{name: "HeadScores_512x512x128_NT_strided", transB: true, m: 512, n: 512, k: 128, lda: 1024, ldb: 1024},
	{name: "HeadContext_512x128x512_NN_strided", m: 512, n: 128, k: 512, ldb: 1024, ldc: 1024},
}

func benchOperands(m, n, k int, transA, transB bool, lda, ldb, ldc int) ([]float32, int, []float32, int, []float32, int) {
	rng := rand.New(rand.NewPCG(9, 10))
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	lda, ldb, ldc = max(lda, ac), max(ldb, bc), max(ldc, n)
	rnd := func(size int) []float32 {
		x := make([]float32, size)
		for i := range x {
			x[i] = rng.Float32() - 0.5
		}
		return x
	}
	return rnd((ar-1)*lda + ac), lda, rnd((br-1)*ldb + bc), ldb, rnd((m-1)*ldc + n), ldc
}

func BenchmarkGemm(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) {
			a, lda, bm, ldb, c, ldc := benchOperands(s.m, s.n, s.k, s.transA, s.transB, s.lda, s.ldb, s.ldc)
			Gemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, ldc)
			b.ResetTimer()
			for b.Loop() {
				Gemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, ldc)
			}
			b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

// BenchmarkKernels compares the native kernels, single- and multi-threaded,
// on the 512×1024×1024 Linear shape.
func BenchmarkKernels(b *testing.B) {
	const m, n, k = 512, 1024, 1024
	a, lda, bm, ldb, c, ldc := benchOperands(m, n, k, false, true, 0, 0, 0)
	for _, kern := range availableKernels() {
		for _, th := range []int{1, Threads()} {
			b.Run(fmt.Sprintf("%s/threads=%d", kern.name, th), func(b *testing.B) {
				for b.Loop() {
					gemmPacked(kern, th, false, true, m, n, k, 1, a, lda, bm, ldb, 0, c, ldc)
				}
				b.ReportMetric(2*float64(m)*n*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}
