package similarity

import (
	"cmp"
	"math"
	"slices"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// knnGraph holds each row's K nearest other rows by cosine similarity x̂ᵢ·x̂ⱼ, computed in float64:
// row i's neighbours are idx[i·k : (i+1)·k], by decreasing similarity, exact ties by increasing
// row, and sim holds their similarities.
type knnGraph struct {
	n, k int
	idx  []int32
	sim  []float64
	// recomputed counts the rows whose float32 screening left the K-th neighbour ambiguous and
	// that were therefore searched in full in float64.
	recomputed int
}

// Blocking of the screening product: a goroutine multiplies knnRowBlock rows by knnColBlock
// rows at a time (a 512×2048 float32 tile, 4 MiB) and scans the tile at once.
const (
	knnRowBlock = 512
	knnColBlock = 2048
	knnExtra    = 16 // candidates kept beyond K per row, for the float64 re-ranking
)

// unitRows returns the rows of r divided by max(‖xᵢ‖₂, 1e-12), in float64 (from r.Exact when
// present, else from r.Data).
func unitRows(r Representation) []float64 {
	n, d := r.Rows(), r.Dim
	out := make([]float64, n*d)
	par.For(n, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := out[i*d : (i+1)*d]
			if r.Exact != nil {
				copy(row, r.Exact[i*d:(i+1)*d])
			} else {
				for f, v := range r.Data[i*d : (i+1)*d] {
					row[f] = float64(v)
				}
			}
			s := 0.0
			for _, v := range row {
				s += v * v
			}
			nrm := math.Max(math.Sqrt(s), 1e-12)
			for f := range row {
				row[f] /= nrm
			}
		}
	})
	return out
}

// candidate is a screened neighbour: its float32 similarity and its row.
type candidate struct {
	v float32
	j int32
}

// candHeap is a min-heap on v of at most cap entries: the best candidates of one row so far.
type candHeap []candidate

func (h candHeap) siftDown(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].v < h[l].v {
			m = r
		}
		if h[m].v >= h[i].v {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (h candHeap) siftUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].v <= h[i].v {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// buildKNN finds the k nearest neighbours of every row of r (1 ≤ k ≤ n−1), never forming the
// n×n similarity matrix. The rows are screened in float32 tiles (sgemm), keeping each row's
// k+knnExtra best candidates, and re-ranked in float64. Float32 products of unit vectors are
// within ε = 1.05·(d+2)·2⁻²⁴ of the float64 value (the standard bound γ_d·Σ|x̂_f||ŷ_f| ≤ γ_d, plus
// the rounding of x̂ to float32), so every true neighbour has a screened value within 2ε of the
// k-th screened value; a row whose kept candidates do not reach 2ε below it is searched in full
// in float64. The result is therefore the exact float64 ranking.
func buildKNN(r Representation, k int) *knnGraph {
	n, d := r.Rows(), r.Dim
	u64 := unitRows(r)
	u32 := make([]float32, n*d)
	for i, v := range u64 {
		u32[i] = float32(v)
	}
	keep := min(k+knnExtra, n-1)
	eps := 1.05 * float64(d+2) * 0x1p-24
	g := &knnGraph{n: n, k: k, idx: make([]int32, n*k), sim: make([]float64, n*k)}

	blocks := (n + knnRowBlock - 1) / knnRowBlock
	recomputed := make([]int, blocks)
	par.For(blocks, 1, func(blo, bhi int) {
		tile := make([]float32, knnRowBlock*knnColBlock)
		heaps := make([]candHeap, knnRowBlock)
		store := make([]candidate, knnRowBlock*keep)
		var work []scored
		for b := blo; b < bhi; b++ {
			r0, r1 := b*knnRowBlock, min((b+1)*knnRowBlock, n)
			rows := r1 - r0
			for i := range rows {
				heaps[i] = store[i*keep : i*keep : (i+1)*keep]
			}
			for c0 := 0; c0 < n; c0 += knnColBlock {
				c1 := min(c0+knnColBlock, n)
				cols := c1 - c0
				sgemm.GemmSerial(false, true, rows, cols, d, 1, u32[r0*d:r1*d], d, u32[c0*d:c1*d], d, 0, tile, cols)
				for i := range rows {
					scanTile(&heaps[i], tile[i*cols:(i+1)*cols], c0, r0+i, keep)
				}
			}
			for i := range rows {
				var exact bool
				work, exact = rerank(work, heaps[i], u64, n, d, r0+i, k, keep, eps)
				if exact {
					recomputed[b]++
				}
				for t, s := range work[:k] {
					g.idx[(r0+i)*k+t] = int32(s.j)
					g.sim[(r0+i)*k+t] = s.v
				}
			}
		}
	})
	for _, c := range recomputed {
		g.recomputed += c
	}
	return g
}

// scanTile offers one tile row (similarities of row self to rows c0, c0+1, …) to the row's heap.
func scanTile(h *candHeap, vals []float32, c0, self, keep int) {
	hp := *h
	thr := float32(math.Inf(-1))
	if len(hp) == keep {
		thr = hp[0].v
	}
	for c, v := range vals {
		if v <= thr {
			continue
		}
		j := c0 + c
		if j == self {
			continue
		}
		if len(hp) < keep {
			hp = append(hp, candidate{v, int32(j)})
			hp.siftUp(len(hp) - 1)
			if len(hp) == keep {
				thr = hp[0].v
			}
			continue
		}
		hp[0] = candidate{v, int32(j)}
		hp.siftDown(0)
		thr = hp[0].v
	}
	*h = hp
}

// scored is a neighbour with its float64 similarity.
type scored struct {
	v float64
	j int
}

// byRank orders neighbours by decreasing similarity, exact ties by increasing row.
func byRank(a, b scored) int {
	if c := cmp.Compare(b.v, a.v); c != 0 {
		return c
	}
	return cmp.Compare(a.j, b.j)
}

func dot64(a, b []float64) float64 {
	s := 0.0
	for f, v := range a {
		s += v * b[f]
	}
	return s
}

// rerank returns row i's k nearest neighbours in float64 (in work[:k]) from its screened
// candidates, or from all rows when the candidates cannot decide (then exact is true).
func rerank(work []scored, h candHeap, u []float64, n, d, i, k, keep int, eps float64) (out []scored, exact bool) {
	work = work[:0]
	xi := u[i*d : (i+1)*d]
	vals := make([]float32, 0, len(h))
	for _, c := range h {
		vals = append(vals, c.v)
	}
	slices.Sort(vals)
	kth := float64(vals[len(vals)-k]) // the k-th largest screened value
	lowest := float64(vals[0])
	if len(h) == n-1 || lowest < kth-2*eps {
		for _, c := range h {
			if float64(c.v) >= kth-2*eps {
				work = append(work, scored{dot64(xi, u[int(c.j)*d:(int(c.j)+1)*d]), int(c.j)})
			}
		}
	} else {
		exact = true
		for j := range n {
			if j != i {
				work = append(work, scored{dot64(xi, u[j*d:(j+1)*d]), j})
			}
		}
	}
	slices.SortFunc(work, byRank)
	return work, exact
}

// mutualKNN is (1/n) Σᵢ |N_X(i) ∩ N_Y(i)| / K for two graphs over the same rows with the same K.
func mutualKNN(x, y *knnGraph) float64 {
	n, k := x.n, x.k
	counts := make([]int, n)
	par.For(n, 1024, func(lo, hi int) {
		a, b := make([]int32, k), make([]int32, k)
		for i := lo; i < hi; i++ {
			copy(a, x.idx[i*k:(i+1)*k])
			copy(b, y.idx[i*k:(i+1)*k])
			slices.Sort(a)
			slices.Sort(b)
			counts[i] = intersectSorted(a, b)
		}
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	return float64(total) / float64(n) / float64(k)
}

func intersectSorted(a, b []int32) int {
	c, p, q := 0, 0, 0
	for p < len(a) && q < len(b) {
		switch {
		case a[p] < b[q]:
			p++
		case a[p] > b[q]:
			q++
		default:
			c++
			p++
			q++
		}
	}
	return c
}

// sparseKernel is a kernel matrix masked to at most K entries per row (diagonal excluded): row i
// holds the columns col[off[i]:off[i+1]] (increasing) with values a and b of the two kernels.
type sparseKernel struct {
	n      int
	off    []int
	col    []int32
	a, b   []float64
	colSum []float64 // 1ᵀA: column sums of a
	rowB   []float64 // B1: row sums of b
}

// maskedKernels returns M⊙K and M⊙L with M = M_X ⊙ M_Y, the intersection of the two graphs' row
// masks, K and L the graphs' similarities. With y == x, M = M_X and both values are K.
func maskedKernels(x, y *knnGraph) *sparseKernel {
	n, k := x.n, x.k
	s := &sparseKernel{n: n, off: make([]int, n+1)}
	type ent struct {
		j    int32
		a, b float64
	}
	rows := make([][]ent, n)
	par.For(n, 1024, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var out []ent
			for t := range k {
				j := x.idx[i*k+t]
				for u := range k {
					if y.idx[i*k+u] == j {
						out = append(out, ent{j, x.sim[i*k+t], y.sim[i*k+u]})
						break
					}
				}
			}
			slices.SortFunc(out, func(p, q ent) int { return cmp.Compare(p.j, q.j) })
			rows[i] = out
		}
	})
	for i, r := range rows {
		s.off[i+1] = s.off[i] + len(r)
	}
	m := s.off[n]
	s.col, s.a, s.b = make([]int32, m), make([]float64, m), make([]float64, m)
	s.colSum, s.rowB = make([]float64, n), make([]float64, n)
	for i, r := range rows {
		for t, e := range r {
			p := s.off[i] + t
			s.col[p], s.a[p], s.b[p] = e.j, e.a, e.b
			s.colSum[e.j] += e.a
			s.rowB[i] += e.b
		}
	}
	return s
}

// at returns B[i][j] (0 outside the mask).
func (s *sparseKernel) bAt(i int, j int32) float64 {
	cols := s.col[s.off[i]:s.off[i+1]]
	if p, ok := slices.BinarySearch(cols, j); ok {
		return s.b[s.off[i]+p]
	}
	return 0
}

// hsic is the unbiased HSIC of Song et al. of the masked kernels A and B, as platonic-rep's
// hsic_unbiased computes it (its first term pairs Aᵢⱼ with Bⱼᵢ; the masks are not symmetric):
// [Σ ÃᵢⱼB̃ⱼᵢ + (1ᵀÃ1)(1ᵀB̃1)/((n−1)(n−2)) − 2·1ᵀÃB̃1/(n−2)] / (n(n−3)). The diagonals are
// already zero (the masks exclude each row itself).
func (s *sparseKernel) hsic() float64 {
	n := s.n
	trace, sumA, sumB, cross := 0.0, 0.0, 0.0, 0.0
	for i := range n {
		for p := s.off[i]; p < s.off[i+1]; p++ {
			sumA += s.a[p]
			sumB += s.b[p]
			trace += s.a[p] * s.bAt(int(s.col[p]), int32(i))
		}
	}
	for j := range n {
		cross += s.colSum[j] * s.rowB[j] // 1ᵀÃB̃1 = (Ãᵀ1)·(B̃1)
	}
	fn := float64(n)
	return (trace + sumA*sumB/((fn-1)*(fn-2)) - 2*cross/(fn-2)) / (fn * (fn - 3))
}

// cknna is platonic-rep's CKNNA (topk = K, unbiased): s(K,L)/(√(s(K,K)·s(L,L)) + 1e-6), NaN when
// s(K,K)·s(L,L) < 0, from the self-statistics sxx, syy.
func cknnaScore(sxy, sxx, syy float64) float64 {
	if sxx*syy < 0 {
		return math.NaN()
	}
	return sxy / (math.Sqrt(sxx*syy) + 1e-6)
}
