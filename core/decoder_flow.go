package core

import (
	"math"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
	"github.com/perceiverkit/perceiver/internal/vecmath"
)

// FlowDecoder is Hugging Face's PerceiverOpticalFlowDecoder: one query per pixel, and the queries
// are the input tokens themselves (FlowStage's). Each attends to the final latents (one head, no
// query residual), goes through the layer's MLP with its residual, then FinalLayer gives two
// channels, divided by RescaleFactor: the flow (u, v) at that pixel in Hugging Face's units.
// DeepMind's pixels are 20 times those (their FLOW_SCALE_FACTOR).
type FlowDecoder struct {
	CrossAttention Layer  `hf:"decoding_cross_attention"`
	FinalLayer     Linear `hf:"final_layer"`
	RescaleFactor  float32
}

// flowQueryChunk is how many pixels the decoder queries at a time: the scores of a chunk are
// flowQueryChunk × latents floats (16 MB for the released model), never the whole pixels ×
// latents matrix (1.5 GB at 368×496) unless the trace keeps it.
var flowQueryChunk = 2048

func newFlowDecoder(c *Config, fs *FlowStage) *FlowDecoder {
	C, D := fs.Channels(), c.DLatents
	// PerceiverBasicDecoder passes no qk/v channels: they follow cross_attention_shape_for_attention.
	qk, v := c.crossChannels(nil, nil, C, D)
	return &FlowDecoder{
		CrossAttention: newLayer(true, C, D, qk, v, 1, 1, false),
		FinalLayer:     newLinear(C, 2),
		RescaleFactor:  100,
	}
}

// decode queries the latents with every pixel's token, flowQueryChunk pixels at a time.
//
// With one head the query and key projections fold into one matrix, and the value and output
// projections into another, so that a chunk costs two products with the latents instead of four:
// scores = (LN1(x)·Wqᵀ + bq)·kᵀ = LN1(x)·(Wqᵀ·kᵀ) + bq·kᵀ with k = LN2(z)·Wkᵀ + bk, and
// (p·v)·Woᵀ + bo = p·(v·Woᵀ) + bo. The scores' product is then taken over the pixels' patches
// rather than their tokens (separableScores), 55 deep instead of d_model.
func (dec *FlowDecoder) decode(m *Model, hidden, frames []float32, batch int, tr Trace, o *Output) {
	fs := m.Weights.Input.(*FlowStage)
	l := &dec.CrossAttention
	a := &l.Attention.Self
	h, w := o.Height, o.Width
	N, C, L, D := o.Grid.Tokens(), o.InputChannels, o.Latents, o.Channels
	qk, vw := a.Query.Out(), a.Value.Out()
	scale := float32(1 / math.Sqrt(float64(qk)))
	wide := l.MLP.Dense1.Out()

	o.Flow = make([]float32, batch*N*2)
	if tr.DecoderAttention {
		o.DecoderAttention = make([]float32, batch*N*L)
	}
	if tr.DecoderOutput {
		o.DecoderOutput = make([]float32, batch*N*C)
	}
	chunk := min(flowQueryChunk, N)
	fp := newFlowPositions(fs, h, w)
	xn, y := make([]float32, chunk*C), make([]float32, chunk*C)
	hid := make([]float32, chunk*wide)
	s := make([]float32, chunk*L)
	flow := make([]float32, chunk*2)
	zn, k, v := make([]float32, L*D), make([]float32, L*qk), make([]float32, L*vw)
	qkT, bias, vo := make([]float32, C*L), make([]float32, L), make([]float32, L*C)
	for b := 0; b < batch; b++ {
		layerNorm(zn, hidden[b*L*D:(b+1)*L*D], L, a.LayerNorm2)
		linear(k, zn, L, &a.Key)
		linear(v, zn, L, &a.Value)
		sgemm.Gemm(true, true, C, L, qk, scale, a.Query.Weight.Data, C, k, qk, 0, qkT, L)
		sgemm.Gemm(false, true, 1, L, qk, scale, a.Query.Bias.Data, qk, k, qk, 0, bias, L)
		sgemm.Gemm(false, true, L, C, vw, 1, v, vw, l.Attention.Output.Dense.Weight.Data, vw, 0, vo, C)
		values := sgemm.PackB(false, L, C, vo, C)
		img := frames[b*6*h*w : (b+1)*6*h*w]
		score := dec.separableScores(fs, fp, img, h, w, qkT, bias)
		if projectKeys { // the plain path, for tests: LN1 of every token times the folded matrix
			score = productScores(fs, &a.LayerNorm1, img, h, w, qkT, bias)
		}
		for p0 := 0; p0 < N; p0 += chunk {
			n := min(chunk, N-p0)
			score(s[:n*L], p0, n)
			attention.SoftmaxRows(s, n, L, L)
			if o.DecoderAttention != nil {
				copy(o.DecoderAttention[(b*N+p0)*L:], s[:n*L])
			}
			sgemm.GemmPacked(n, 1, s, L, false, values, l.Attention.Output.Dense.Bias.Data, 0, y, C)
			// No query residual; the MLP half of the layer keeps its residual.
			layerNorm(xn[:n*C], y[:n*C], n, &l.LayerNorm)
			linear(hid[:n*wide], xn, n, &l.MLP.Dense1)
			gelu(hid[:n*wide])
			linearAdd(y[:n*C], hid, n, &l.MLP.Dense2)
			if o.DecoderOutput != nil {
				copy(o.DecoderOutput[(b*N+p0)*C:], y[:n*C])
			}
			linear(flow[:n*2], y, n, &dec.FinalLayer)
			out := o.Flow[(b*N+p0)*2 : (b*N+p0+n)*2]
			for i, f := range flow[:n*2] {
				out[i] = f / dec.RescaleFactor
			}
		}
	}
}

// flops counts the decoder's work on n pixels as Hugging Face computes it (multiply and add apart).
func (dec *FlowDecoder) flops(n, latents, d float64) float64 {
	a := &dec.CrossAttention.Attention.Self
	c, qk, v := float64(a.Query.In()), float64(a.Query.Out()), float64(a.Value.Out())
	f := 2 * n * c * qk             // queries
	f += 2 * latents * d * (qk + v) // keys and values of the latents
	f += 2 * n * latents * (qk + v) // scores and context
	f += 2 * n * v * c              // output projection
	f += 4 * n * c * float64(dec.CrossAttention.MLP.Dense1.Out())
	f += 2 * n * c * 2 // final layer
	return f
}

// productScores returns the decoder's scores for n pixels from p0 on, [n, L], as
// LN1(tokens)·qkT + bias: qkT [C, L] and bias [L] are the query and key projections folded.
func productScores(fs *FlowStage, ln *LayerNorm, img []float32, h, w int, qkT, bias []float32) func(s []float32, p0, n int) {
	C := fs.Channels()
	L := len(bias)
	scores := sgemm.PackB(false, C, L, qkT, L)
	var x []float32
	return func(s []float32, p0, n int) {
		if len(x) < n*C {
			x = make([]float32, n*C)
		}
		x := x[:n*C]
		fs.tokenRows(x, img, h, w, p0, n)
		layerNorm(x, x, n, ln)
		sgemm.GemmPacked(n, 1, x, C, false, scores, bias, 0, s, L)
	}
}

// separableScores returns the same scores as productScores from a product of depth 55 instead
// of d_model: LN1 is affine per token, LN1(x)_c = γ_c·r·(x_c − μ) + β_c, so with H = diag(γ)·qkT
// and g = Σ_c H_c,
//
//	LN1(x_p)·qkT + bias = r_p·(x_p·H − μ_p·g) + β·qkT + bias,
//
// and x_p·H splits into the projected patch, f_p·H_f = patch_p·(Wcᵀ·H_f) + bc·H_f, and the
// position channels, a term per row (A) and one per column (B) of the pixel. The per-latent
// constant β·qkT + bias rides in the product as a 55th patch value 1/r_p.
func (dec *FlowDecoder) separableScores(fs *FlowStage, fp *flowPositions, img []float32, h, w int, qkT, bias []float32) func(s []float32, p0, n int) {
	ln := &dec.CrossAttention.Attention.Self.LayerNorm1
	C, F, K := fs.Channels(), fs.ConvAfterPatches.Out(), FlowPatchChannels
	L := len(bias)
	gamma, beta := ln.Weight.Data, ln.Bias.Data
	H := make([]float32, C*L)
	negG := make([]float32, L)
	g := make([]float64, L)
	for c := 0; c < C; c++ {
		row := H[c*L : (c+1)*L]
		for i, q := range qkT[c*L : (c+1)*L] {
			row[i] = gamma[c] * q
			g[i] += float64(row[i])
		}
	}
	for i := range g {
		negG[i] = float32(-g[i])
	}
	// E [K+1, L]: Wcᵀ·H_f, then the constant row β·qkT + bias.
	E := make([]float32, (K+1)*L)
	sgemm.Gemm(true, false, K, L, F, 1, fs.ConvAfterPatches.Weight.Data, K, H, L, 0, E, L)
	copy(E[K*L:], bias)
	sgemm.Gemm(false, false, 1, L, C, 1, beta, C, qkT, L, 1, E[K*L:], L)
	// A [h, L] = rowFeat·H_rows + bc·H_f (multiplied by r_p like the rest), B [w, L] = colFeat·H_cols.
	nr, nc := len(fp.rowCh), len(fp.colCh)
	hRows, hCols := make([]float32, nr*L), make([]float32, nc*L)
	for j, c := range fp.rowCh {
		copy(hRows[j*L:(j+1)*L], H[c*L:(c+1)*L])
	}
	for j, c := range fp.colCh {
		copy(hCols[j*L:(j+1)*L], H[c*L:(c+1)*L])
	}
	A, B, e := make([]float32, h*L), make([]float32, w*L), make([]float32, L)
	sgemm.Gemm(false, false, 1, L, F, 1, fs.ConvAfterPatches.Bias.Data, F, H, L, 0, e, L)
	for u := 0; u < h; u++ {
		copy(A[u*L:(u+1)*L], e)
	}
	sgemm.Gemm(false, false, h, L, nr, 1, fp.rowFeat, nr, hRows, L, 1, A, L)
	sgemm.Gemm(false, false, w, L, nc, 1, fp.colFeat, nc, hCols, L, 0, B, L)
	packed := sgemm.PackB(false, K+1, L, E, L)
	zero, noRow := make([]float32, L), []float32{0}
	var patches, aug, feat, mu, r, s0 []float32 // grown to the largest chunk, reused
	return func(s []float32, p0, n int) {
		if len(mu) < n {
			patches, aug = make([]float32, n*K), make([]float32, n*(K+1))
			feat, mu, r = make([]float32, n*F), make([]float32, n), make([]float32, n)
			s0 = make([]float32, n*L)
		}
		patches, aug, feat, mu, r, s0 := patches[:n*K], aug[:n*(K+1)], feat[:n*F], mu[:n], r[:n], s0[:n*L]
		par.For(n, 256, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				pixelPatch(patches[i*K:(i+1)*K], img, h, w, p0+i)
			}
		})
		linear(feat, patches, n, &fs.ConvAfterPatches)
		fp.stats(mu, r, feat, w, p0, n, C)
		for i := 0; i < n; i++ {
			copy(aug[i*(K+1):], patches[i*K:(i+1)*K])
			aug[i*(K+1)+K] = 1 / r[i]
		}
		sgemm.GemmPacked(n, 1, aug, K+1, false, packed, nil, 0, s0, L)
		par.For(n, 64, func(lo, hi int) {
			rv := make([]float32, L)
			for i := lo; i < hi; i++ {
				u, v := (p0+i)/w, (p0+i)%w
				for j := range rv {
					rv[j] = r[i]
				}
				x := [4][]float32{s0[i*L : (i+1)*L], A[u*L : (u+1)*L], B[v*L : (v+1)*L], negG}
				vecmath.GridCombine(s[i*L:(i+1)*L], rv, x, noRow, zero, [4]float32{1, 1, 1, mu[i]})
			}
		})
	}
}

// executedFLOPs counts the decoder's matrix products as decode executes them on n pixels, but for
// the patch projection it redoes (counted with the stage): per image the latents' keys and values
// and the folded matrices; per pixel the scores (55 deep on the separable path, d_model deep
// otherwise), the pooled values through the folded output projection, the MLP and the final layer.
func (dec *FlowDecoder) executedFLOPs(n, latents, d float64, separable bool) float64 {
	l := &dec.CrossAttention
	a := &l.Attention.Self
	c, qk, v := float64(a.Query.In()), float64(a.Query.Out()), float64(a.Value.Out())
	f := 2 * latents * d * (qk + v) // keys and values of the latents
	f += 2 * c * latents * qk       // Wqᵀ·kᵀ
	f += 2 * latents * v * c        // v·Woᵀ
	depth := c                      // scores from LN1(tokens)
	if separable {
		depth = FlowPatchChannels + 1 // scores from the patches and 1/r
	}
	f += 2 * n * depth * latents // scores
	f += 2 * n * latents * c     // pooled values, output projection folded in
	f += 4 * n * c * float64(l.MLP.Dense1.Out())
	f += 2 * n * c * 2 // final layer
	return f
}
