//go:build ignore

// fit_erf fits the GELU polynomials of generic.go (erfA, erfcF): minimax in relative error by
// Lawson-reweighted least squares on Chebyshev nodes, the float64 references being math.Erf and
// math.Erfc; coefficients are then rounded to float32 one at a time, refitting the rest.
//
//	go run fit_erf.go A 4 0.5   # erf(z)/z as a polynomial in z², |z| ≤ 0.5
//	go run fit_erf.go B 10 1    # erfc(t)·e^(t²) as a polynomial in s = 1/(1+t), 0.5 ≤ t ≤ 11
//
// It prints the max relative error of the float64 fit and of the float32 coefficients evaluated
// in float32 with FMA.
package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
)

// solveLS returns the least-squares solution of A·c ≈ b (modified Gram-Schmidt QR).
func solveLS(A [][]float64, b []float64) []float64 {
	m, n := len(A), len(A[0])
	Q := make([][]float64, n)
	for j := 0; j < n; j++ {
		Q[j] = make([]float64, m)
		for i := 0; i < m; i++ {
			Q[j][i] = A[i][j]
		}
	}
	R := make([][]float64, n)
	for j := range R {
		R[j] = make([]float64, n)
	}
	for j := 0; j < n; j++ {
		for pass := 0; pass < 2; pass++ {
			for k := 0; k < j; k++ {
				d := 0.0
				for i := 0; i < m; i++ {
					d += Q[k][i] * Q[j][i]
				}
				R[k][j] += d
				for i := 0; i < m; i++ {
					Q[j][i] -= d * Q[k][i]
				}
			}
		}
		nn := 0.0
		for i := 0; i < m; i++ {
			nn += Q[j][i] * Q[j][i]
		}
		nn = math.Sqrt(nn)
		R[j][j] = nn
		for i := 0; i < m; i++ {
			Q[j][i] /= nn
		}
	}
	y := make([]float64, n)
	for j := 0; j < n; j++ {
		for i := 0; i < m; i++ {
			y[j] += Q[j][i] * b[i]
		}
	}
	c := make([]float64, n)
	for j := n - 1; j >= 0; j-- {
		s := y[j]
		for k := j + 1; k < n; k++ {
			s -= R[j][k] * c[k]
		}
		c[j] = s / R[j][j]
	}
	return c
}

type problem struct {
	u []float64 // basis variable at node
	f []float64 // target
	w []float64 // error weight
}

func horner32(c []float32, u float32) float32 {
	p := c[len(c)-1]
	for k := len(c) - 2; k >= 0; k-- {
		p = float32(math.FMA(float64(p), float64(u), float64(c[k])))
	}
	return p
}

func fit(pr problem, deg int, fixed []float32) []float64 {
	m := len(pr.u)
	wt := make([]float64, m)
	for i := range wt {
		wt[i] = 1
	}
	nf := len(fixed)
	var c []float64
	for it := 0; it < 200; it++ {
		A := make([][]float64, m)
		b := make([]float64, m)
		for i := 0; i < m; i++ {
			A[i] = make([]float64, deg+1-nf)
			s := math.Sqrt(wt[i]) * pr.w[i]
			pw := 1.0
			r := pr.f[i]
			for k := 0; k <= deg; k++ {
				if k < nf {
					r -= float64(fixed[k]) * pw
				} else {
					A[i][k-nf] = pw * s
				}
				pw *= pr.u[i]
			}
			b[i] = r * s
		}
		c = solveLS(A, b)
		// update weights
		tot := 0.0
		for i := 0; i < m; i++ {
			p := 0.0
			for k := deg; k >= 0; k-- {
				ck := 0.0
				if k < nf {
					ck = float64(fixed[k])
				} else {
					ck = c[k-nf]
				}
				p = p*pr.u[i] + ck
			}
			e := math.Abs((p - pr.f[i]) * pr.w[i])
			wt[i] *= e
			tot += wt[i]
		}
		for i := range wt {
			wt[i] = wt[i] / tot * float64(m)
			if wt[i] < 1e-300 {
				wt[i] = 1e-300
			}
		}
	}
	full := make([]float64, deg+1)
	for k := range full {
		if k < nf {
			full[k] = float64(fixed[k])
		} else {
			full[k] = c[k-nf]
		}
	}
	return full
}

func fit32(pr problem, deg int) []float32 {
	var fixed []float32
	for len(fixed) <= deg {
		c := fit(pr, deg, fixed)
		fixed = append(fixed, float32(c[len(fixed)]))
	}
	return fixed
}

func main() {
	which := os.Args[1]
	deg, _ := strconv.Atoi(os.Args[2])
	p, _ := strconv.ParseFloat(os.Args[3], 64)
	N := 3000
	var pr problem
	var lo, hi float64
	switch which {
	case "A": // erf(z)/z in z², z in [0, hi]
		lo, hi = 0, p
	case "B":
		lo, hi = 0.5, 11
	}
	for i := 0; i < N; i++ {
		x := lo + (hi-lo)*(1-math.Cos(math.Pi*float64(i)/float64(N-1)))/2
		switch which {
		case "A":
			if x == 0 {
				x = 1e-6
			}
			pr.u = append(pr.u, x*x)
			pr.f = append(pr.f, math.Erf(x)/x)
			pr.w = append(pr.w, 1)
		case "B":
			s := 1 / (1 + p*x)
			f := math.Erfc(x) * math.Exp(x*x)
			pr.u = append(pr.u, s)
			pr.f = append(pr.f, f)
			pr.w = append(pr.w, 1/f)
		}
	}
	c := fit(pr, deg, nil)
	c32 := fit32(pr, deg)
	worst, worst32 := 0.0, 0.0
	for i := range pr.u {
		p := 0.0
		for k := deg; k >= 0; k-- {
			p = p*pr.u[i] + c[k]
		}
		worst = max(worst, math.Abs((p-pr.f[i])*pr.w[i]))
		p32 := float64(horner32(c32, float32(pr.u[i])))
		worst32 = max(worst32, math.Abs((p32-pr.f[i])*pr.w[i]))
	}
	fmt.Printf("%s deg %d p %g: max rel err %.3g (float32 coefs+eval %.3g)\n", which, deg, p, worst, worst32)
	for _, v := range c32 {
		fmt.Printf("\t%.9g,\n", v)
	}
}
