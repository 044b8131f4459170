package core

import (
	"math"
	"slices"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
	"github.com/perceiverkit/perceiver/internal/vecmath"
)

// The learned model's single-head encoder attention, with one product over the tokens instead of
// two and none that depends on both the image and the position table.
//
// A learned token is x_p = [W·rgb_p + b, P_p]: the 1×1 convolution of the pixel's colours (C1
// channels) and its projected position P_p (C2 channels, the same for every image). As for the
// Fourier pixels (encoder.go), LN2 is affine per token, so with G_i = kq_i ⊙ γ and g_i = Σ_c G_ic:
//
//	kq_i·LN2(x_p) = r_p·(H_i·rgb_p + k_i + A_ip − g_i·μ_p) + const_i,
//	H_i = G_i,conv·W,  k_i = G_i,conv·b,  A_ip = G_i,pos·P_p,
//
// where A [L, N] depends on the weights alone and is computed once (k_i, unlike the constant, is
// scaled by each token's r_p). The token's mean and variance
// come from the colours and per-token sums of P, the convolution's part through WᵀW. The values
// need Σ_p w'_ip·rgb_p (three numbers per latent) and one product [L, N]·P of the attention
// weights by the position table; the convolution channels follow through W. The scores are float32
// as on the product path, the statistics, sums and marginals float64.

// learnedEncoder holds what the attention needs of the weights for the learned stage's size.
type learnedEncoder struct {
	h, w, c1, c2 int
	scale        float32
	g            []float32 // [L, 4]: H_i and −g_i
	k            []float32 // [L]: k_i
	pos          []float32 // A [L, N]
	posFeat      []float32 // P [N, c2]
	posSum       []float64 // [N]: Σ_c P_pc
	posSq        []float64 // [N]: Σ_c P_pc²
	wConv, bConv []float32 // W [c1, 3], b [c1]
	sumW         [3]float64
	sumB, bb     float64
	quad         [3][3]float64 // WᵀW
	lin          [3]float64    // 2·bᵀW
	gamma, beta  []float32
}

func (m *Model) newLearnedEncoder(kq []float32, s *LearnedStage) *learnedEncoder {
	L, C := m.Config.NumLatents, m.Config.DModel
	a := &m.Weights.CrossAttention.Attention.Self
	c1, c2 := s.Conv.Out(), s.Projection.Out()
	N := s.Height * s.Width
	e := &learnedEncoder{
		h: s.Height, w: s.Width, c1: c1, c2: c2,
		scale: float32(1 / math.Sqrt(float64(a.Query.Out()))), // one head
		g:     make([]float32, L*4), k: make([]float32, L), pos: make([]float32, L*N), posFeat: s.projectedPositions(),
		posSum: make([]float64, N), posSq: make([]float64, N),
		wConv: s.Conv.Weight.Data, bConv: s.Conv.Bias.Data,
		gamma: a.LayerNorm2.Weight.Data, beta: a.LayerNorm2.Bias.Data,
	}
	for p := 0; p < N; p++ {
		for _, v := range e.posFeat[p*c2 : (p+1)*c2] {
			e.posSum[p] += float64(v)
			e.posSq[p] += float64(v) * float64(v)
		}
	}
	for c := 0; c < c1; c++ {
		b := float64(e.bConv[c])
		e.sumB += b
		e.bb += b * b
		for k := 0; k < 3; k++ {
			wk := float64(e.wConv[3*c+k])
			e.sumW[k] += wk
			e.lin[k] += 2 * b * wk
			for j := 0; j < 3; j++ {
				e.quad[k][j] += wk * float64(e.wConv[3*c+j])
			}
		}
	}
	gPos := make([]float32, L*c2)
	for i := 0; i < L; i++ {
		var g, kb float64
		var h [3]float64
		for c := 0; c < C; c++ {
			gc := kq[i*C+c] * e.gamma[c]
			g += float64(gc)
			if c < c1 {
				for k := range h {
					h[k] += float64(gc) * float64(e.wConv[3*c+k])
				}
				kb += float64(gc) * float64(e.bConv[c])
			} else {
				gPos[i*c2+c-c1] = gc
			}
		}
		for k := range h {
			e.g[i*4+k] = float32(h[k])
		}
		e.g[i*4+3] = float32(-g)
		e.k[i] = float32(kb)
	}
	sgemm.Gemm(false, true, L, N, c2, 1, gPos, c2, e.posFeat, c2, 0, e.pos, N)
	return e
}

// attend computes, for the image img [3, h·w], acc [L, c1+c2] = Σ_p w_ip·LN2(x_p) with
// w_i = softmax_p(scale·kq_i·LN2(x_p)). If keep is not nil it receives the raw scores [L, h·w] (up
// to a constant per latent), to be normalised by the caller.
func (e *learnedEncoder) attend(acc, img, keep []float32) {
	h, w, c1, c2 := e.h, e.w, e.c1, e.c2
	N, C := h*w, c1+c2
	L := len(e.g) / 4
	mu, r, rs := make([]float32, N), make([]float32, N), make([]float32, N)
	par.For(N, 2048, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			x := [3]float64{float64(img[p]), float64(img[N+p]), float64(img[2*N+p])}
			sum := e.sumB + e.posSum[p]
			sq := e.bb + e.posSq[p]
			for k := range x {
				sum += e.sumW[k] * x[k]
				sq += e.lin[k] * x[k]
				for j := range x {
					sq += e.quad[k][j] * x[k] * x[j]
				}
			}
			mean := sum / float64(C)
			inv := 1 / math.Sqrt(max(sq/float64(C)-mean*mean, 0)+float64(float32(layerNormEps)))
			mu[p], r[p], rs[p] = float32(mean), float32(inv), float32(float64(e.scale)*inv)
		}
	})
	planes := [4][]float32{img[:N], img[N : 2*N], img[2*N : 3*N], mu}
	weights := make([]float32, L*N) // w'_ip = e_ip·r_p, unnormalised
	sums := make([][4]float64, L)
	total := make([]float64, L) // Σ_p w'_ip
	denom := make([]float64, L)
	par.For(L, 8, func(lo, hi int) {
		s := make([]float32, N)
		cols := make([]float64, w)
		var rowSum [1]float64
		for i := lo; i < hi; i++ {
			g := [4]float32(e.g[i*4 : i*4+4])
			k := e.k[i : i+1]
			for u := 0; u < h; u++ {
				row := [4][]float32{planes[0][u*w : (u+1)*w], planes[1][u*w : (u+1)*w], planes[2][u*w : (u+1)*w], planes[3][u*w : (u+1)*w]}
				vecmath.GridCombine(s[u*w:(u+1)*w], rs[u*w:(u+1)*w], row, k, e.pos[i*N+u*w:i*N+(u+1)*w], g)
			}
			if keep != nil {
				copy(keep[i*N:(i+1)*N], s)
			}
			denom[i] = vecmath.ExpShiftSum(s, s, vecmath.Max(s))
			var m [4]float64
			var t float64
			for u := 0; u < h; u++ {
				row := [4][]float32{planes[0][u*w : (u+1)*w], planes[1][u*w : (u+1)*w], planes[2][u*w : (u+1)*w], planes[3][u*w : (u+1)*w]}
				clear(cols)
				k := vecmath.GridMarginals(s[u*w:(u+1)*w], r[u*w:(u+1)*w], row, rowSum[:], cols)
				for j := range m {
					m[j] += k[j]
				}
				t += rowSum[0]
				for v, c := range cols {
					weights[i*N+u*w+v] = float32(c)
				}
			}
			sums[i], total[i] = m, t
		}
	})
	// The position channels' sums Σ_p w'_ip·P_p, one product over the tokens.
	tPos := make([]float32, L*c2)
	sgemm.Gemm(false, false, L, c2, N, 1, weights, N, e.posFeat, c2, 0, tPos, c2)
	par.For(L, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out, m, inv := acc[i*C:(i+1)*C], &sums[i], 1/denom[i]
			set := func(c int, t float64) {
				out[c] = float32(float64(e.gamma[c])*(t-m[3])*inv) + e.beta[c]
			}
			for c := 0; c < c1; c++ {
				wc := e.wConv[3*c : 3*c+3]
				set(c, float64(wc[0])*m[0]+float64(wc[1])*m[1]+float64(wc[2])*m[2]+float64(e.bConv[c])*total[i])
			}
			for j := 0; j < c2; j++ {
				set(c1+j, float64(tPos[i*c2+j]))
			}
		}
	})
}

// learnedFor returns the learned stage's single-head encoder attention, built on first use and
// kept while the weights it depends on stay those it was built from.
func (m *Model) learnedFor(s *LearnedStage) *learnedEncoder {
	W := &m.Weights
	a := &W.CrossAttention.Attention.Self
	var from []*float32
	for _, p := range []*Param{&W.Latents, &a.LayerNorm1.Weight, &a.LayerNorm1.Bias, &a.Query.Weight, &a.Query.Bias,
		&a.Key.Weight, &a.LayerNorm2.Weight, &a.LayerNorm2.Bias, &s.Conv.Weight, s.Conv.Bias,
		&s.Positions, &s.Projection.Weight, &s.Projection.Bias} {
		from = append(from, p.first())
	}
	m.encMu.Lock()
	defer m.encMu.Unlock()
	if m.learned == nil || !slices.Equal(from, m.learnedFrom) {
		m.learned = m.newLearnedEncoder(foldKey(m.encoderQueries(), m.Config.NumLatents, &a.Key), s)
		m.learnedFrom = from
	}
	return m.learned
}
