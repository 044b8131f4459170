package vecmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gridShapes: whole vectors per row (the assembly), rows of whole AVX2 vectors only (24), rows
// not a multiple of the vector width (the Go code), one row, and the 224×224 image.
var gridShapes = [][2]int{{1, 16}, {3, 32}, {7, 48}, {2, 24}, {5, 17}, {2, 5}, {4, 0}, {224, 224}}

func TestGridCombine(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(31, 32))
		for _, sh := range gridShapes {
			rows, w := sh[0], sh[1]
			n := rows * w
			s := randomValues(rng, n, 1)
			for i := range s {
				s[i] = float32(rng.Float64()) // finite scales, as LayerNorm's 1/σ
			}
			var x [4][]float32
			for k := range x {
				x[k] = make([]float32, n)
				for i := range x[k] {
					x[k][i] = float32(rng.NormFloat64())
				}
			}
			rowTerm, colTerm := make([]float32, rows), make([]float32, w)
			for i := range rowTerm {
				rowTerm[i] = float32(rng.NormFloat64() * 5)
			}
			for i := range colTerm {
				colTerm[i] = float32(rng.NormFloat64() * 5)
			}
			c := [4]float32{0.5, -1.25, 2, -0.75}
			dst := make([]float32, n)
			GridCombine(dst, s, x, rowTerm, colTerm, c)
			for u := 0; u < rows; u++ {
				for v := 0; v < w; v++ {
					p := u*w + v
					sum, mag := float64(colTerm[v])+float64(rowTerm[u]), math.Abs(float64(colTerm[v]))+math.Abs(float64(rowTerm[u]))
					for k := range x {
						sum += float64(c[k]) * float64(x[k][p])
						mag += math.Abs(float64(c[k]) * float64(x[k][p]))
					}
					want := float64(s[p]) * sum
					if tol := 6 * ulp * float64(s[p]) * mag; math.Abs(float64(dst[p])-want) > tol {
						t.Fatalf("%d×%d: dst[%d] = %g, want %g ± %.2g", rows, w, p, dst[p], want, tol)
					}
				}
			}
			// In place gives the same.
			GridCombine(s, s, x, rowTerm, colTerm, c)
			if !sameBits(s, dst) {
				t.Fatalf("%d×%d: in-place GridCombine differs", rows, w)
			}
		}
	})
}

func TestGridMarginals(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(33, 34))
		for _, sh := range gridShapes {
			rows, w := sh[0], sh[1]
			n := rows * w
			e, r := make([]float32, n), make([]float32, n)
			for i := range e {
				e[i], r[i] = float32(rng.Float64()), float32(0.5+rng.Float64())
			}
			var x [4][]float32
			for k := range x {
				x[k] = make([]float32, n)
				for i := range x[k] {
					x[k][i] = float32(rng.NormFloat64())
				}
			}
			rowSum := make([]float64, rows)
			for i := range rowSum {
				rowSum[i] = math.NaN() // overwritten
			}
			col := make([]float64, w)
			for i := range col {
				col[i] = float64(i) // added to
			}
			sums := GridMarginals(e, r, x, rowSum, col)
			var want [4]float64
			var mag [4]float64
			wantCol := make([]float64, w)
			for v := range wantCol {
				wantCol[v] = float64(v)
			}
			tolRow := float64(w/16+3) * ulp
			for u := 0; u < rows; u++ {
				var rs float64
				for v := 0; v < w; v++ {
					p := u*w + v
					wt := float64(e[p]) * float64(r[p])
					rs += wt
					wantCol[v] += wt
					for k := range want {
						want[k] += wt * float64(x[k][p])
						mag[k] += math.Abs(wt * float64(x[k][p]))
					}
				}
				if math.Abs(rowSum[u]-rs) > tolRow*rs {
					t.Fatalf("%d×%d: row %d sums to %g, want %g", rows, w, u, rowSum[u], rs)
				}
			}
			for v := range col {
				if math.Abs(col[v]-wantCol[v]) > 2*ulp*math.Abs(wantCol[v]) {
					t.Fatalf("%d×%d: column %d sums to %g, want %g", rows, w, v, col[v], wantCol[v])
				}
			}
			for k := range sums {
				if math.Abs(sums[k]-want[k]) > tolRow*mag[k] {
					t.Fatalf("%d×%d: Σp·x[%d] = %g, want %g", rows, w, k, sums[k], want[k])
				}
			}
		}
	})
}
