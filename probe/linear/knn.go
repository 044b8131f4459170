package linear

import (
	"math"

	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// KNNOptions sets the kNN baseline; zero values mean DINO's k = 20 and T = 0.07.
type KNNOptions struct {
	K           int     `json:"k"`
	Temperature float64 `json:"temperature"`
}

func (o KNNOptions) withDefaults() KNNOptions {
	if o.K <= 0 {
		o.K = 20
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
	nb := len(bank)
	bankX := make([]float32, nb*d)
	for i, r := range bank {
		normalizeRow(bankX[i*d:(i+1)*d], x[r*d:(r+1)*d])
	}
	k := min(opt.K, nb)
	const chunk = 256
	qX := make([]float32, min(chunk, len(query))*d)
	sim := make([]float32, min(chunk, len(query))*nb)
	topIdx := make([]int, k)
	topSim := make([]float32, k)
	clear(dst[:len(query)*numClasses])
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
			out := dst[(lo+i)*numClasses : (lo+i+1)*numClasses]
			for j := range n {
				out[y[bank[topIdx[j]]]] += math.Exp(float64(topSim[j]) / opt.Temperature)
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
