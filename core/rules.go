package core

import (
	"math"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// Rules turn the backward pass into a relevance propagation (layer-wise relevance propagation in
// its gradient form, as LXT's "efficient" AttnLRP implements it): the forward pass is unchanged,
// and the backward applies the chain rule everywhere except at the operations a rule names,
// where it passes a modified gradient ĝ. The relevance of a tensor x is then x ⊙ ĝ_x. The zero
// value is the plain gradient. Linear layers, convolutions, BatchNorm, ReLU, max pooling and
// residuals always keep their plain gradient (the ε-rule with ε = 0; biases absorb their share).
// Package explain holds the presets (AttnLRP, CP-LRP); the exact rules are in the README,
// section "Relevance propagation".
type Rules struct {
	// LayerNormConstantStd holds every LayerNorm's σ constant: with u = w⊙g/σ,
	// ĝ_x = u − mean(u) (the mean stays differentiated).
	LayerNormConstantStd bool
	// GELUIdentity passes relevance through every GELU unchanged (the identity rule):
	// ĝ_h = g·GELU(h)/(h + 1e-10).
	GELUIdentity bool
	// Attention is the rule at the two products of every attention, S = Q·Kᵀ and C = A·V.
	Attention AttentionRule
}

// AttentionRule is how the gradient is shared between the factors of the attention products.
type AttentionRule int

const (
	// AttentionGradient is the chain rule.
	AttentionGradient AttentionRule = iota
	// AttentionUniform is AttnLRP's uniform rule on both products: each factor gets half the
	// gradient, so V gets ½ and, through the softmax's own Jacobian, Q and K get ¼.
	AttentionUniform
	// AttentionConstant is CP-LRP's: the probabilities are constants, so V gets the plain
	// gradient and nothing reaches A, the scores, Q or K.
	AttentionConstant
)

// attentionFactors returns the factors on ĝ_A (= g·Vᵀ), on ĝ_V (= Aᵀ·g) and on the scores'
// gradient's way into Q and K, applied after the softmax's Jacobian.
func (r Rules) attentionFactors() (probs, values, scores float32) {
	switch r.Attention {
	case AttentionUniform:
		return 0.5, 0.5, 0.5
	case AttentionConstant:
		return 0, 1, 0
	}
	return 1, 1, 1
}

// layerNormBackward is layerNormBackward, or its form with σ held constant under the rules.
func (r Rules) layerNormBackward(dx, x, dy []float32, rows int, ln *LayerNorm, accumulate bool) {
	if !r.LayerNormConstantStd {
		layerNormBackward(dx, x, dy, rows, ln, accumulate)
		return
	}
	layerNormBackwardConstantStd(dx, x, dy, rows, ln, accumulate)
}

// geluBackward is geluBackward, or the identity rule under the rules.
func (r Rules) geluBackward(dy, a []float32) {
	if !r.GELUIdentity {
		geluBackward(dy, a)
		return
	}
	geluIdentityBackward(dy, a)
}

// layerNormBackwardConstantStd writes (or adds) into dx [rows, n] ρ·(g − mean(g)), g = dy⊙w,
// ρ = 1/√(σ² + ε): LayerNorm's gradient with σ a constant. Statistics in float64, as the forward.
func layerNormBackwardConstantStd(dx, x, dy []float32, rows int, ln *LayerNorm, accumulate bool) {
	n := len(ln.Weight.Data)
	w := ln.Weight.Data
	par.For(rows, max(1, 4096/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x[r*n:(r+1)*n], dy[r*n:(r+1)*n], dx[r*n:(r+1)*n]
			var mean float64
			for _, v := range xr {
				mean += float64(v)
			}
			mean /= float64(n)
			var variance, mg float64
			for i, v := range xr {
				d := float64(v) - mean
				variance += d * d
				mg += float64(dyr[i]) * float64(w[i])
			}
			rho := 1 / math.Sqrt(variance/float64(n)+layerNormEps)
			mg /= float64(n)
			for i := range dxr {
				v := float32(rho * (float64(dyr[i])*float64(w[i]) - mg))
				if accumulate {
					dxr[i] += v
				} else {
					dxr[i] = v
				}
			}
		}
	})
}

// geluIdentityBackward multiplies dy in place by GELU(a)/(a + 1e-10), a being GELU's input: the
// identity rule, under which a⊙ĝ_a equals GELU(a)⊙g.
func geluIdentityBackward(dy, a []float32) {
	par.For(len(dy), 8192, func(lo, hi int) {
		var buf [512]float32
		for i0 := lo; i0 < hi; i0 += len(buf) {
			n := min(len(buf), hi-i0)
			g := buf[:n]
			gelu1(g, a[i0:i0+n])
			for i, x := range a[i0 : i0+n] {
				dy[i0+i] *= g[i] / (x + 1e-10)
			}
		}
	})
}

// Budget is where one image's relevance went under a GradTrace's Rules (GradTrace.Budget): Σ x⊙ĝ_x
// over each input of the network. With the rules of AttnLRP or CP-LRP, y = Pixels + Positions +
// Latents + Query + what the biases, softmaxes and GELUs absorb.
type Budget struct {
	Pixels    float64 // Σ pixel_values ⊙ ĝ
	Positions float64 // Σ F⊙ĝ_F over the Fourier features (fourier, conv), or Σ P⊙ĝ_P over the learned position table (before its projection)
	Latents   float64 // Σ L⊙ĝ_L over the initial latent array
	Query     float64 // Σ Qd⊙ĝ_Qd over the decoder's trainable query
	// PerLatent holds, for each latent, Σ over its channels of hidden_states.0 ⊙ ĝ: the relevance
	// each latent carries out of the encoder cross-attention. [L]
	PerLatent []float64
}

// dot64 is Σ a⊙b in float64.
func dot64(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s
}

// queryRelevance returns Σ x⊙ĝ_x for the queries x [n, D] of a cross-attention l, given the
// gradient dres [n, D] their residual receives and dscores [n, nk], the scores' gradient after
// the softmax (already scaled by the rules' factors), and the keys' input xn [nk, C] (LN2 of the
// keys and values' input): ĝ_q = scale·dscores·(xn·Wkᵀ + bk), then back through the query
// projection and LN1. One head.
func queryRelevance(r Rules, x, dres, dscores, xn []float32, n, nk int, l *Layer, scale float32) float64 {
	a := &l.Attention.Self
	C, qk, D := a.Key.In(), a.Key.Out(), a.Query.In()
	pooled := make([]float32, n*C)
	sgemm.Gemm(false, false, n, C, nk, scale, dscores, nk, xn, C, 0, pooled, C)
	dq := make([]float32, n*qk)
	sgemm.Gemm(false, true, n, qk, C, 1, pooled, C, a.Key.Weight.Data, C, 0, dq, qk)
	for i := 0; i < n; i++ {
		var sum float64
		for _, v := range dscores[i*nk : (i+1)*nk] {
			sum += float64(v)
		}
		s := scale * float32(sum)
		for c, b := range a.Key.Bias.Data {
			dq[i*qk+c] += s * b
		}
	}
	dqn := make([]float32, n*D)
	linearBackward(dqn, dq, n, &a.Query, false)
	dx := make([]float32, n*D)
	if l.QueryResidual {
		copy(dx, dres)
	}
	r.layerNormBackward(dx, x, dqn, n, &a.LayerNorm1, true)
	return dot64(x, dx)
}

// positionRelevance returns the relevance of one image's position inputs from its tokens [N, C]
// and their gradient dtok: Σ F⊙ĝ_F over the Fourier channels, or, for learned positions, Σ P⊙ĝ_P
// with ĝ_P = ĝ·W of the positions' projection.
func positionRelevance(stage InputStage, tokens, dtok []float32, N int) float64 {
	C := stage.Channels()
	first := 0
	switch s := stage.(type) {
	case *FourierStage:
		first = 3
	case *ConvStage:
		first = s.Conv.Out()
	case *LearnedStage:
		first = s.Conv.Out()
		P := s.Projection.Out()
		dproj := make([]float32, N*P)
		for t := 0; t < N; t++ {
			copy(dproj[t*P:(t+1)*P], dtok[t*C+first:(t+1)*C])
		}
		dpos := make([]float32, N*s.Projection.In())
		linearBackward(dpos, dproj, N, &s.Projection, false)
		return dot64(s.Positions.Data, dpos)
	default:
		return 0
	}
	var sum float64
	for t := 0; t < N; t++ {
		sum += dot64(tokens[t*C+first:(t+1)*C], dtok[t*C+first:(t+1)*C])
	}
	return sum
}
