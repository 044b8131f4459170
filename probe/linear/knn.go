package linear

import (
	"math"
	"slices"

	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// KNNOptions sets the kNN baseline; zero values mean DINO's k = 20 and T = 0.07.
type KNNOptions struct {
	K int `json:"k"`
	// Ks scores several k at once from one neighbour search (DINO reports 10, 20, 100, 200);
	// empty means just K. With Ks set, K is Ks[0].
	Ks          []int   `json:"ks,omitempty"`
	Temperature float64 `json:"temperature"`
}

func (o KNNOptions) withDefaults() KNNOptions {
	if len(o.Ks) > 0 {
		o.K = o.Ks[0]
	}
	if o.K <= 0 {
		o.K = 20
	}
	if len(o.Ks) == 0 {
		o.Ks = []int{o.K}
	}
	if o.Temperature <= 0 {
		o.Temperature = 0.07
	}
	return o
}

// KNNScores classifies the query rows of x ([n, d] row-major) by their neighbours among the bank
// rows: cosine similarity on L2-normalised features, the K most similar bank rows each adding
// exp(sim/T) to their class. It writes the vote totals into dst ([len(query), numClasses]).
func KNNScores(dst []float64, x []float32, d int, y []int, numClasses int, bank, query []int, opt KNNOptions) {
	opt = opt.withDefaults()
	KNNScoresMulti([][]float64{dst}, x, d, y, numClasses, bank, query, []int{opt.K}, opt.Temperature)
}

// KNNScoresMulti is KNNScores for several k from one neighbour search: dst[i] receives the votes of
// the ks[i] nearest bank rows (at most all of them: k is capped at the bank size).
func KNNScoresMulti(dst [][]float64, x []float32, d int, y []int, numClasses int, bank, query []int, ks []int, temperature float64) {
	nb := len(bank)
	bankX := make([]float32, nb*d)
	for i, r := range bank {
		normalizeRow(bankX[i*d:(i+1)*d], x[r*d:(r+1)*d])
	}
	k := min(slices.Max(ks), nb)
	const chunk = 256
	qX := make([]float32, min(chunk, len(query))*d)
	sim := make([]float32, min(chunk, len(query))*nb)
	topIdx := make([]int, k)
	topSim := make([]float32, k)
	for _, v := range dst {
		clear(v[:len(query)*numClasses])
	}
	for lo := 0; lo < len(query); lo += chunk {
		hi := min(lo+chunk, len(query))
		m := hi - lo
		for i := range m {
			r := query[lo+i]
			normalizeRow(qX[i*d:(i+1)*d], x[r*d:(r+1)*d])
		}
		sgemm.Gemm(false, true, m, nb, d, 1, qX, d, bankX, d, 0, sim, nb)
		for i := range m {
			n := topK(topIdx, topSim, sim[i*nb:(i+1)*nb])
			for v, kk := range ks {
				out := dst[v][(lo+i)*numClasses : (lo+i+1)*numClasses]
				for j := range min(n, kk) { // the kk most similar: topK sorts decreasing
					out[y[bank[topIdx[j]]]] += math.Exp(float64(topSim[j]) / temperature)
				}
			}
		}
	}
}

// normalizeRow writes src/‖src‖ into dst (zeros stay zeros). The norm is summed in float64.
func normalizeRow(dst, src []float32) {
	s := 0.0
	for _, v := range src {
		s += float64(v) * float64(v)
	}
	inv := 0.0
	if s > 0 {
		inv = 1 / math.Sqrt(s)
	}
	for j, v := range src {
		dst[j] = float32(float64(v) * inv)
	}
}

// topK keeps the len(idx) largest values of s in idx/val, sorted decreasing (ties: lower index
// first), and returns how many it found.
func topK(idx []int, val []float32, s []float32) int {
	n := 0
	for j, v := range s {
		if n == len(idx) && v <= val[n-1] {
			continue
		}
		// Insertion into the short sorted list; k is small.
		p := min(n, len(idx)-1)
		if n < len(idx) {
			n++
		}
		for p > 0 && val[p-1] < v {
			val[p], idx[p] = val[p-1], idx[p-1]
			p--
		}
		val[p], idx[p] = v, j
	}
	return n
}
