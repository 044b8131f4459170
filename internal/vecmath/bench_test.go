package vecmath

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Benchmarks run per implementation; "go" is the scalar fallback, which computes what the model's
// loops computed before (same exponential algorithm, float64 LayerNorm statistics).
// BenchmarkGELUMathErf is the previous GELU, float64 math.Erf. Throughput counts bytes read.

func benchImpls(b *testing.B, f func(b *testing.B)) {
	saved := impl
	defer func() { impl = saved }()
	for _, k := range available() {
		impl = k
		b.Run(k.name, f)
	}
}

func benchData(n int, scale float64) []float32 {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * scale)
	}
	return x
}

func perElement(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
}

func BenchmarkExpShiftSum(b *testing.B) {
	for _, n := range []int{512, 50176} { // a self-attention row, an encoder row
		src := benchData(n, 3)
		dst := make([]float32, n)
		m := Max(src)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					ExpShiftSum(dst, src, m)
				}
				perElement(b, n)
			})
		})
	}
}

func BenchmarkMax(b *testing.B) {
	src := benchData(512, 3)
	benchImpls(b, func(b *testing.B) {
		b.SetBytes(4 * 512)
		for b.Loop() {
			Max(src)
		}
		perElement(b, 512)
	})
}

const geluN = 1 << 16

func BenchmarkGELU(b *testing.B) {
	src := benchData(geluN, 2)
	dst := make([]float32, geluN)
	benchImpls(b, func(b *testing.B) {
		b.SetBytes(4 * geluN)
		for b.Loop() {
			GELU(dst, src)
		}
		perElement(b, geluN)
	})
}

// BenchmarkGELUMathErf is the GELU the model used before this package: float64 math.Erf.
func BenchmarkGELUMathErf(b *testing.B) {
	src := benchData(geluN, 2)
	dst := make([]float32, geluN)
	b.SetBytes(4 * geluN)
	for b.Loop() {
		for i, x := range src {
			v := float64(x)
			dst[i] = float32(0.5 * v * (1 + math.Erf(v*(1/math.Sqrt2))))
		}
	}
	perElement(b, geluN)
}

func BenchmarkLayerNormRow(b *testing.B) {
	for _, n := range []int{261, 1024} { // an encoder input row, a latent row
		src, w, bias := benchData(n, 1), benchData(n, 1), benchData(n, 1)
		dst := make([]float32, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					LayerNormRow(dst, src, w, bias, 1e-5)
				}
				perElement(b, n)
			})
		})
	}
}
