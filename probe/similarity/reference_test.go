package similarity

// Float64 references written from the definitions, on explicit n×n matrices, independently of the
// feature-space and float32 code they check: Kornblith et al. 2019 (CKA, eq. for HSIC with
// H = I − 11ᵀ/n), Song et al. 2012 (the unbiased HSIC estimator, and its U-statistic form), and
// the textbook definitions of average ranks, Pearson r and Kendall's τ_b.

import (
	"math"
	"sort"
)

// refMatrix is a dense float64 matrix [r][c].
type refMatrix [][]float64

func toRef(x []float32, n, d int) refMatrix {
	m := make(refMatrix, n)
	for i := range m {
		m[i] = make([]float64, d)
		for j := range d {
			m[i][j] = float64(x[i*d+j])
		}
	}
	return m
}

func refLinearKernel(x refMatrix) refMatrix {
	n := len(x)
	k := make(refMatrix, n)
	for i := range k {
		k[i] = make([]float64, n)
		for j := range n {
			for f := range x[i] {
				k[i][j] += x[i][f] * x[j][f]
			}
		}
	}
	return k
}

func refSqDist(x refMatrix) refMatrix {
	n := len(x)
	d := make(refMatrix, n)
	for i := range d {
		d[i] = make([]float64, n)
		for j := range n {
			for f := range x[i] {
				t := x[i][f] - x[j][f]
				d[i][j] += t * t
			}
		}
	}
	return d
}

// refHSICBiased is tr(KHLH) with H = I − 11ᵀ/n, formed explicitly.
func refHSICBiased(k, l refMatrix) float64 {
	n := len(k)
	h := make(refMatrix, n)
	for i := range h {
		h[i] = make([]float64, n)
		for j := range h[i] {
			h[i][j] = -1 / float64(n)
			if i == j {
				h[i][j] += 1
			}
		}
	}
	kh, lh := refMul(k, h), refMul(l, h)
	p := refMul(kh, lh)
	tr := 0.0
	for i := range p {
		tr += p[i][i]
	}
	return tr
}

func refMul(a, b refMatrix) refMatrix {
	n, m, p := len(a), len(b), len(b[0])
	c := make(refMatrix, n)
	for i := range c {
		c[i] = make([]float64, p)
		for k := range m {
			for j := range p {
				c[i][j] += a[i][k] * b[k][j]
			}
		}
	}
	return c
}

// refHSICUnbiased is Song et al.'s HSIC₁ (their eq. 5 in closed form).
func refHSICUnbiased(k, l refMatrix) float64 {
	n := len(k)
	kt, lt := zeroDiag(k), zeroDiag(l)
	tr, sk, sl, cross := 0.0, 0.0, 0.0, 0.0
	kr, lr := make([]float64, n), make([]float64, n)
	for i := range n {
		for j := range n {
			tr += kt[i][j] * lt[j][i]
			sk += kt[i][j]
			sl += lt[i][j]
			kr[i] += kt[i][j]
			lr[i] += lt[i][j]
		}
	}
	for i := range n {
		cross += kr[i] * lr[i] // 1ᵀK̃L̃1 = (K̃1)ᵀ(L̃1) for symmetric K̃
	}
	fn := float64(n)
	return (tr + sk*sl/((fn-1)*(fn-2)) - 2/(fn-2)*cross) / (fn * (fn - 3))
}

// refHSICUStatistic is the U-statistic Song et al. show HSIC₁ to be: the mean over ordered
// 4-tuples of distinct rows of k_ij·l_ij + k_ij·l_qr − 2·k_ij·l_iq. O(n⁴): tiny n only.
func refHSICUStatistic(k, l refMatrix) float64 {
	n := len(k)
	s, count := 0.0, 0
	for i := range n {
		for j := range n {
			for q := range n {
				for r := range n {
					if i == j || i == q || i == r || j == q || j == r || q == r {
						continue
					}
					s += k[i][j]*l[i][j] + k[i][j]*l[q][r] - 2*k[i][j]*l[i][q]
					count++
				}
			}
		}
	}
	return s / float64(count)
}

func zeroDiag(k refMatrix) refMatrix {
	out := make(refMatrix, len(k))
	for i := range k {
		out[i] = append([]float64(nil), k[i]...)
		out[i][i] = 0
	}
	return out
}

func refCKA(k, l refMatrix, unbiased bool) float64 {
	h := refHSICBiased
	if unbiased {
		h = refHSICUnbiased
	}
	return h(k, l) / math.Sqrt(h(k, k)*h(l, l))
}

// refRBFKernel is exp(−d²/(2σ²)), σ = threshold × the median distance over pairs i < j.
func refRBFKernel(x refMatrix, threshold float64) (refMatrix, float64) {
	d2 := refSqDist(x)
	var dist []float64
	for i := range d2 {
		for j := i + 1; j < len(d2); j++ {
			dist = append(dist, math.Sqrt(d2[i][j]))
		}
	}
	sort.Float64s(dist)
	m := len(dist)
	med := dist[m/2]
	if m%2 == 0 {
		med = (dist[m/2-1] + dist[m/2]) / 2
	}
	sigma := threshold * med
	k := make(refMatrix, len(d2))
	for i := range k {
		k[i] = make([]float64, len(d2))
		for j := range k[i] {
			k[i][j] = math.Exp(-d2[i][j] / (2 * sigma * sigma))
		}
	}
	return k, sigma
}

// refRDM is the upper triangle (i < j, row-major) of the dissimilarity matrix.
func refRDM(x refMatrix, kind string) []float64 {
	n := len(x)
	var out []float64
	for i := range n {
		for j := i + 1; j < n; j++ {
			switch kind {
			case RDMCorrelation:
				out = append(out, 1-refPearson(x[i], x[j]))
			case RDMCosine:
				out = append(out, 1-refDot(x[i], x[j])/math.Sqrt(refDot(x[i], x[i])*refDot(x[j], x[j])))
			case RDMEuclidean:
				s := 0.0
				for f := range x[i] {
					s += (x[i][f] - x[j][f]) * (x[i][f] - x[j][f])
				}
				out = append(out, math.Sqrt(s))
			}
		}
	}
	return out
}

func refDot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func refPearson(a, b []float64) float64 {
	ma, mb := 0.0, 0.0
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= float64(len(a))
	mb /= float64(len(b))
	sab, saa, sbb := 0.0, 0.0, 0.0
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	return sab / math.Sqrt(saa*sbb)
}

// refRanks: 1 + (values below) + (other values equal)/2, the average rank by counting. O(m²).
func refRanks(v []float64) []float64 {
	r := make([]float64, len(v))
	for i := range v {
		below, equal := 0, 0
		for j := range v {
			if v[j] < v[i] {
				below++
			} else if v[j] == v[i] && j != i {
				equal++
			}
		}
		r[i] = 1 + float64(below) + float64(equal)/2
	}
	return r
}

func refSpearman(a, b []float64) float64 { return refPearson(refRanks(a), refRanks(b)) }

// refKendallTauB counts every pair: (C − D)/√((n₀ − n₁)(n₀ − n₂)). O(m²).
func refKendallTauB(a, b []float64) float64 {
	var c, d, tiedA, tiedB, total float64
	for i := range a {
		for j := i + 1; j < len(a); j++ {
			total++
			sa, sb := sign(a[i]-a[j]), sign(b[i]-b[j])
			if sa == 0 {
				tiedA++
			}
			if sb == 0 {
				tiedB++
			}
			switch {
			case sa*sb > 0:
				c++
			case sa*sb < 0:
				d++
			}
		}
	}
	return (c - d) / math.Sqrt((total-tiedA)*(total-tiedB))
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

func refRSA(x, y refMatrix, rdm, compare string) float64 {
	a, b := refRDM(x, rdm), refRDM(y, rdm)
	switch compare {
	case CompareSpearman:
		return refSpearman(a, b)
	case ComparePearson:
		return refPearson(a, b)
	default:
		return refKendallTauB(a, b)
	}
}
