package core

import (
	"math"
	"slices"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
	"github.com/perceiverkit/perceiver/internal/vecmath"
)

// The encoder's single-head cross-attention, computed without a matrix product over the pixels.
//
// With one head the keys and values need no per-pixel projection (see encode): the latents attend
// with kq = q·Wk over LN2(x), and the value projection is applied to Σ_p w_p·LN2(x_p) afterwards.
// Two more facts make the whole attention cost O(latents × pixels) instead of two products of
// depth 261:
//
//   - LN2 is affine in x per pixel: LN2(x_p)_c = (x_pc − μ_p)·r_p·γ_c + β_c, with the pixel's mean
//     μ_p and r_p = 1/√(σ²_p + eps). So kq_i·LN2(x_p) = r_p·(G_i·x_p − μ_p·g_i) + kq_i·β, where
//     G_i = kq_i ⊙ γ and g_i = Σ_c G_ic; the last term is the same for every pixel and cancels in
//     the softmax, as q·bk does.
//   - Each Fourier channel depends on the row u or on the column v of the pixel alone
//     (fourier.Spec.Axis), so for x_p = [rgb_p, pos(u, v)]: G_i·x_p = G_i,rgb·rgb_p + A_iu + B_iv,
//     with A_iu summing G_i over the row channels and B_iv over the column channels. Likewise
//     Σ_p w_ip·pos_c(u) = Σ_u pos_c(u)·(Σ_v w_i,uv): the values need only the row and column
//     marginals of each latent's attention.
//
// The per-pixel statistics are LayerNorm's, in float64; the scores are float32, as on the product
// path; the softmax sums and the marginals accumulate in float64. The results agree with the
// product path (projectKeys) and Hugging Face to float32 rounding (TestForwardMatchesHuggingFace,
// TestSeparableEncoderMatchesProducts).

// separableEncoder holds what the attention needs of the weights and of the position features
// at one input size; it is the same for every image.
type separableEncoder struct {
	h, w, c int       // input size, channels (3 colours + position features)
	scale   float32   // 1/√d of the attention
	g       []float32 // [L, 4]: G_i over the three colour channels, and −g_i
	a       []float32 // [L, h]: G_i·pos over the row channels, at each row
	b       []float32 // [L, w]: G_i·pos over the column channels, at each column
	gamma   []float32 // LN2 scale γ [c]
	beta    []float32 // LN2 shift β [c]
	rowSum  []float64 // [h]: Σ of the row channels' features at each row, and of their squares
	rowSq   []float64
	colSum  []float64 // [w]: likewise for the column channels
	colSq   []float64
	rowCh   []int     // input channels (≥ 3) that depend on the row
	colCh   []int     // and on the column
	rowFeat []float32 // [h, len(rowCh)]: their values
	colFeat []float32 // [w, len(colCh)]
}

// newSeparableEncoder prepares the attention of the queries kq [L, c] over h×w pixels with the
// position features of fs.
func (m *Model) newSeparableEncoder(kq []float32, fs *FourierStage, h, w int) *separableEncoder {
	L, C := m.Config.NumLatents, m.Config.DModel
	a := &m.Weights.CrossAttention.Attention.Self
	ln := a.LayerNorm2
	pos := fs.Features(h, w)
	P := C - 3
	e := &separableEncoder{
		h: h, w: w, c: C, scale: float32(1 / math.Sqrt(float64(a.Query.Out()))), // one head
		g: make([]float32, L*4), a: make([]float32, L*h), b: make([]float32, L*w),
		gamma: ln.Weight.Data, beta: ln.Bias.Data,
		rowSum: make([]float64, h), rowSq: make([]float64, h), colSum: make([]float64, w), colSq: make([]float64, w),
	}
	for c := 0; c < P; c++ {
		if fs.Spec.Axis(c) == 0 {
			e.rowCh = append(e.rowCh, 3+c)
		} else {
			e.colCh = append(e.colCh, 3+c)
		}
	}
	nr, nc := len(e.rowCh), len(e.colCh)
	// A channel of one axis has the same value along the other, so row 0 and column 0 of the
	// grid give all values.
	e.rowFeat = make([]float32, h*nr)
	for u := 0; u < h; u++ {
		for j, c := range e.rowCh {
			v := pos[(u*w)*P+c-3]
			e.rowFeat[u*nr+j] = v
			e.rowSum[u] += float64(v)
			e.rowSq[u] += float64(v) * float64(v)
		}
	}
	e.colFeat = make([]float32, w*nc)
	for v := 0; v < w; v++ {
		for j, c := range e.colCh {
			x := pos[v*P+c-3]
			e.colFeat[v*nc+j] = x
			e.colSum[v] += float64(x)
			e.colSq[v] += float64(x) * float64(x)
		}
	}
	// G = kq ⊙ γ, split by channel group; then A = G_rows·rowFeatᵀ and B = G_cols·colFeatᵀ.
	gRows, gCols := make([]float32, L*nr), make([]float32, L*nc)
	for i := 0; i < L; i++ {
		var g float64
		for c := 0; c < C; c++ {
			g += float64(kq[i*C+c] * e.gamma[c])
		}
		for c := 0; c < 3; c++ {
			e.g[i*4+c] = kq[i*C+c] * e.gamma[c]
		}
		e.g[i*4+3] = float32(-g)
		for j, c := range e.rowCh {
			gRows[i*nr+j] = kq[i*C+c] * e.gamma[c]
		}
		for j, c := range e.colCh {
			gCols[i*nc+j] = kq[i*C+c] * e.gamma[c]
		}
	}
	sgemm.Gemm(false, true, L, h, nr, 1, gRows, nr, e.rowFeat, nr, 0, e.a, h)
	sgemm.Gemm(false, true, L, w, nc, 1, gCols, nc, e.colFeat, nc, 0, e.b, w)
	return e
}

// attend computes, for the image img [3, h·w] (colour planes), acc [L, c] = Σ_p w_ip·LN2(x_p) with
// w_i = softmax_p(scale·kq_i·LN2(x_p)). If keep is not nil it receives the raw scores [L, h·w] (up
// to a constant per latent), to be normalised by the caller.
func (e *separableEncoder) attend(acc, img, keep []float32) {
	h, w, C := e.h, e.w, e.c
	N := h * w
	L := len(e.a) / h
	// Per pixel: LayerNorm's mean and 1/√(σ²+eps), from the colours and the two axes' sums, in
	// float64 as LayerNorm computes them.
	mu, r, rs := make([]float32, N), make([]float32, N), make([]float32, N)
	par.For(h, 8, func(lo, hi int) {
		for u := lo; u < hi; u++ {
			for v := 0; v < w; v++ {
				p := u*w + v
				c0, c1, c2 := float64(img[p]), float64(img[N+p]), float64(img[2*N+p])
				sum := c0 + c1 + c2 + e.rowSum[u] + e.colSum[v]
				sq := c0*c0 + c1*c1 + c2*c2 + e.rowSq[u] + e.colSq[v]
				mean := sum / float64(C)
				inv := 1 / math.Sqrt(max(sq/float64(C)-mean*mean, 0)+float64(float32(layerNormEps)))
				mu[p], r[p], rs[p] = float32(mean), float32(inv), float32(float64(e.scale)*inv)
			}
		}
	})
	x := [4][]float32{img[:N], img[N : 2*N], img[2*N : 3*N], mu}
	nr, nc := len(e.rowCh), len(e.colCh)
	// Per latent: the unnormalised weights' row and column marginals [L, h] and [L, w], their sums
	// against colours and means, and the softmax denominators.
	rowM, colM := make([]float32, L*h), make([]float32, L*w)
	sums := make([][4]float64, L)
	denom := make([]float64, L)
	par.For(L, 8, func(lo, hi int) {
		s := make([]float32, N)
		rows := make([]float64, h)
		cols := make([]float64, w)
		for i := lo; i < hi; i++ {
			// Scores: scale·r_p·(G_i,rgb·rgb_p + A_iu + B_iv − g_i·μ_p).
			vecmath.GridCombine(s, rs, x, e.a[i*h:(i+1)*h], e.b[i*w:(i+1)*w], [4]float32(e.g[i*4:i*4+4]))
			if keep != nil {
				copy(keep[i*N:(i+1)*N], s)
			}
			denom[i] = vecmath.ExpShiftSum(s, s, vecmath.Max(s))
			clear(cols)
			sums[i] = vecmath.GridMarginals(s, r, x, rows, cols)
			for u, v := range rows {
				rowM[i*h+u] = float32(v)
			}
			for v, c := range cols {
				colM[i*w+v] = float32(c)
			}
		}
	})
	// The position channels' sums Σ_p w'_ip·pos_c(p) = Σ_u pos_c(u)·rowM_iu (and by columns).
	tRows, tCols := make([]float32, L*nr), make([]float32, L*nc)
	sgemm.Gemm(false, false, L, nr, h, 1, rowM, h, e.rowFeat, nr, 0, tRows, nr)
	sgemm.Gemm(false, false, L, nc, w, 1, colM, w, e.colFeat, nc, 0, tCols, nc)
	par.For(L, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out, m, inv := acc[i*C:(i+1)*C], &sums[i], 1/denom[i]
			set := func(c int, t float64) {
				out[c] = float32(float64(e.gamma[c])*(t-m[3])*inv) + e.beta[c]
			}
			set(0, m[0])
			set(1, m[1])
			set(2, m[2])
			for j, c := range e.rowCh {
				set(c, float64(tRows[i*nr+j]))
			}
			for j, c := range e.colCh {
				set(c, float64(tCols[i*nc+j]))
			}
		}
	})
}

// encoderQueries returns the encoder's queries, Query(LN1(latents)) [L, qk]: the same for every
// image.
func (m *Model) encoderQueries() []float32 {
	a := &m.Weights.CrossAttention.Attention.Self
	L, D := m.Config.NumLatents, m.Config.DLatents
	norm := make([]float32, L*D)
	layerNorm(norm, m.Weights.Latents.Data, L, &a.LayerNorm1)
	q := make([]float32, L*a.Query.Out())
	linear(q, norm, L, &a.Query)
	return q
}

// separableFor returns the single-head encoder attention for h×w pixels with the features of fs,
// built on first use and kept while the weights it depends on stay those it was built from.
func (m *Model) separableFor(fs *FourierStage, h, w int) *separableEncoder {
	W := &m.Weights
	a := &W.CrossAttention.Attention.Self
	var from []*float32
	for _, p := range []*Param{&W.Latents, &a.LayerNorm1.Weight, &a.LayerNorm1.Bias, &a.Query.Weight, &a.Query.Bias,
		&a.Key.Weight, &a.LayerNorm2.Weight, &a.LayerNorm2.Bias} {
		from = append(from, p.first())
	}
	m.encMu.Lock()
	defer m.encMu.Unlock()
	if !slices.Equal(from, m.encoderFrom) {
		clear(m.encoders)
		m.encoderFrom = from
	}
	key := [2]int{h, w}
	if e, ok := m.encoders[key]; ok {
		return e
	}
	e := m.newSeparableEncoder(foldKey(m.encoderQueries(), m.Config.NumLatents, &a.Key), fs, h, w)
	m.encoders[key] = e
	return e
}
