package linear

// Kernels for the skinny products of the probe (K ≪ D). gonum's blas64.Gemm runs the
// [n,d]·[d,K] shapes at ~2.7 GFLOPS on the 2-core machine; these work on blocks of 4 rows, with
// AVX2+FMA assembly for the inner loops when the CPU has it and register-blocked Go otherwise,
// and the objective fuses them per chunk of rows so each row is read from memory once per
// evaluation. Neither allocates.

// rowsTimesWT writes z[i, c] = Σ_j x[i, j]·w[c, j] for rows of x ([rows, d]) and w ([k, d]).
func rowsTimesWT(z, x, w []float64, rows, d, k int) {
	i := 0
	for ; i+4 <= rows; i += 4 {
		x0 := x[i*d : i*d+d]
		x1 := x[(i+1)*d : (i+1)*d+d]
		x2 := x[(i+2)*d : (i+2)*d+d]
		x3 := x[(i+3)*d : (i+3)*d+d]
		for c := 0; c < k; c++ {
			s := dot4(x0, x1, x2, x3, w[c*d:c*d+d])
			z[i*k+c] = s[0]
			z[(i+1)*k+c] = s[1]
			z[(i+2)*k+c] = s[2]
			z[(i+3)*k+c] = s[3]
		}
	}
	for ; i < rows; i++ {
		xi := x[i*d : i*d+d]
		for c := 0; c < k; c++ {
			wc := w[c*d : c*d+d]
			xi := xi[:len(wc)]
			var s float64
			for j, wv := range wc {
				s += xi[j] * wv
			}
			z[i*k+c] = s
		}
	}
}

// dot4 returns the dot products of four rows with w.
func dot4(x0, x1, x2, x3, w []float64) [4]float64 {
	var s [4]float64
	start := 0
	if useFMA && len(w) >= 8 {
		start = len(w) &^ 7
		dot4FMA(&x0[0], &x1[0], &x2[0], &x3[0], &w[0], start, &s)
	}
	w = w[start:]
	x0, x1, x2, x3 = x0[start:start+len(w)], x1[start:start+len(w)], x2[start:start+len(w)], x3[start:start+len(w)]
	s0, s1, s2, s3 := s[0], s[1], s[2], s[3]
	for j, wv := range w {
		s0 += x0[j] * wv
		s1 += x1[j] * wv
		s2 += x2[j] * wv
		s3 += x3[j] * wv
	}
	return [4]float64{s0, s1, s2, s3}
}

// addGTX accumulates gw[c, j] += Σ_i g[i, c]·x[i, j] for rows of g ([rows, k]) and x ([rows, d]).
func addGTX(gw, g, x []float64, rows, d, k int) {
	i := 0
	for ; i+4 <= rows; i += 4 {
		x0 := x[i*d : i*d+d]
		x1 := x[(i+1)*d : (i+1)*d+d]
		x2 := x[(i+2)*d : (i+2)*d+d]
		x3 := x[(i+3)*d : (i+3)*d+d]
		for c := 0; c < k; c++ {
			a := [4]float64{g[i*k+c], g[(i+1)*k+c], g[(i+2)*k+c], g[(i+3)*k+c]}
			axpy4(gw[c*d:c*d+d], &a, x0, x1, x2, x3)
		}
	}
	for ; i < rows; i++ {
		xi := x[i*d : i*d+d]
		for c := 0; c < k; c++ {
			a := g[i*k+c]
			out := gw[c*d : c*d+d]
			xi := xi[:len(out)]
			for j := range out {
				out[j] += a * xi[j]
			}
		}
	}
}

// axpy4 adds a[0]·x0 + a[1]·x1 + a[2]·x2 + a[3]·x3 to out.
func axpy4(out []float64, a *[4]float64, x0, x1, x2, x3 []float64) {
	start := 0
	if useFMA && len(out) >= 8 {
		start = len(out) &^ 7
		axpy4FMA(&out[0], a, &x0[0], &x1[0], &x2[0], &x3[0], start)
	}
	out = out[start:]
	x0, x1, x2, x3 = x0[start:start+len(out)], x1[start:start+len(out)], x2[start:start+len(out)], x3[start:start+len(out)]
	a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
	for j := range out {
		out[j] += a0*x0[j] + a1*x1[j] + a2*x2[j] + a3*x3[j]
	}
}
