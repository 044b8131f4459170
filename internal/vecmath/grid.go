package vecmath

// Kernels over a grid of rows×w values stored row after row (an image's pixels), for the Perceiver
// encoder's attention written as sums over the rows and columns of the grid (see package core).

// GridCombine writes dst[u·w+v] = s[u·w+v]·(colTerm[v] + rowTerm[u] + Σ_k c[k]·x[k][u·w+v]) for
// the rows = len(rowTerm) rows of w = len(colTerm) values; dst, s and every x[k] hold rows·w
// values, and dst may be s. The sum runs in that order, in float32 (the assembly fuses each
// product into its addition).
func GridCombine(dst, s []float32, x [4][]float32, rowTerm, colTerm []float32, c [4]float32) {
	n := len(rowTerm) * len(colTerm)
	if len(dst) != n || len(s) != n || len(x[0]) != n || len(x[1]) != n || len(x[2]) != n || len(x[3]) != n {
		lengthPanic("GridCombine", "dst, s, x[0…3], rows·w", len(dst), len(s), len(x[0]), len(x[1]), len(x[2]), len(x[3]), n)
	}
	if n == 0 || impl.gridCombine(dst, s, &x, rowTerm, colTerm, &c) {
		return
	}
	gridCombineGo(dst, s, &x, rowTerm, colTerm, &c)
}

// GridMarginals takes the weights p = e·r of a grid of rows = len(rowSum) rows of w = len(col)
// values: it sets rowSum[u] to the sum of row u's weights, adds each column's sum into col[v], and
// returns Σ p·x[k] for each k. e, r and every x[k] hold rows·w values. The row, column and total
// sums are float64; within one row the assembly sums in float32 lanes of w/16 terms.
func GridMarginals(e, r []float32, x [4][]float32, rowSum, col []float64) [4]float64 {
	n := len(rowSum) * len(col)
	if len(e) != n || len(r) != n || len(x[0]) != n || len(x[1]) != n || len(x[2]) != n || len(x[3]) != n {
		lengthPanic("GridMarginals", "e, r, x[0…3], rows·w", len(e), len(r), len(x[0]), len(x[1]), len(x[2]), len(x[3]), n)
	}
	var sums [4]float64
	if n == 0 {
		clear(rowSum)
		return sums
	}
	var lanes [32]float64
	if impl.gridMarginals(e, r, &x, rowSum, col, &lanes) {
		for k := range sums {
			l := lanes[8*k : 8*k+8]
			sums[k] = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
		}
		return sums
	}
	return gridMarginalsGo(e, r, &x, rowSum, col)
}

func gridCombineGo(dst, s []float32, x *[4][]float32, rowTerm, colTerm []float32, c *[4]float32) {
	w := len(colTerm)
	for u, ru := range rowTerm {
		for v, cv := range colTerm {
			p := u*w + v
			t := cv + ru
			t += c[0] * x[0][p]
			t += c[1] * x[1][p]
			t += c[2] * x[2][p]
			t += c[3] * x[3][p]
			dst[p] = s[p] * t
		}
	}
}

func gridMarginalsGo(e, r []float32, x *[4][]float32, rowSum, col []float64) [4]float64 {
	var sums [4]float64
	w := len(col)
	for u := range rowSum {
		var rs float64
		for v := range col {
			p := u*w + v
			wt := float64(e[p] * r[p])
			rs += wt
			col[v] += wt
			for k := range sums {
				sums[k] += wt * float64(x[k][p])
			}
		}
		rowSum[u] = rs
	}
	return sums
}
