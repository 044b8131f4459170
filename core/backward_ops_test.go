package core

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Each op's backward against central finite differences of a float64 forward written here, apart
// from the package's float32 kernels: for a random cotangent r, ∂(Σ r·F(x))/∂x_i ≈
// (Σ r·F(x + h·e_i) − Σ r·F(x − h·e_i))/2h with h = 1e-6, whose error (~h² and 1e-16/h) is far
// below the float32 backward's rounding. Tolerance: max |ours − fd| ≤ 1e-4·max |fd|, the bar the
// issue sets for the whole pass.
const fdTol = 1e-4

func randVec(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * rng.NormFloat64())
	}
	return v
}

func f64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// finiteDiff returns ∂(Σ r·F(x))/∂x by central differences in float64.
func finiteDiff(x []float64, r []float32, F func([]float64) []float64) []float64 {
	const h = 1e-6
	g := make([]float64, len(x))
	dot := func() float64 {
		var s float64
		for i, v := range F(x) {
			s += float64(r[i]) * v
		}
		return s
	}
	for i := range x {
		x0 := x[i]
		x[i] = x0 + h
		up := dot()
		x[i] = x0 - h
		down := dot()
		x[i] = x0
		g[i] = (up - down) / (2 * h)
	}
	return g
}

func checkGrad(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-want[i]))
		m = max(m, math.Abs(want[i]))
	}
	if m == 0 || !(d/m <= fdTol) {
		t.Errorf("%s: max |ours − finite difference| = %.3g of max %.3g (relative %.3g > %g)", what, d, m, d/m, fdTol)
	} else {
		t.Logf("%-22s relative error %.2g", what, d/m)
	}
}

func randLinear(rng *rand.Rand, in, out int) *Linear {
	l := newLinear(in, out)
	l.Weight.Data = randVec(rng, in*out, 1/math.Sqrt(float64(in)))
	l.Bias.Data = randVec(rng, out, 0.1)
	return &l
}

func linear64(x []float64, rows int, l *Linear) []float64 {
	in, out := l.In(), l.Out()
	y := make([]float64, rows*out)
	for r := 0; r < rows; r++ {
		for o := 0; o < out; o++ {
			s := float64(l.Bias.Data[o])
			for i := 0; i < in; i++ {
				s += x[r*in+i] * float64(l.Weight.Data[o*in+i])
			}
			y[r*out+o] = s
		}
	}
	return y
}

func layerNorm64(x []float64, rows int, ln *LayerNorm) []float64 {
	n := len(ln.Weight.Data)
	y := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		row := x[r*n : (r+1)*n]
		var mean, v float64
		for _, a := range row {
			mean += a
		}
		mean /= float64(n)
		for _, a := range row {
			v += (a - mean) * (a - mean)
		}
		inv := 1 / math.Sqrt(v/float64(n)+layerNormEps)
		for i, a := range row {
			y[r*n+i] = (a-mean)*inv*float64(ln.Weight.Data[i]) + float64(ln.Bias.Data[i])
		}
	}
	return y
}

func TestLinearBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rows, in, out := 3, 7, 5
	l := randLinear(rng, in, out)
	x, r := randVec(rng, rows*in, 1), randVec(rng, rows*out, 1)
	got := make([]float32, rows*in)
	linearBackward(got, r, rows, l, false)
	checkGrad(t, "linear", got, finiteDiff(f64(x), r, func(x []float64) []float64 { return linear64(x, rows, l) }))
	// accumulate adds to what is there.
	acc := make([]float32, rows*in)
	for i := range acc {
		acc[i] = 1
	}
	linearBackward(acc, r, rows, l, true)
	for i := range acc {
		if math.Abs(float64(acc[i]-1-got[i])) > 1e-6 {
			t.Fatalf("accumulate: %g, want %g", acc[i], 1+got[i])
		}
	}
}

func TestLayerNormBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows, n := 4, 9
	ln := newLayerNorm(n)
	ln.Weight.Data, ln.Bias.Data = randVec(rng, n, 0.5), randVec(rng, n, 0.1)
	for i := range ln.Weight.Data {
		ln.Weight.Data[i]++
	}
	x, r := randVec(rng, rows*n, 2), randVec(rng, rows*n, 1)
	for i := range x {
		x[i] += 0.5 // a mean away from zero
	}
	got := make([]float32, rows*n)
	layerNormBackward(got, x, r, rows, &ln, false)
	checkGrad(t, "layernorm", got, finiteDiff(f64(x), r, func(x []float64) []float64 { return layerNorm64(x, rows, &ln) }))
}

func TestGELUBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	// Random inputs, and the edges of the kernel's branches: the series near 0 and the tails.
	x := append(randVec(rng, 40, 2), 0, 0.005, -0.009, 0.0099, 0.0101, -0.0101, 3e-6, -8, 8, -12, 12)
	r := randVec(rng, len(x), 1)
	got := append([]float32(nil), r...)
	geluBackward(got, x)
	checkGrad(t, "gelu", got, finiteDiff(f64(x), r, func(x []float64) []float64 {
		y := make([]float64, len(x))
		for i, a := range x {
			y[i] = a / 2 * (1 + math.Erf(a/math.Sqrt2))
		}
		return y
	}))
}

func softmax64(s []float64, rows, cols int) []float64 {
	p := make([]float64, len(s))
	for r := 0; r < rows; r++ {
		m := math.Inf(-1)
		for _, v := range s[r*cols : (r+1)*cols] {
			m = max(m, v)
		}
		var sum float64
		for c := 0; c < cols; c++ {
			p[r*cols+c] = math.Exp(s[r*cols+c] - m)
			sum += p[r*cols+c]
		}
		for c := 0; c < cols; c++ {
			p[r*cols+c] /= sum
		}
	}
	return p
}

func TestSoftmaxBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	rows, cols := 3, 6
	s, r := randVec(rng, rows*cols, 2), randVec(rng, rows*cols, 1)
	p64 := softmax64(f64(s), rows, cols)
	p := make([]float32, len(p64))
	for i, v := range p64 {
		p[i] = float32(v)
	}
	got := make([]float32, rows*cols)
	softmaxBackward(got, p, r, rows, cols, cols)
	checkGrad(t, "softmax", got, finiteDiff(f64(s), r, func(s []float64) []float64 { return softmax64(s, rows, cols) }))
}

// attention64 is multi-head attention, ctx [nq, heads·dv] and probs [heads, nq, nk], in float64.
func attention64(q, k, v []float64, nq, nk, heads, dqk, dv int, scale float64) (ctx, probs []float64) {
	qk, vw := heads*dqk, heads*dv
	ctx, probs = make([]float64, nq*vw), make([]float64, heads*nq*nk)
	for h := 0; h < heads; h++ {
		s := make([]float64, nq*nk)
		for i := 0; i < nq; i++ {
			for j := 0; j < nk; j++ {
				var d float64
				for c := 0; c < dqk; c++ {
					d += q[i*qk+h*dqk+c] * k[j*qk+h*dqk+c]
				}
				s[i*nk+j] = scale * d
			}
		}
		p := softmax64(s, nq, nk)
		copy(probs[h*nq*nk:], p)
		for i := 0; i < nq; i++ {
			for c := 0; c < dv; c++ {
				var a float64
				for j := 0; j < nk; j++ {
					a += p[i*nk+j] * v[j*vw+h*dv+c]
				}
				ctx[i*vw+h*dv+c] = a
			}
		}
	}
	return ctx, probs
}

func TestMultiHeadBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	nq, nk, heads, dqk, dv := 4, 5, 2, 3, 2
	qk, vw := heads*dqk, heads*dv
	scale := 1 / math.Sqrt(float64(dqk))
	q, k, v := randVec(rng, nq*qk, 1), randVec(rng, nk*qk, 1), randVec(rng, nk*vw, 1)
	r := randVec(rng, nq*vw, 1)
	_, p64 := attention64(f64(q), f64(k), f64(v), nq, nk, heads, dqk, dv, scale)
	probs := make([]float32, len(p64))
	for i, x := range p64 {
		probs[i] = float32(x)
	}
	dq, dk, dvv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	dprobs, ds := make([]float32, len(probs)), make([]float32, nq*nk)
	multiHeadBackward(dq, dk, dvv, dprobs, ds, q, k, v, probs, r, nq, nk, heads, dqk, dv, float32(scale))
	ctxOf := func(q, k, v []float64) []float64 {
		c, _ := attention64(q, k, v, nq, nk, heads, dqk, dv, scale)
		return c
	}
	q64, k64, v64 := f64(q), f64(k), f64(v)
	checkGrad(t, "attention dq", dq, finiteDiff(q64, r, func(x []float64) []float64 { return ctxOf(x, k64, v64) }))
	checkGrad(t, "attention dk", dk, finiteDiff(k64, r, func(x []float64) []float64 { return ctxOf(q64, x, v64) }))
	checkGrad(t, "attention dv", dvv, finiteDiff(v64, r, func(x []float64) []float64 { return ctxOf(q64, k64, x) }))
	// ∂ctx/∂probs: ctx_h = P_h·v_h, linear in the probabilities.
	checkGrad(t, "attention dprobs", dprobs, finiteDiff(p64, r, func(p []float64) []float64 {
		c := make([]float64, nq*vw)
		for h := 0; h < heads; h++ {
			for i := 0; i < nq; i++ {
				for j := 0; j < nk; j++ {
					for d := 0; d < dv; d++ {
						c[i*vw+h*dv+d] += p[h*nq*nk+i*nk+j] * v64[j*vw+h*dv+d]
					}
				}
			}
		}
		return c
	}))
}

// The input stages' backward to the pixels, each stage's tokens written here in float64.
func TestInputStageBackward(t *testing.T) {
	for _, kind := range []string{"fourier", "learned", "conv"} {
		t.Run(kind, func(t *testing.T) {
			m, err := Load(fixtureDirs[kind])
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			s := m.Weights.Input
			h, w := m.Preprocessor.Size.Height, m.Preprocessor.Size.Width
			if kind == "conv" {
				h, w = 13, 15 // a 2×3 token grid: the float64 convolution stays quick
			}
			g, err := s.Grid(h, w)
			if err != nil {
				t.Fatal(err)
			}
			N, C := g.Tokens(), s.Channels()
			rng := rand.New(rand.NewPCG(11, 12))
			img, r := randVec(rng, 3*h*w, 1), randVec(rng, N*C, 1)
			got := make([]float32, 3*h*w)
			if err := inputBackward(s, got, r, img, h, w, nil, nil); err != nil {
				t.Fatal(err)
			}
			checkGrad(t, kind+" stage", got, finiteDiff(f64(img), r, func(x []float64) []float64 { return tokens64(t, s, x, h, w) }))
		})
	}
}

// tokens64 is the pixel-dependent part of a stage's tokens [N, C] in float64 (position channels,
// constants of the pixels, are left at zero).
func tokens64(t *testing.T, stage InputStage, img []float64, h, w int) []float64 {
	g, _ := stage.Grid(h, w)
	N, C := g.Tokens(), stage.Channels()
	tok := make([]float64, N*C)
	switch s := stage.(type) {
	case *FourierStage:
		for p := 0; p < N; p++ {
			for c := 0; c < 3; c++ {
				tok[p*C+c] = img[c*N+p]
			}
		}
	case *LearnedStage:
		wt, b := s.Conv.Weight.Data, s.Conv.Bias.Data
		for p := 0; p < N; p++ {
			for c := 0; c < s.Conv.Out(); c++ {
				v := float64(b[c])
				for ch := 0; ch < 3; ch++ {
					v += float64(wt[3*c+ch]) * img[ch*N+p]
				}
				tok[p*C+c] = v
			}
		}
	case *ConvStage:
		k, out, st, pad := s.Conv.Kernel(), s.Conv.Out(), s.Conv.Stride, s.Conv.Pad
		ch, cw := s.convSize(h), s.convSize(w)
		bn := &s.BatchNorm
		feat := make([]float64, out*ch*cw) // [out, ch, cw], after BatchNorm and ReLU
		for o := 0; o < out; o++ {
			inv := 1 / math.Sqrt(float64(bn.RunningVar.Data[o])+batchNormEps)
			for y := 0; y < ch; y++ {
				for x := 0; x < cw; x++ {
					var v float64
					for c := 0; c < 3; c++ {
						for ky := 0; ky < k; ky++ {
							for kx := 0; kx < k; kx++ {
								iy, ix := y*st-pad+ky, x*st-pad+kx
								if iy >= 0 && iy < h && ix >= 0 && ix < w {
									v += float64(s.Conv.Weight.Data[((o*3+c)*k+ky)*k+kx]) * img[(c*h+iy)*w+ix]
								}
							}
						}
					}
					v = (v-float64(bn.RunningMean.Data[o]))*inv*float64(bn.Weight.Data[o]) + float64(bn.Bias.Data[o])
					feat[(o*ch+y)*cw+x] = max(v, 0)
				}
			}
		}
		for i := 0; i < g.Rows; i++ {
			for j := 0; j < g.Cols; j++ {
				for o := 0; o < out; o++ {
					best := math.Inf(-1)
					for dy := 0; dy < 3; dy++ {
						for dx := 0; dx < 3; dx++ {
							best = max(best, feat[(o*ch+2*i+dy)*cw+2*j+dx])
						}
					}
					tok[(i*g.Cols+j)*C+o] = best
				}
			}
		}
	default:
		t.Fatalf("no float64 tokens for %s", stage.Kind())
	}
	return tok
}
