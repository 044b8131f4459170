package core

import (
	"math"
	"sync"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/internal/vecmath"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// The backward of each forward op. Every function takes the gradient with respect to the op's
// output (dy) and writes, or adds (the accumulate flag or beta), the gradient with respect to its
// input. Weights are constants: no weight gradients are formed.

// linearBackward sets dx [rows, in] = dy [rows, out]·W, or adds it when accumulate is set: the
// gradient of y = x·Wᵀ + b with respect to x.
func linearBackward(dx, dy []float32, rows int, l *Linear, accumulate bool) {
	in, out := l.In(), l.Out()
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	sgemm.Gemm(false, false, rows, in, out, 1, dy, out, l.Weight.Data, in, beta, dx, in)
}

// backwardPacks holds linear layers' weights packed for dx = dy·W, the backward's product, which
// reads W untransposed where the forward's x·Wᵀ reads it transposed: packed once per layer rather
// than on every call (288 times per pass at full size), and rebuilt if a weight's Data is
// reassigned, as the forward's packing is.
type backwardPacks struct {
	mu sync.Mutex
	m  map[*Linear]backwardPack
}

type backwardPack struct {
	from *float32
	pb   *sgemm.PackedB
}

// packFor returns l's weights packed for linearBackward.
func (b *backwardPacks) packFor(l *Linear) *sgemm.PackedB {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.m[l]; ok && p.from == l.Weight.first() {
		return p.pb
	}
	if b.m == nil {
		b.m = map[*Linear]backwardPack{}
	}
	pb := sgemm.PackB(false, l.Out(), l.In(), l.Weight.Data, l.In())
	b.m[l] = backwardPack{l.Weight.first(), pb}
	return pb
}

// linearBackwardPacked is linearBackward with W packed by backwardPacks.packFor.
func linearBackwardPacked(dx, dy []float32, rows int, l *Linear, pb *sgemm.PackedB, accumulate bool) {
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	sgemm.GemmPacked(rows, 1, dy, l.Out(), false, pb, nil, beta, dx, l.In())
}

// layerNormBackward writes (or adds, when accumulate is set) into dx [rows, n] the gradient of
// y = LayerNorm(x) with respect to x, given dy: with x̂ = (x − μ)·ρ, ρ = 1/√(σ² + ε) and g = dy⊙w,
// dx = ρ·(g − mean(g) − x̂·mean(g⊙x̂)). Statistics in float64, as the forward takes them.
func layerNormBackward(dx, x, dy []float32, rows int, ln *LayerNorm, accumulate bool) {
	n := len(ln.Weight.Data)
	w := ln.Weight.Data
	par.For(rows, max(1, 4096/n), func(lo, hi int) {
		xhat := make([]float64, n)
		g := make([]float64, n)
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x[r*n:(r+1)*n], dy[r*n:(r+1)*n], dx[r*n:(r+1)*n]
			var mean float64
			for _, v := range xr {
				mean += float64(v)
			}
			mean /= float64(n)
			var variance float64
			for _, v := range xr {
				d := float64(v) - mean
				variance += d * d
			}
			variance /= float64(n)
			rho := 1 / math.Sqrt(variance+layerNormEps)
			var mg, mgx float64
			for i, v := range xr {
				xhat[i] = (float64(v) - mean) * rho
				g[i] = float64(dyr[i]) * float64(w[i])
				mg += g[i]
				mgx += g[i] * xhat[i]
			}
			mg /= float64(n)
			mgx /= float64(n)
			for i := range dxr {
				v := float32(rho * (g[i] - mg - xhat[i]*mgx))
				if accumulate {
					dxr[i] += v
				} else {
					dxr[i] = v
				}
			}
		}
	})
}

// geluBackward multiplies dy in place by GELU′(a) = Φ(a) + a·φ(a), a being GELU's input. Φ comes
// from the forward kernel, Φ(a) = GELU(a)/a (a series near 0, where the quotient loses digits), φ
// from the float32 exponential: a few ulp, as the forward.
func geluBackward(dy, a []float32) {
	const invSqrt2Pi = 0.3989422804014327
	par.For(len(dy), 8192, func(lo, hi int) {
		var buf [512]float32
		for i0 := lo; i0 < hi; i0 += len(buf) {
			n := min(len(buf), hi-i0)
			g := buf[:n]
			gelu1(g, a[i0:i0+n])
			for i, x := range a[i0 : i0+n] {
				pdf := invSqrt2Pi * attention.Exp(-0.5*x*x)
				var cdf float32
				if x > 1e-2 || x < -1e-2 {
					cdf = g[i] / x
				} else {
					cdf = 0.5 + x*invSqrt2Pi*(1-x*x/6)
				}
				dy[i0+i] *= cdf + x*pdf
			}
		}
	})
}

// softmaxBackward turns dp [rows, cols] (the gradient with respect to the probabilities p, rows
// being softmax distributions, ld values apart) into the gradient with respect to the scores before
// the softmax, in place: ds = p⊙(dp − Σ_k p_k·dp_k) per row.
func softmaxBackward(ds, p, dp []float32, rows, cols, ld int) {
	par.For(rows, max(1, 16384/max(cols, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			pr, dpr, dsr := p[r*ld:r*ld+cols], dp[r*ld:r*ld+cols], ds[r*ld:r*ld+cols]
			var dot float64
			for k, v := range pr {
				dot += float64(v) * float64(dpr[k])
			}
			d := float32(dot)
			for k, v := range pr {
				dsr[k] = v * (dpr[k] - d)
			}
		}
	})
}

// multiHeadBackward is the backward of attention.MultiHead for one image: given the queries q,
// keys k [nk, heads·dqk], values v [nk, heads·dv], the probabilities probs [heads, nq, nk] and the
// gradient dctx [nq, heads·dv], it writes the gradient with respect to the probabilities into
// dprobs [heads, nq, nk] (when not nil) and the gradients dq, dk, dv (same shapes as q, k, v).
// ds [nq, nk] is scratch.
func multiHeadBackward(dq, dk, dv, dprobs, ds, q, k, v, probs, dctx []float32, nq, nk, heads, dqk, dvw int, scale float32) {
	Rules{}.multiHeadBackward(dq, dk, dv, dprobs, ds, q, k, v, probs, dctx, nq, nk, heads, dqk, dvw, scale)
}

// multiHeadBackward is multiHeadBackward under the rules r (their factors on the probabilities',
// the values' and the scores' gradients).
func (r Rules) multiHeadBackward(dq, dk, dv, dprobs, ds, q, k, v, probs, dctx []float32, nq, nk, heads, dqk, dvw int, scale float32) {
	qk, vw := heads*dqk, heads*dvw
	fa, fv, fs := r.attentionFactors()
	for h := 0; h < heads; h++ {
		p := probs[h*nq*nk : (h+1)*nq*nk]
		dp := ds
		if dprobs != nil {
			dp = dprobs[h*nq*nk : (h+1)*nq*nk]
		}
		// dP = dctx_h·v_hᵀ; dv_h = Pᵀ·dctx_h.
		sgemm.Gemm(false, true, nq, nk, dvw, fa, dctx[h*dvw:], vw, v[h*dvw:], vw, 0, dp, nk)
		sgemm.Gemm(true, false, nk, dvw, nq, fv, p, nk, dctx[h*dvw:], vw, 0, dv[h*dvw:], vw)
		softmaxBackward(ds, p, dp, nq, nk, nk)
		// scores = scale·q_h·k_hᵀ: dq_h = scale·dS·k_h, dk_h = scale·dSᵀ·q_h.
		sgemm.Gemm(false, false, nq, dqk, nk, fs*scale, ds, nk, k[h*dqk:], qk, 0, dq[h*dqk:], qk)
		sgemm.Gemm(true, false, nk, dqk, nq, fs*scale, ds, nk, q[h*dqk:], qk, 0, dk[h*dqk:], qk)
	}
}

// gelu1 writes GELU(x) into dst with the forward pass's kernel, on the calling goroutine.
func gelu1(dst, x []float32) { vecmath.GELU(dst, x) }
