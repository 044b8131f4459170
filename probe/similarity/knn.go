package similarity

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

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

// knnBlock is the side of the screening tiles: the rows are cut into blocks of knnBlock, and
// each pair of blocks (I ≤ J) is multiplied once (a 1024×1024 float32 tile, 4 MiB) and scanned
// both ways, so the product costs n²d/2 multiply-adds.
const (
	knnBlock = 1024
	knnExtra = 16 // candidates kept beyond K per row, for the float64 re-ranking
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

// screen holds every row's candidate heap and its admission threshold (the heap's minimum once
// full, −∞ before).
type screen struct {
	keep  int
	heaps []candHeap
	thr   []float32
}

// offer adds row j with screened value v to row i's candidates if it beats the threshold.
func (s *screen) offer(i, j int, v float32) {
	h := s.heaps[i]
	if len(h) < s.keep {
		h = append(h, candidate{v, int32(j)})
		h.siftUp(len(h) - 1)
		s.heaps[i] = h
		if len(h) == s.keep {
			s.thr[i] = h[0].v
		}
		return
	}
	h[0] = candidate{v, int32(j)}
	h.siftDown(0)
	s.thr[i] = h[0].v
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
	u32 := make([]float32, n*d)  // [n, d]
	u32t := make([]float32, d*n) // [d, n]: the right operand, packed without transposing
	par.For(n, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for f, v := range u64[i*d : (i+1)*d] {
				u32[i*d+f] = float32(v)
			}
		}
	})
	par.For(d, 8, func(lo, hi int) {
		for f := lo; f < hi; f++ {
			for i := range n {
				u32t[f*n+i] = u32[i*d+f]
			}
		}
	})
	keep := min(k+knnExtra, n-1)
	eps := 1.05 * float64(d+2) * 0x1p-24
	sc := &screen{keep: keep, heaps: make([]candHeap, n), thr: make([]float32, n)}
	store := make([]candidate, n*keep)
	for i := range n {
		sc.heaps[i] = store[i*keep : i*keep : (i+1)*keep]
		sc.thr[i] = float32(math.Inf(-1))
	}

	// Tiles (I, J), I ≤ J, in order of the offset J − I so that consecutive tiles touch
	// different blocks; a tile locks its two blocks (the lower first).
	blocks := (n + knnBlock - 1) / knnBlock
	type pair struct{ i, j int }
	var tasks []pair
	for off := range blocks {
		for i := 0; i+off < blocks; i++ {
			tasks = append(tasks, pair{i, i + off})
		}
	}
	locks := make([]sync.Mutex, blocks)
	var next atomic.Int64
	workers := min(runtime.GOMAXPROCS(0), len(tasks))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tile := make([]float32, knnBlock*knnBlock)
			for {
				t := int(next.Add(1)) - 1
				if t >= len(tasks) {
					return
				}
				bi, bj := tasks[t].i, tasks[t].j
				r0, r1 := bi*knnBlock, min((bi+1)*knnBlock, n)
				c0, c1 := bj*knnBlock, min((bj+1)*knnBlock, n)
				rows, cols := r1-r0, c1-c0
				sgemm.GemmSerial(false, false, rows, cols, d, 1, u32[r0*d:r1*d], d, u32t[c0:], n, 0, tile, cols)
				locks[bi].Lock()
				if bj != bi {
					locks[bj].Lock()
				}
				scanTile(sc, tile, r0, rows, c0, cols, bi == bj)
				if bj != bi {
					locks[bj].Unlock()
				}
				locks[bi].Unlock()
			}
		}()
	}
	wg.Wait()
	u32, u32t = nil, nil

	g := &knnGraph{n: n, k: k, idx: make([]int32, n*k), sim: make([]float64, n*k)}
	recomputed := make([]int, n)
	par.For(n, 256, func(lo, hi int) {
		var work []scored
		var vals []float32
		for i := lo; i < hi; i++ {
			var exact bool
			work, vals, exact = rerank(work, vals, sc.heaps[i], u64, n, d, i, k, eps)
			if exact {
				recomputed[i] = 1
			}
			for t, s := range work[:k] {
				g.idx[i*k+t] = int32(s.j)
				g.sim[i*k+t] = s.v
			}
		}
	})
	for _, c := range recomputed {
		g.recomputed += c
	}
	return g
}

// scanTile offers the tile of similarities between rows r0… (tile rows) and rows c0… (tile
// columns) to both sides' candidates: each tile row to its own row, and, off the diagonal
// blocks, each tile column to its row too (the product is symmetric). A row is never its own
// candidate.
func scanTile(sc *screen, tile []float32, r0, rows, c0, cols int, diagonal bool) {
	colThr := sc.thr[c0 : c0+cols]
	for a := range rows {
		i := r0 + a
		vals := tile[a*cols : (a+1)*cols]
		thr := sc.thr[i]
		for c, v := range vals {
			if v > thr {
				if j := c0 + c; j != i {
					sc.offer(i, j, v)
					thr = sc.thr[i]
				}
			}
			if !diagonal && v > colThr[c] {
				sc.offer(c0+c, i, v)
			}
		}
	}
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
// candidates, or from all rows when the candidates cannot decide (then exact is true). vals is
// scratch.
func rerank(work []scored, vals []float32, h candHeap, u []float64, n, d, i, k int, eps float64) (out []scored, scratch []float32, exact bool) {
	work, vals = work[:0], vals[:0]
	xi := u[i*d : (i+1)*d]
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
	return work, vals, exact
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
