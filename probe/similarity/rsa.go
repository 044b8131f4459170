package similarity

import (
	"fmt"
	"math"
	"slices"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// RDM kinds and comparison statistics of RSA.
const (
	RDMCorrelation = "correlation"
	RDMCosine      = "cosine"
	RDMEuclidean   = "euclidean"

	CompareSpearman = "spearman"
	ComparePearson  = "pearson"
	CompareKendall  = "kendall"
)

// pairIndex is the position of pair (i, j), i < j, in the row-major strict upper triangle of an
// n×n matrix.
func pairIndex(i, j, n int) int { return i*(2*n-i-1)/2 + j - i - 1 }

// upperRDM returns the strict upper triangle (row-major, n(n−1)/2 values) of the dissimilarity
// matrix of x ([n, d]). x is overwritten when inPlace, else copied first.
func upperRDM(x []float32, n, d int, kind string, inPlace bool) ([]float32, error) {
	work := x
	if !inPlace {
		work = slices.Clone(x)
	}
	var sq []float64
	switch kind {
	case RDMCorrelation, RDMCosine:
		// Rows to unit vectors (after removing the row mean for correlation), so that the Gram
		// matrix holds the correlations or cosines. A zero row stays zero: similarity 0.
		par.For(n, 64, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := work[i*d : (i+1)*d]
				mean := 0.0
				if kind == RDMCorrelation {
					for _, v := range row {
						mean += float64(v)
					}
					mean /= float64(d)
				}
				s := 0.0
				for _, v := range row {
					f := float64(v) - mean
					s += f * f
				}
				inv := 0.0
				if s > 0 {
					inv = 1 / math.Sqrt(s)
				}
				for j, v := range row {
					row[j] = float32((float64(v) - mean) * inv)
				}
			}
		})
	case RDMEuclidean:
		// Distances are translation invariant; centring the columns keeps float32 precise.
		sq = centre(work, work, n, d, false).rowSq
	default:
		return nil, fmt.Errorf("rdm %q: want correlation, cosine or euclidean", kind)
	}
	out := make([]float32, n*(n-1)/2)
	// The Gram matrix in blocks of rows, so that memory stays O(block·n) besides the output.
	const block = 512
	g := make([]float32, min(block, n)*n)
	for lo := 0; lo < n; lo += block {
		hi := min(lo+block, n)
		sgemm.Gemm(false, true, hi-lo, n, d, 1, work[lo*d:hi*d], d, work, d, 0, g, n)
		par.For(hi-lo, 16, func(a, b int) {
			for r := a; r < b; r++ {
				i := lo + r
				row := g[r*n : (r+1)*n]
				dst := out[pairIndex(i, i+1, n) : pairIndex(i, i+1, n)+n-i-1]
				for j := i + 1; j < n; j++ {
					var v float64
					if sq != nil {
						v = math.Sqrt(max(0, sq[i]+sq[j]-2*float64(row[j])))
					} else {
						v = 1 - float64(row[j])
					}
					dst[j-i-1] = float32(v)
				}
			}
		})
	}
	return out, nil
}

// sortKeys packs each value's order-preserving bit pattern above its index, so that sorting the
// keys sorts the values (equal values by index). -0 is taken as +0.
func sortKeys(v []float32) []uint64 {
	keys := make([]uint64, len(v))
	for i, f := range v {
		if f == 0 {
			f = 0
		}
		u := math.Float32bits(f)
		if u&0x80000000 != 0 {
			u = ^u
		} else {
			u |= 0x80000000
		}
		keys[i] = uint64(u)<<32 | uint64(uint32(i))
	}
	radixSort(keys, 32)
	return keys
}

// keyValue is the value a sort key was made from.
func keyValue(k uint64) float32 {
	u := uint32(k >> 32)
	if u&0x80000000 != 0 {
		u &^= 0x80000000
	} else {
		u = ^u
	}
	return math.Float32frombits(u)
}

// radixSort sorts keys by their bits from lowBit (0 or 32) up, stably (keys made in index order
// stay in index order among equal values): an LSD radix sort in 16-bit passes, several times
// faster than a comparison sort for the 12.5 million pairs of 5,000 rows.
func radixSort(keys []uint64, lowBit int) {
	buf := make([]uint64, len(keys))
	src, dst := keys, buf
	var count [1 << 16]int
	for shift := lowBit; shift < 64; shift += 16 {
		clear(count[:])
		for _, k := range src {
			count[(k>>shift)&0xffff]++
		}
		pos := 0
		for d, c := range count {
			count[d] = pos
			pos += c
		}
		for _, k := range src {
			d := (k >> shift) & 0xffff
			dst[count[d]] = k
			count[d]++
		}
		src, dst = dst, src
	}
	// An even number of passes (2 or 4) leaves the result in keys.
}

// AverageRanks returns the 1-based ranks of v, tied values getting the mean of their positions
// (scipy.stats.rankdata's "average"). v must not hold NaN and must have fewer than 2³² values.
func AverageRanks(v []float32) []float64 {
	keys := sortKeys(v)
	ranks := make([]float64, len(v))
	for start := 0; start < len(keys); {
		end := start + 1
		for end < len(keys) && keys[end]>>32 == keys[start]>>32 {
			end++
		}
		r := float64(start+end+1) / 2 // mean of the 1-based positions start+1 … end
		for _, k := range keys[start:end] {
			ranks[uint32(k)] = r
		}
		start = end
	}
	return ranks
}

// denseRanks returns 0-based ranks with ties sharing a rank and no gaps.
func denseRanks(v []float32) []int32 {
	keys := sortKeys(v)
	ranks := make([]int32, len(v))
	r := int32(-1)
	for i, k := range keys {
		if i == 0 || k>>32 != keys[i-1]>>32 {
			r++
		}
		ranks[uint32(k)] = r
	}
	return ranks
}

// rsaVector is one RDM prepared for a comparison statistic.
type rsaVector struct {
	z    []float32 // spearman, pearson: centred ranks or values
	norm float64   // Σ z² (float64 over the stored values)
	rank []int32   // kendall: dense ranks
	n    int       // rows of the RDM
}

func newRSAVector(rdm []float32, n int, compare string) (*rsaVector, error) {
	r := &rsaVector{n: n}
	var vals []float64
	switch compare {
	case CompareSpearman:
		vals = AverageRanks(rdm)
	case ComparePearson:
		vals = make([]float64, len(rdm))
		for i, v := range rdm {
			vals[i] = float64(v)
		}
	case CompareKendall:
		r.rank = denseRanks(rdm)
		return r, nil
	default:
		return nil, fmt.Errorf("compare %q: want spearman, pearson or kendall", compare)
	}
	mean := 0.0
	for _, v := range vals {
		mean += v
	}
	mean /= float64(len(vals))
	r.z = make([]float32, len(vals))
	for i, v := range vals {
		r.z[i] = float32(v - mean)
		r.norm += float64(r.z[i]) * float64(r.z[i])
	}
	return r, nil
}

// permutedSum calls fn(t, u) for every pair i < j of n rows, t its index and u the index of the
// pair (π(i), π(j)) in order, spread over goroutines by rows, and returns the sum of fn's values
// (summed per row, then over rows in order, so the result does not depend on the goroutines).
func permutedSum(n int, perm []int, fn func(t, u int) float64) float64 {
	rows := make([]float64, n)
	par.For(n, 32, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := 0.0
			pi := perm[i]
			for j := i + 1; j < n; j++ {
				a, b := pi, perm[j]
				if a > b {
					a, b = b, a
				}
				s += fn(pairIndex(i, j, n), pairIndex(a, b, n))
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

// rsaStat compares two prepared RDMs, the second one's rows and columns permuted by perm (nil for
// none).
func rsaStat(a, b *rsaVector, perm []int) float64 {
	if a.rank != nil {
		rb := b.rank
		if perm != nil {
			rb = make([]int32, len(b.rank))
			permutedSum(a.n, perm, func(t, u int) float64 { rb[t] = b.rank[u]; return 0 })
		}
		return kendallTauB(a.rank, rb)
	}
	var dot float64
	if perm == nil {
		dot = dotPartitioned(a.z, b.z)
	} else {
		dot = permutedSum(a.n, perm, func(t, u int) float64 { return float64(a.z[t]) * float64(b.z[u]) })
	}
	return ratio(dot, a.norm, b.norm)
}

// dotPartitioned is Σ a·b in float64 over fixed chunks.
func dotPartitioned(a, b []float32) float64 {
	const chunk = 1 << 16
	parts := make([]float64, (len(a)+chunk-1)/chunk)
	par.For(len(parts), 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			s := 0.0
			end := min((p+1)*chunk, len(a))
			for i := p * chunk; i < end; i++ {
				s += float64(a[i]) * float64(b[i])
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

// kendallTauB is Kendall's τ_b of two rank vectors, by Knight's O(m log m) algorithm: sort by
// (a, b), count the pairs tied in a, in b and in both, and count the discordant pairs as the
// inversions of b in that order (merge sort).
func kendallTauB(ra, rb []int32) float64 {
	m := len(ra)
	keys := make([]uint64, m)
	for i := range m {
		keys[i] = uint64(uint32(ra[i]))<<32 | uint64(uint32(rb[i]))
	}
	radixSort(keys, 0)
	var tiedA, tiedBoth int64
	for start := 0; start < m; {
		end, endBoth := start+1, start+1
		for end < m && keys[end]>>32 == keys[start]>>32 {
			end++
		}
		tiedA += pairs(end - start)
		for s := start; s < end; s = endBoth {
			endBoth = s + 1
			for endBoth < end && keys[endBoth] == keys[s] {
				endBoth++
			}
			tiedBoth += pairs(endBoth - s)
		}
		start = end
	}
	seq := make([]int32, m)
	for i, k := range keys {
		seq[i] = int32(uint32(k))
	}
	discordant := countInversions(seq)
	var tiedB int64
	for start := 0; start < m; { // seq is now sorted
		end := start + 1
		for end < m && seq[end] == seq[start] {
			end++
		}
		tiedB += pairs(end - start)
		start = end
	}
	total := pairs(m)
	num := float64(total - tiedA - tiedB + tiedBoth - 2*discordant)
	return ratio(num, float64(total-tiedA), float64(total-tiedB))
}

func pairs(t int) int64 { return int64(t) * int64(t-1) / 2 }

// countInversions sorts s and returns the number of pairs i < j with s[i] > s[j] (bottom-up merge
// sort; equal values are not inversions).
func countInversions(s []int32) int64 {
	if len(s) < 2 {
		return 0
	}
	buf := make([]int32, len(s))
	var inv int64
	src, dst := s, buf
	for width := 1; width < len(s); width *= 2 {
		for lo := 0; lo < len(s); lo += 2 * width {
			mid, hi := min(lo+width, len(s)), min(lo+2*width, len(s))
			i, j, k := lo, mid, lo
			for i < mid && j < hi {
				if src[j] < src[i] {
					inv += int64(mid - i)
					dst[k] = src[j]
					j++
				} else {
					dst[k] = src[i]
					i++
				}
				k++
			}
			k += copy(dst[k:], src[i:mid])
			copy(dst[k:], src[j:hi])
		}
		src, dst = dst, src
	}
	if &src[0] != &s[0] {
		copy(s, src)
	}
	return inv
}
