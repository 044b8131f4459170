package similarity

import (
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// crossMatrix returns XᵀY ([dx, dy] float64) from the transposed centred matrices xt [dx, n] and
// yt [dy, n]: float32 products over chunks of rows, summed in float64, so that the rounding does
// not grow with n.
func crossMatrix(xt, yt []float32, n, dx, dy int) []float64 {
	out := make([]float64, dx*dy)
	part := make([]float32, dx*dy)
	const chunk = 4096
	for c0 := 0; c0 < n; c0 += chunk {
		c1 := min(c0+chunk, n)
		sgemm.Gemm(false, true, dx, dy, c1-c0, 1, xt[c0:], n, yt[c0:], n, 0, part, dy)
		for t, v := range part {
			out[t] += float64(v)
		}
	}
	return out
}

// frobenius returns ‖Xc‖_F from the row statistics of a centred representation.
func (c *centred) frobenius() float64 {
	s := 0.0
	for _, v := range c.rowSq {
		s += v
	}
	return math.Sqrt(s)
}

// procrustesAngle is netrep's angular shape distance LinearMetric(alpha=1) between centred
// representations: arccos(‖XcᵀYc‖_* / (‖Xc‖_F ‖Yc‖_F)), the nuclear norm from the singular values
// of the dx×dy matrix in float64. A representation against itself is 0 exactly (XcᵀXc is
// positive semidefinite: its nuclear norm is its trace, ‖Xc‖²_F). NaN when either side is
// constant.
func procrustesAngle(x, y *centred) float64 {
	fx, fy := x.frobenius(), y.frobenius()
	if !(fx > 0) || !(fy > 0) {
		return math.NaN()
	}
	if x == y {
		return 0
	}
	m := crossMatrix(x.x, y.x, x.n, x.d, y.d)
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(x.d, y.d, m), mat.SVDNone) {
		return math.NaN()
	}
	nuc := 0.0
	for _, v := range svd.Values(nil) {
		nuc += v
	}
	return math.Acos(math.Max(-1, math.Min(1, nuc/(fx*fy))))
}
