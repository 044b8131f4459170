package similarity

import (
	"math"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// centred is a representation centred per feature, with the row statistics the feature-space
// estimators need.
type centred struct {
	x     []float32 // [n, d] row-major, column means removed; [d, n] when transposed
	xt    bool      // x is transposed: the feature-space products run fastest on [d, n] operands
	n, d  int
	rowSq []float64 // ‖xᵢ‖², the diagonal of K = XXᵀ
	k1    []float64 // K̃1 = X(Xᵀ1) − diag(K): row sums of K with a zeroed diagonal
	sumK  float64   // 1ᵀK̃1
}

// centre removes the column means of x ([n, d]) into dst (which may be x itself) and computes the
// row statistics. Means and sums are float64. With transpose, dst ends up holding the centred
// matrix as [d, n].
func centre(dst, x []float32, n, d int, transpose bool) *centred {
	mean := columnSums(x, n, d)
	for j := range mean {
		mean[j] /= float64(n)
	}
	c := &centred{x: dst, n: n, d: d, xt: transpose, rowSq: make([]float64, n), k1: make([]float64, n)}
	if !transpose {
		par.For(n, 256, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				src, out := x[i*d:(i+1)*d], dst[i*d:(i+1)*d]
				for j, v := range src {
					out[j] = float32(float64(v) - mean[j])
				}
			}
		})
		// Column sums of the stored (rounded) values: close to 0, but kept so that the
		// identities hold for the matrix actually multiplied.
		colSum := columnSums(dst, n, d)
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
	} else {
		t := dst
		if &x[0] == &dst[0] {
			t = make([]float32, n*d) // in place: transpose through a copy
		}
		const tile = 64
		par.For((n+tile-1)/tile, 1, func(lo, hi int) {
			for bi := lo * tile; bi < min(hi*tile, n); bi += tile {
				ei := min(bi+tile, n)
				for bj := 0; bj < d; bj += tile {
					for j := bj; j < min(bj+tile, d); j++ {
						m, col := mean[j], t[j*n+bi:j*n+ei]
						for i := range col {
							col[i] = float32(float64(x[(bi+i)*d+j]) - m)
						}
					}
				}
			}
		})
		colSum := make([]float64, d)
		par.For(d, 16, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				s := 0.0
				for _, v := range t[j*n : (j+1)*n] {
					s += float64(v)
				}
				colSum[j] = s
			}
		})
		par.For(n, 1024, func(lo, hi int) {
			sq, dot := c.rowSq[lo:hi], c.k1[lo:hi]
			for j := range d {
				cs := colSum[j]
				for i, v := range t[j*n+lo : j*n+hi] {
					f := float64(v)
					sq[i] += f * f
					dot[i] += f * cs
				}
			}
			for i := range sq {
				dot[i] -= sq[i]
			}
		})
		if &t[0] != &dst[0] {
			copy(dst, t)
		}
	}
	for i := range n {
		c.sumK += c.k1[i]
	}
	return c
}

// columnSums returns the float64 column sums of x ([n, d]), over fixed blocks of rows so that the
// result does not depend on the number of goroutines.
func columnSums(x []float32, n, d int) []float64 {
	const block = 1024
	parts := make([][]float64, (n+block-1)/block)
	par.For(len(parts), 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			s := make([]float64, d)
			for i := p * block; i < min((p+1)*block, n); i++ {
				for j, v := range x[i*d : (i+1)*d] {
					s[j] += float64(v)
				}
			}
			parts[p] = s
		}
	})
	sum := make([]float64, d)
	for _, p := range parts {
		for j, v := range p {
			sum[j] += v
		}
	}
	return sum
}

// crossProduct returns ‖XᵀY‖²_F from the transposed centred matrices xt [dx, n] and yt [dy, n],
// with XᵀY computed in float32 into scratch ([dx·dy]) and squared and summed in float64.
func crossProduct(xt, yt []float32, n, dx, dy int, scratch []float32) float64 {
	g := scratch[:dx*dy]
	sgemm.Gemm(false, true, dx, dy, n, 1, xt, n, yt, n, 0, g, dy)
	return sumSquares(g)
}

// selfProduct returns ‖XᵀX‖²_F from the transposed centred matrix xt [d, n]. XᵀX is symmetric, so
// it is computed in blocks of features (rows of xt) above the diagonal only, off-diagonal blocks
// counted twice: 10 of 16 blocks for 4 blocks, 37.5% fewer flops than the full product.
func selfProduct(xt []float32, n, d int, scratch []float32) float64 {
	blocks := 1
	if d >= 512 {
		blocks = 4
	}
	edge := func(b int) int { return b * d / blocks }
	total := 0.0
	for bi := range blocks {
		for bj := bi; bj < blocks; bj++ {
			r0, r1, c0, c1 := edge(bi), edge(bi+1), edge(bj), edge(bj+1)
			f := crossProduct(xt[r0*n:r1*n], xt[c0*n:c1*n], n, r1-r0, c1-c0, scratch)
			if bi != bj {
				f *= 2
			}
			total += f
		}
	}
	return total
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
