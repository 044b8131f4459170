package similarity

import (
	"math"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// rbfGram is the double-centred RBF kernel HKH of a representation, [n, n] float32, and its
// squared Frobenius norm.
type rbfGram struct {
	kc   []float32
	n    int
	norm float64 // ‖HKH‖²_F
	bw   float64 // σ
}

// squaredDistances writes ‖xᵢ − xⱼ‖² ([n, n], zero diagonal) of the centred representation c
// into g, through the Gram matrix XXᵀ.
func squaredDistances(g []float32, c *centred) {
	n := c.n
	sgemm.Gemm(false, true, n, n, c.d, 1, c.x, c.d, c.x, c.d, 0, g, n)
	par.For(n, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := g[i*n : (i+1)*n]
			for j, v := range row {
				d := c.rowSq[i] + c.rowSq[j] - 2*float64(v)
				if d < 0 || i == j {
					d = 0
				}
				row[j] = float32(d)
			}
		}
	})
}

// medianPairDistance returns the median of √d over the strict upper triangle of the squared
// distances d ([n, n]); for an even count, the mean of the two middle distances.
func medianPairDistance(d []float32, n int) float64 {
	upper := make([]float32, 0, n*(n-1)/2)
	for i := range n {
		upper = append(upper, d[i*n+i+1:(i+1)*n]...)
	}
	keys := sortKeys(upper)
	m := len(keys)
	mid := math.Sqrt(float64(keyValue(keys[m/2])))
	if m%2 == 1 {
		return mid
	}
	return (math.Sqrt(float64(keyValue(keys[m/2-1]))) + mid) / 2
}

// newRBFGram computes HKH for K_ij = exp(−‖xᵢ − xⱼ‖²/(2σ²)), σ = threshold × the median pair
// distance. A zero median (all rows equal) gives σ = 0 and K = 1 everywhere it is defined; the
// centred kernel is then 0 and CKA NaN.
func newRBFGram(c *centred, threshold float64) *rbfGram {
	n := c.n
	g := make([]float32, n*n)
	squaredDistances(g, c)
	sigma := threshold * medianPairDistance(g, n)
	inv := 0.0
	if sigma > 0 {
		inv = 1 / (2 * sigma * sigma)
	}
	rowMean := make([]float64, n)
	par.For(n, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := g[i*n : (i+1)*n]
			s := 0.0
			for j, v := range row {
				k := math.Exp(-float64(v) * inv)
				row[j] = float32(k)
				s += k
			}
			rowMean[i] = s / float64(n)
		}
	})
	grand := 0.0
	for _, m := range rowMean {
		grand += m
	}
	grand /= float64(n)
	norms := make([]float64, n)
	par.For(n, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := g[i*n : (i+1)*n]
			s := 0.0
			for j, v := range row {
				k := float64(v) - rowMean[i] - rowMean[j] + grand
				row[j] = float32(k)
				s += float64(row[j]) * float64(row[j])
			}
			norms[i] = s
		}
	})
	r := &rbfGram{kc: g, n: n, bw: sigma}
	for _, s := range norms {
		r.norm += s
	}
	return r
}

// gramInner returns Σᵢⱼ A[i,j]·B[π(i),π(j)] (π = perm, nil for the identity) in float64.
func gramInner(a, b []float32, n int, perm []int) float64 {
	rows := make([]float64, n)
	par.For(n, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ra := a[i*n : (i+1)*n]
			s := 0.0
			if perm == nil {
				rb := b[i*n : (i+1)*n]
				for j, v := range ra {
					s += float64(v) * float64(rb[j])
				}
			} else {
				rb := b[perm[i]*n : (perm[i]+1)*n]
				for j, v := range ra {
					s += float64(v) * float64(rb[perm[j]])
				}
			}
			rows[i] = s
		}
	})
	s := 0.0
	for _, r := range rows {
		s += r
	}
	return s
}
