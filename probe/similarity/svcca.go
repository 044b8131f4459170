package similarity

import (
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// svccaBasis is an orthonormal basis Q ([n, k] row-major float64) of the top-k left singular
// subspace of a representation standardised for SVCCA.
type svccaBasis struct {
	q    []float64
	n, k int
	// rankDeficient is set when the k-th singular value is 0 (or lost in rounding): the
	// subspace, and so the score, is undefined.
	rankDeficient bool
}

// newSVCCABasis standardises r as platonic-rep's svcca does after compute_score's normalisation
// (rows to unit length, columns centred and divided by their ddof=1 standard deviation + 1e-8)
// and returns its top k = min(dims, d, n−1) left singular vectors. They come from the
// eigenvectors of ZᵀZ (a float32 product summed in float64), refined by three steps of float64
// subspace iteration Q ← orth(Z Zᵀ Q), each of which shrinks the remaining error by
// (σ_{k+1}/σ_k)²: the exact SVD's subspace, without an n×d factorisation.
func newSVCCABasis(r Representation, dims int) *svccaBasis {
	n, d := r.Rows(), r.Dim
	z := unitRows(r)
	mean := make([]float64, d)
	for i := range n {
		for f, v := range z[i*d : (i+1)*d] {
			mean[f] += v
		}
	}
	for f := range mean {
		mean[f] /= float64(n)
	}
	sd := make([]float64, d)
	for i := range n {
		for f, v := range z[i*d : (i+1)*d] {
			t := v - mean[f]
			sd[f] += t * t
		}
	}
	for f := range sd {
		sd[f] = math.Sqrt(sd[f]/float64(n-1)) + 1e-8
	}
	par.For(n, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := z[i*d : (i+1)*d]
			for f := range row {
				row[f] = (row[f] - mean[f]) / sd[f]
			}
		}
	})
	k := min(dims, d, n-1)

	// ZᵀZ from a transposed float32 copy, in chunks of rows summed in float64.
	zt := make([]float32, d*n)
	par.For(d, 16, func(lo, hi int) {
		for f := lo; f < hi; f++ {
			for i := range n {
				zt[f*n+i] = float32(z[i*d+f])
			}
		}
	})
	g := make([]float64, d*d)
	part := make([]float32, d*d)
	const chunk = 4096
	for c0 := 0; c0 < n; c0 += chunk {
		c1 := min(c0+chunk, n)
		sgemm.Gemm(false, true, d, d, c1-c0, 1, zt[c0:], n, zt[c0:], n, 0, part, d)
		for t, v := range part {
			g[t] += float64(v)
		}
	}
	zt, part = nil, nil
	for a := range d { // symmetrise exactly for EigenSym
		for b := a + 1; b < d; b++ {
			m := (g[a*d+b] + g[b*d+a]) / 2
			g[a*d+b], g[b*d+a] = m, m
		}
	}
	var es mat.EigenSym
	b := &svccaBasis{n: n, k: k}
	if !es.Factorize(mat.NewSymDense(d, g), true) {
		b.rankDeficient = true
		return b
	}
	var vecs mat.Dense
	es.VectorsTo(&vecs)
	vals := es.Values(nil) // ascending
	if !(vals[d-k] > 1e-12*vals[d-1]) {
		b.rankDeficient = true
		return b
	}
	w := make([]float64, d*k) // [d, k]: the top k eigenvectors, largest first
	for c := range k {
		for f := range d {
			w[f*k+c] = vecs.At(f, d-1-c)
		}
	}
	q := make([]float64, n*k)
	for step := 0; ; step++ {
		mulNK(q, z, w, n, d, k)
		if !orthonormalise(q, n, k) {
			b.rankDeficient = true
			return b
		}
		if step == 3 {
			break
		}
		mulTNK(w, z, q, n, d, k)
	}
	b.q = q
	return b
}

// mulNK sets q = z·w: z [n, d], w [d, k], q [n, k].
func mulNK(q, z, w []float64, n, d, k int) {
	par.For(n, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out := q[i*k : (i+1)*k]
			clear(out)
			for f, v := range z[i*d : (i+1)*d] {
				for c, wv := range w[f*k : (f+1)*k] {
					out[c] += v * wv
				}
			}
		}
	})
}

// mulTNK sets w = zᵀ·q: z [n, d], q [n, k], w [d, k], summed over fixed blocks of rows.
func mulTNK(w, z, q []float64, n, d, k int) {
	const block = 2048
	parts := make([][]float64, (n+block-1)/block)
	par.For(len(parts), 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			acc := make([]float64, d*k)
			for i := p * block; i < min((p+1)*block, n); i++ {
				qi := q[i*k : (i+1)*k]
				for f, v := range z[i*d : (i+1)*d] {
					out := acc[f*k : (f+1)*k]
					for c, qv := range qi {
						out[c] += v * qv
					}
				}
			}
			parts[p] = acc
		}
	})
	clear(w)
	for _, p := range parts {
		for t, v := range p {
			w[t] += v
		}
	}
}

// orthonormalise makes the k columns of q ([n, k]) orthonormal by modified Gram–Schmidt, twice
// for float64 orthogonality. It reports false when a column vanishes (rank below k).
func orthonormalise(q []float64, n, k int) bool {
	for pass := 0; pass < 2; pass++ {
		for c := range k {
			for p := range c {
				dot := 0.0
				for i := range n {
					dot += q[i*k+c] * q[i*k+p]
				}
				for i := range n {
					q[i*k+c] -= dot * q[i*k+p]
				}
			}
			s := 0.0
			for i := range n {
				s += q[i*k+c] * q[i*k+c]
			}
			if !(s > 1e-300) {
				return false
			}
			inv := 1 / math.Sqrt(s)
			for i := range n {
				q[i*k+c] *= inv
			}
		}
	}
	return true
}

// svccaScore is the mean of the min(k_X, k_Y) canonical correlations of two bases (the singular
// values of Q_XᵀQ_Y), clipped to [0, 1]; NaN when either subspace is undefined.
func svccaScore(x, y *svccaBasis) float64 {
	if x.rankDeficient || y.rankDeficient {
		return math.NaN()
	}
	n, kx, ky := x.n, x.k, y.k
	c := make([]float64, kx*ky)
	for i := range n {
		xi, yi := x.q[i*kx:(i+1)*kx], y.q[i*ky:(i+1)*ky]
		for a, xv := range xi {
			row := c[a*ky : (a+1)*ky]
			for b, yv := range yi {
				row[b] += xv * yv
			}
		}
	}
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(kx, ky, c), mat.SVDNone) {
		return math.NaN()
	}
	vals := svd.Values(nil)
	m := min(kx, ky)
	s := 0.0
	for _, v := range vals[:m] {
		s += v
	}
	return math.Min(1, math.Max(0, s/float64(m)))
}
