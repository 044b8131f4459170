package core

import (
	"math"
	"time"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
	"github.com/perceiverkit/perceiver/internal/vecmath"
)

// The flow model's single-head encoder attention without a product of depth d_model over the
// pixels: the separable encoder's algebra (encoder.go) with the 3 colours replaced by the flow
// stage's projected patches.
//
// A token is x_p = [f_p, pos(u), pos(v)] with f_p = Wc·patch_p + bc (conv_after_patches). With
// kq = q·Wk, G_i = kq_i ⊙ γ and g_i = Σ_c G_ic (γ, β: LayerNorm2), the score of latent i on pixel p
// is, up to a constant per latent that cancels in the softmax over pixels,
//
//	scale·r_p·(E_i·patch_p + e_i + A_iu + B_iv − μ_p·g_i),
//
// with E_i = G_i,f·Wc (54 values), e_i = G_i,f·bc, A and B the position channels' parts summed
// per row and per column, and μ_p, r_p LayerNorm's mean and 1/σ of the pixel's token. So the
// scores are one product of depth 54 instead of d_model (322). The attention's output needs
// Σ_p w_ip·r_p·f_p (a product of depth pixels by 64 channels), Σ_p w_ip·r_p·μ_p, and the row and
// column marginals of w·r for the position channels.

// flowLatentBlock is how many latents' scores over all pixels are held at once: 64 × 182,528
// floats (47 MB) per buffer at 368×496.
const flowLatentBlock = 64

// encodeFlow computes the encoder attention for the flow stage with one head into ctx [L, v] image
// by image, calling finish(b) after each (see encode).
func (m *Model) encodeFlow(fs *FlowStage, frames []float32, batch int, o *Output, ctx []float32, finish func(b int)) {
	a := &m.Weights.CrossAttention.Attention.Self
	ln := a.LayerNorm2
	gamma, beta := ln.Weight.Data, ln.Bias.Data
	L, C := m.Config.NumLatents, m.Config.DModel
	h, w := o.Height, o.Width
	N := h * w
	F := fs.ConvAfterPatches.Out()
	K := FlowPatchChannels
	scale := float32(1 / math.Sqrt(float64(a.Query.Out())))
	kq := foldKey(m.encoderQueries(), L, &a.Key) // [L, C]

	fp := newFlowPositions(fs, h, w)
	rowCh, colCh, rowFeat, colFeat := fp.rowCh, fp.colCh, fp.rowFeat, fp.colFeat
	nr, nc := len(rowCh), len(colCh)
	// G = kq ⊙ γ by channel group; A = G_rows·rowFeatᵀ (+ e), B = G_cols·colFeatᵀ, E = G_f·Wc.
	gf, gRows, gCols := make([]float32, L*F), make([]float32, L*nr), make([]float32, L*nc)
	negG := make([]float32, L)
	for i := 0; i < L; i++ {
		var g float64
		for c := 0; c < C; c++ {
			g += float64(kq[i*C+c] * gamma[c])
		}
		negG[i] = float32(-g)
		for c := 0; c < F; c++ {
			gf[i*F+c] = kq[i*C+c] * gamma[c]
		}
		for j, c := range rowCh {
			gRows[i*nr+j] = kq[i*C+c] * gamma[c]
		}
		for j, c := range colCh {
			gCols[i*nc+j] = kq[i*C+c] * gamma[c]
		}
	}
	A, B := make([]float32, L*h), make([]float32, L*w)
	sgemm.Gemm(false, true, L, h, nr, 1, gRows, nr, rowFeat, nr, 0, A, h)
	sgemm.Gemm(false, true, L, w, nc, 1, gCols, nc, colFeat, nc, 0, B, w)
	E, e := make([]float32, L*K), make([]float32, L)
	sgemm.Gemm(false, false, L, K, F, 1, gf, F, fs.ConvAfterPatches.Weight.Data, K, 0, E, K)
	sgemm.Gemm(false, true, L, 1, F, 1, gf, F, fs.ConvAfterPatches.Bias.Data, F, 0, e, 1)
	for i := 0; i < L; i++ { // e_i is multiplied by r_p like the row terms
		for u := 0; u < h; u++ {
			A[i*h+u] += e[i]
		}
	}

	patches, feat := make([]float32, N*K), make([]float32, N*F)
	mu, r, rs, rf := make([]float32, N), make([]float32, N), make([]float32, N), make([]float32, N*F)
	zero := make([]float32, N)
	s0, s := make([]float32, flowLatentBlock*N), make([]float32, flowLatentBlock*N)
	rowM, colM := make([]float32, L*h), make([]float32, L*w)
	tf, sumMu, denom := make([]float32, L*F), make([]float64, L), make([]float64, L)
	acc := make([]float32, L*C)
	for b := 0; b < batch; b++ {
		img := frames[b*6*N : (b+1)*6*N]
		t0 := time.Now()
		par.For(N, 256, func(lo, hi int) {
			for p := lo; p < hi; p++ {
				pixelPatch(patches[p*K:(p+1)*K], img, h, w, p)
			}
		})
		linear(feat, patches, N, &fs.ConvAfterPatches)
		if o.Inputs != nil {
			fs.Tokens(o.Inputs[b*N*C:(b+1)*N*C], img, h, w)
		}
		o.Timings.Input += time.Since(t0)
		fp.stats(mu, r, feat, w, 0, N, C)
		par.For(N, 1024, func(lo, hi int) {
			for p := lo; p < hi; p++ {
				rs[p] = float32(float64(scale) * float64(r[p]))
				for c, x := range feat[p*F : (p+1)*F] {
					rf[p*F+c] = r[p] * x
				}
			}
		})
		// Both products with the pixels take them as their right operand: packed once per image
		// rather than once per block of latents.
		packedPatches := sgemm.PackB(true, K, N, patches, K)
		packedRF := sgemm.PackB(false, N, F, rf, F)
		var scores []float32
		if o.EncoderAttention != nil {
			scores = o.EncoderAttention[b*L*N : (b+1)*L*N]
		}
		for i0 := 0; i0 < L; i0 += flowLatentBlock {
			n := min(flowLatentBlock, L-i0)
			sgemm.GemmPacked(n, 1, E[i0*K:], K, false, packedPatches, nil, 0, s0, N)
			par.For(n, 1, func(lo, hi int) {
				rows, cols := make([]float64, h), make([]float64, w)
				for j := lo; j < hi; j++ {
					i := i0 + j
					si := s[j*N : (j+1)*N]
					vecmath.GridCombine(si, rs, [4][]float32{s0[j*N : (j+1)*N], mu, zero, zero}, A[i*h:(i+1)*h], B[i*w:(i+1)*w], [4]float32{1, negG[i], 0, 0})
					if scores != nil {
						copy(scores[i*N:(i+1)*N], si)
					}
					denom[i] = vecmath.ExpShiftSum(si, si, vecmath.Max(si))
					clear(cols)
					sumMu[i] = vecmath.GridMarginals(si, r, [4][]float32{mu, zero, zero, zero}, rows, cols)[0]
					for u, x := range rows {
						rowM[i*h+u] = float32(x)
					}
					for v, x := range cols {
						colM[i*w+v] = float32(x)
					}
				}
			})
			sgemm.GemmPacked(n, 1, s, N, false, packedRF, nil, 0, tf[i0*F:], F)
		}
		if scores != nil {
			attention.SoftmaxRows(scores, L, N, N)
		}
		tRows, tCols := make([]float32, L*nr), make([]float32, L*nc)
		sgemm.Gemm(false, false, L, nr, h, 1, rowM, h, rowFeat, nr, 0, tRows, nr)
		sgemm.Gemm(false, false, L, nc, w, 1, colM, w, colFeat, nc, 0, tCols, nc)
		par.For(L, 64, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				out, inv := acc[i*C:(i+1)*C], 1/denom[i]
				set := func(c int, t float64) {
					out[c] = float32(float64(gamma[c])*(t-sumMu[i])*inv) + beta[c]
				}
				for c := 0; c < F; c++ {
					set(c, float64(tf[i*F+c]))
				}
				for j, c := range rowCh {
					set(c, float64(tRows[i*nr+j]))
				}
				for j, c := range colCh {
					set(c, float64(tCols[i*nc+j]))
				}
			}
		})
		linear(ctx, acc, L, &a.Value)
		finish(b)
	}
}

// flowPositions is what the separable encoder and decoder need of the position features at one
// size: the token channels (≥ the projected patch width F) that depend on the row and on the
// column, their values along that axis, and their sums and sums of squares per row and column.
type flowPositions struct {
	rowCh, colCh     []int
	rowFeat, colFeat []float32 // [h, len(rowCh)], [w, len(colCh)]
	rowSum, rowSq    []float64 // [h]
	colSum, colSq    []float64 // [w]
}

func newFlowPositions(fs *FlowStage, h, w int) *flowPositions {
	F := fs.ConvAfterPatches.Out()
	P := fs.Fourier.Spec.Channels()
	pos := fs.Fourier.Features(h, w)
	fp := &flowPositions{rowSum: make([]float64, h), rowSq: make([]float64, h), colSum: make([]float64, w), colSq: make([]float64, w)}
	for c := 0; c < P; c++ {
		if fs.Fourier.Spec.Axis(c) == 0 {
			fp.rowCh = append(fp.rowCh, F+c)
		} else {
			fp.colCh = append(fp.colCh, F+c)
		}
	}
	nr, nc := len(fp.rowCh), len(fp.colCh)
	// A channel of one axis has the same value along the other: row 0 and column 0 give all.
	fp.rowFeat, fp.colFeat = make([]float32, h*nr), make([]float32, w*nc)
	for u := 0; u < h; u++ {
		for j, c := range fp.rowCh {
			v := pos[u*w*P+c-F]
			fp.rowFeat[u*nr+j] = v
			fp.rowSum[u] += float64(v)
			fp.rowSq[u] += float64(v) * float64(v)
		}
	}
	for v := 0; v < w; v++ {
		for j, c := range fp.colCh {
			x := pos[v*P+c-F]
			fp.colFeat[v*nc+j] = x
			fp.colSum[v] += float64(x)
			fp.colSq[v] += float64(x) * float64(x)
		}
	}
	return fp
}

// stats writes LayerNorm's mean and 1/√(σ² + eps) of the tokens of pixels p0 … p0+n−1, whose
// projected patches are feat [n, F]; C is the token width. Float64, as layerNorm computes them.
func (fp *flowPositions) stats(mu, r, feat []float32, w, p0, n, C int) {
	F := len(feat) / n
	par.For(n, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			u, v := (p0+i)/w, (p0+i)%w
			sum, sq := fp.rowSum[u]+fp.colSum[v], fp.rowSq[u]+fp.colSq[v]
			for _, x := range feat[i*F : (i+1)*F] {
				sum += float64(x)
				sq += float64(x) * float64(x)
			}
			mean := sum / float64(C)
			mu[i] = float32(mean)
			r[i] = float32(1 / math.Sqrt(max(sq/float64(C)-mean*mean, 0)+float64(float32(layerNormEps))))
		}
	})
}
