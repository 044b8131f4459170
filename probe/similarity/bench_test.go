package similarity

import (
	"fmt"
	"testing"
)

// benchColumns returns cols representations [n, d] of uniform noise shared in part between
// neighbouring columns (like adjacent layers), filled with a cheap generator.
func benchColumns(n, d, cols int) []Representation {
	state := uint64(0x9e3779b97f4a7c15)
	reps := make([]Representation, cols)
	for c := range reps {
		x := make([]float32, n*d)
		for i := range x {
			state ^= state << 13 // xorshift64: the benchmark needs 512M values quickly
			state ^= state >> 7
			state ^= state << 17
			x[i] = float32(state>>40)/(1<<24) - 0.5
			if c > 0 && i%2 == 0 {
				x[i] += reps[c-1].Data[i]
			}
		}
		reps[c] = Representation{Name: fmt.Sprintf("block%d_mean", c+1), Data: x, Dim: d}
	}
	return reps
}

// BenchmarkCKAAllPairs is the goal: 50,000 rows × 1,024 dims, 10 columns, all 45 pairs
// (plus the 10 self-products), in at most 60 s on a 2-core machine:
//
//	go test -run X -bench 'CKAAllPairs/50000' -benchtime 1x -timeout 30m ./probe/similarity/
//
// It needs 2 GiB for the features (the case's whole time, centring included, is measured). The
// smaller cases are for quick checks.
func BenchmarkCKAAllPairs(b *testing.B) {
	for _, s := range []struct{ n, d, cols int }{{5000, 256, 4}, {50000, 1024, 2}, {50000, 1024, 10}} {
		for _, m := range []Method{CKA, DebiasedCKA} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", s.n, s.d, s.cols, m), func(b *testing.B) {
				// Fresh data for each case (b.Loop starts the clock after this). Compare works in
				// place, so a second iteration would see centred, transposed data: the same work.
				reps := benchColumns(s.n, s.d, s.cols)
				for b.Loop() {
					if _, err := Compare(reps, nil, Options{Method: m, InPlace: true}); err != nil {
						b.Fatal(err)
					}
				}
				// Flops of the products: the cross pairs in full, the self-products in their
				// upper blocks (10/16 of the full product for d ≥ 512, see selfProduct).
				self := 1.0
				if s.d >= 512 {
					self = 10.0 / 16
				}
				products := float64(s.cols*(s.cols-1)/2) + self*float64(s.cols)
				b.ReportMetric(products*2*float64(s.n)*float64(s.d)*float64(s.d)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}

// RSA and RBF CKA at the default --max-rows (5,000 rows: 12.5 million pairs per RDM), 4 columns
// of 1,024 dimensions:
//
//	go test -run X -bench 'Gram5000' -benchtime 1x ./probe/similarity/
func BenchmarkGram5000(b *testing.B) {
	for _, opt := range []Options{{Method: RSA}, {Method: RSA, Compare: CompareKendall}, {Method: RBFCKA}} {
		name := string(opt.Method)
		if opt.Compare != "" {
			name += "-" + opt.Compare
		}
		b.Run(name, func(b *testing.B) {
			reps := benchColumns(5000, 1024, 4)
			opt.InPlace = true
			for b.Loop() {
				if _, err := Compare(reps, nil, opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMutualKNN is the scale goal for the kNN methods: mutual-knn between two
// columns of 50,000 rows × 1,024 dims, no n×n matrix, in at most 60 s on a 2-core machine:
//
//	go test -run X -bench 'MutualKNN/50000' -benchtime 1x -timeout 30m ./probe/similarity/
//
// The whole Compare (both kNN graphs, their float32 screening and float64 re-ranking, and the
// overlap) is timed; the features take 400 MB, the kNN search about 600 MB more per column while
// it runs.
func BenchmarkMutualKNN(b *testing.B) {
	for _, s := range []struct{ n, d int }{{5000, 256}, {8000, 1024}, {20000, 1024}, {50000, 1024}} {
		b.Run(fmt.Sprintf("%dx%d", s.n, s.d), func(b *testing.B) {
			reps := benchColumns(s.n, s.d, 2)
			for b.Loop() {
				res, err := Compare(reps[:1], reps[1:], Options{Method: MutualKNN})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.Matrix[0][0], "score")
				b.ReportMetric(float64(res.KNNRecomputed[0]+res.KNNRecomputed[1]), "recomputed-rows")
			}
		})
	}
}

// BenchmarkNewMethods times the other new measures between two columns of 50,000 rows × 1,024:
// svcca and procrustes work in feature space (d×d products, a 1,024² SVD or eigendecomposition),
// cknna pays for the same kNN graphs as mutual-knn.
//
//	go test -run X -bench 'NewMethods' -benchtime 1x -timeout 60m ./probe/similarity/
func BenchmarkNewMethods(b *testing.B) {
	reps := benchColumns(50000, 1024, 2)
	for _, m := range []Method{SVCCA, Procrustes, AngularCKA, CKNNA} {
		b.Run(string(m), func(b *testing.B) {
			for b.Loop() {
				res, err := Compare(reps[:1], reps[1:], Options{Method: m})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.Matrix[0][0], "value")
			}
		})
	}
}
