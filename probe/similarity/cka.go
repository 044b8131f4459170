package similarity

import (
	"math"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// centred is a representation centred per feature, with the row statistics the feature-space
// estimators need.
type centred struct {
	x     []float32 // [n, d] row-major, column means removed
	n, d  int
	rowSq []float64 // ‖xᵢ‖², the diagonal of K = XXᵀ
	k1    []float64 // K̃1 = X(Xᵀ1) − diag(K): row sums of K with a zeroed diagonal
	sumK  float64   // 1ᵀK̃1
}

// centre removes the column means of x ([n, d]) into dst (which may be x itself) and computes the
// row statistics. Means and sums are float64.
func centre(dst, x []float32, n, d int) *centred {
	mean := make([]float64, d)
	for i := range n {
		row := x[i*d : (i+1)*d]
		for j, v := range row {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	c := &centred{x: dst, n: n, d: d, rowSq: make([]float64, n), k1: make([]float64, n)}
	par.For(n, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			src, out := x[i*d:(i+1)*d], dst[i*d:(i+1)*d]
			for j, v := range src {
				out[j] = float32(float64(v) - mean[j])
			}
		}
	})
	// Column sums of the stored (rounded) values: close to 0, but kept so that the identities
	// hold for the matrix actually multiplied.
	colSum := make([]float64, d)
	for i := range n {
		for j, v := range dst[i*d : (i+1)*d] {
			colSum[j] += float64(v)
		}
	}
	par.For(n, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sq, dot := 0.0, 0.0
			for j, v := range dst[i*d : (i+1)*d] {
				f := float64(v)
				sq += f * f
				dot += f * colSum[j]
			}
			c.rowSq[i] = sq
			c.k1[i] = dot - sq
		}
	})
	for i := range n {
		c.sumK += c.k1[i]
	}
	return c
}

// crossProduct returns ‖XᵀY‖²_F, with XᵀY computed in float32 into scratch ([dx·dy]) and squared
// and summed in float64.
func crossProduct(x, y []float32, n, dx, dy int, scratch []float32) float64 {
	g := scratch[:dx*dy]
	sgemm.Gemm(true, false, dx, dy, n, 1, x, dx, y, dy, 0, g, dy)
	return sumSquares(g)
}

// sumSquares returns Σ v² in float64 over a fixed partition, so results do not depend on
// GOMAXPROCS timing.
func sumSquares(g []float32) float64 {
	const chunk = 1 << 16
	parts := make([]float64, (len(g)+chunk-1)/chunk)
	par.For(len(parts), 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			s := 0.0
			for _, v := range g[p*chunk : min((p+1)*chunk, len(g))] {
				s += float64(v) * float64(v)
			}
			parts[p] = s
		}
	})
	s := 0.0
	for _, p := range parts {
		s += p
	}
	return s
}

// hsicLinear is the biased statistic of centred linear kernels up to a constant factor:
// tr(KHLH) = ‖XᵀY‖²_F.
func hsicLinear(f float64) float64 { return f }

// hsicUnbiased is n(n−3)·HSIC₁ of Song et al. for linear kernels, from f = ‖XᵀY‖²_F (rows of Y
// taken in the order perm, nil meaning the identity).
func hsicUnbiased(f float64, a, b *centred, perm []int) float64 {
	n := float64(a.n)
	diag, ones := 0.0, 0.0
	for i := range a.n {
		j := i
		if perm != nil {
			j = perm[i]
		}
		diag += a.rowSq[i] * b.rowSq[j]
		ones += a.k1[i] * b.k1[j]
	}
	return f - diag + a.sumK*b.sumK/((n-1)*(n-2)) - 2/(n-2)*ones
}

// ratio is x/√(y·z), NaN unless y and z are positive.
func ratio(x, y, z float64) float64 {
	if !(y > 0) || !(z > 0) {
		return math.NaN()
	}
	return x / math.Sqrt(y) / math.Sqrt(z)
}
