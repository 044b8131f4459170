package core

import (
	"fmt"
	"math"
	"strconv"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// GradTrace chooses which gradients ForwardBackward keeps, as Trace chooses the forward pass's
// states: nothing is kept that was not asked for. y, the scalar differentiated, is one logit per
// image: the target's.
type GradTrace struct {
	Pixels           bool // ∂y/∂pixel_values, [B, 3, H, W]
	HiddenStates     bool // ∂y/∂hidden_states.i, each [B, L, D] (i as in Output.HiddenStates)
	SelfAttentions   bool // ∂y/∂attentions.j, each [B, heads, L, L]
	EncoderAttention bool // ∂y/∂cross_attentions.encoder, [B, cross heads, L, N]
	DecoderAttention bool // ∂y/∂cross_attentions.decoder, [B, 1, 1, L]

	// Targets holds each image's class, whose logit is y; nil, or a negative entry, means the
	// image's argmax.
	Targets []int

	// OnSelfAttention, when set, receives self-attention application j's (0-based) probabilities
	// and their gradient, each [heads, L, L], for image b, as soon as the backward pass has them:
	// in decreasing j. Reductions such as Chefer's relevance run without holding every map. Both
	// slices are reused after the call returns.
	OnSelfAttention func(b, j int, probs, grad []float32)
}

// Gradients are the kept results of a backward pass, row-major, shaped as the forward tensors
// they are the gradients of. Targets holds the class each image was differentiated for.
type Gradients struct {
	Targets          []int
	Pixels           []float32
	HiddenStates     [][]float32
	SelfAttentions   [][]float32
	EncoderAttention []float32
	DecoderAttention []float32
}

// Tensors names the kept gradients as `probe dump --grads` writes them: `grad.pixel_values`
// [B,3,H,W], `grad.hidden_states.{i}`, `grad.attentions.{j}`, `grad.cross_attentions.encoder`,
// `grad.cross_attentions.decoder`, shaped like the forward tensors of o.
func (g *Gradients) Tensors(o *Output) []*weights.Tensor {
	B, L, D, N := o.Batch, o.Latents, o.Channels, o.Grid.Tokens()
	var ts []*weights.Tensor
	put := func(name string, data []float32, shape ...int) {
		if data != nil {
			ts = append(ts, &weights.Tensor{Name: "grad." + name, DType: "F32", Shape: shape, Data: data})
		}
	}
	put("pixel_values", g.Pixels, B, 3, o.Height, o.Width)
	for i, h := range g.HiddenStates {
		put("hidden_states."+strconv.Itoa(i), h, B, L, D)
	}
	for j, a := range g.SelfAttentions {
		put("attentions."+strconv.Itoa(j), a, B, o.Heads, L, L)
	}
	put("cross_attentions.encoder", g.EncoderAttention, B, o.CrossHeads, L, N)
	put("cross_attentions.decoder", g.DecoderAttention, B, 1, 1, L)
	return ts
}

// ForwardBackward runs Forward with tr, then reverse mode from each image's target logit back to
// the pixels, keeping the gradients gt asks for. See doc.go (the backward pass) for the algebra
// and the memory layout. The returned Output holds what tr asked for, as Forward's would.
func (m *Model) ForwardBackward(pixels []float32, batch, h, w int, tr Trace, gt GradTrace) (*Output, *Gradients, error) {
	cfg := &m.Config
	dec := m.Weights.Classifier()
	if dec == nil {
		return nil, nil, fmt.Errorf("backward: the model has no classification decoder")
	}
	throughEncoder := gt.Pixels || gt.EncoderAttention
	if throughEncoder && m.Weights.CrossAttention.Heads != 1 {
		return nil, nil, fmt.Errorf("backward: the encoder cross-attention has %d heads; the backward pass takes one (as every released model has)", m.Weights.CrossAttention.Heads)
	}
	if gt.Targets != nil && len(gt.Targets) != batch {
		return nil, nil, fmt.Errorf("backward: %d targets for %d images", len(gt.Targets), batch)
	}
	labels := cfg.NumLabels()
	for _, t := range gt.Targets {
		if t >= labels {
			return nil, nil, fmt.Errorf("backward: target %d out of range: the model has %d classes (0…%d)", t, labels, labels-1)
		}
	}
	ftr := tr
	ftr.HiddenStates = true
	ftr.EncoderAttention = tr.EncoderAttention || throughEncoder
	o, err := m.Forward(pixels, batch, h, w, ftr)
	if err != nil {
		return nil, nil, err
	}
	hidden, probsEnc := o.HiddenStates, o.EncoderAttention
	if !tr.HiddenStates {
		o.HiddenStates = nil
	}
	if !tr.EncoderAttention {
		o.EncoderAttention = nil
	}

	g := &Gradients{Targets: make([]int, batch)}
	for b := range batch {
		t := -1
		if gt.Targets != nil {
			t = gt.Targets[b]
		}
		if t < 0 {
			t = argmax(o.Logits[b*labels : (b+1)*labels])
		}
		g.Targets[b] = t
	}

	L, D := cfg.NumLatents, cfg.DLatents
	J := len(hidden) - 1
	dh := make([]float32, batch*L*D)
	if gt.DecoderAttention {
		g.DecoderAttention = make([]float32, batch*L)
	}
	dec.backward(m, dh, g.DecoderAttention, hidden[J], batch, g.Targets)
	if gt.HiddenStates {
		g.HiddenStates = make([][]float32, J+1)
		g.HiddenStates[J] = append([]float32(nil), dh...)
	}
	if gt.SelfAttentions {
		g.SelfAttentions = make([][]float32, J)
	}
	if J > 0 {
		s := newLayerCache(batch*L, D, m.widest)
		per := len(m.Weights.SelfAttends)
		var scratch []float32 // the probabilities' gradient for the callback, when not kept
		for app := J; app >= 1; app-- {
			layer := &m.Weights.SelfAttends[(app-1)%per]
			size := layer.Heads * L * L
			var dprobs []float32
			switch {
			case gt.SelfAttentions:
				dprobs = make([]float32, batch*size)
				g.SelfAttentions[app-1] = dprobs
			case gt.OnSelfAttention != nil:
				if len(scratch) < batch*size {
					scratch = make([]float32, batch*size)
				}
				dprobs = scratch[:batch*size]
			}
			s.selfAttentionBackward(dh, dprobs, hidden[app-1], layer, batch, L)
			if gt.OnSelfAttention != nil {
				for b := range batch {
					gt.OnSelfAttention(b, app-1, s.probs[b*size:(b+1)*size], dprobs[b*size:(b+1)*size])
				}
			}
			if gt.HiddenStates {
				g.HiddenStates[app-1] = append([]float32(nil), dh...)
			}
		}
	}
	if !throughEncoder {
		return o, g, nil
	}
	N := o.Grid.Tokens()
	if gt.Pixels {
		g.Pixels = make([]float32, len(pixels))
	}
	if gt.EncoderAttention {
		g.EncoderAttention = make([]float32, batch*L*N)
	}
	e := m.newEncoderBackward(o.Grid)
	for b := range batch {
		var dimg, dprobs []float32
		if g.Pixels != nil {
			dimg = g.Pixels[b*3*h*w : (b+1)*3*h*w]
		}
		if g.EncoderAttention != nil {
			dprobs = g.EncoderAttention[b*L*N : (b+1)*L*N]
		}
		err := e.backward(dimg, dprobs, dh[b*L*D:(b+1)*L*D], pixels[b*3*h*w:(b+1)*3*h*w], probsEnc[b*L*N:(b+1)*L*N])
		if err != nil {
			return nil, nil, err
		}
	}
	return o, g, nil
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// layerCache holds one layer's recomputed activations over rows = B·L positions, and the
// scratch of its backward. One cache serves every application of the latent stack in turn.
type layerCache struct {
	rows, d           int
	xn1, q, k, v, ctx []float32 // LN1(x) and the attention's projections and context
	x1, xn2, a1       []float32 // after the attention, its LayerNorm, the MLP's pre-GELU
	dq, dk, dv, dctx  []float32
	dx1, dxn, da1     []float32
	probs             []float32 // [B, heads, L, L], allocated at the first layer
	ds                []float32 // [L, L] softmax scratch
}

func newLayerCache(rows, d, wide int) *layerCache {
	f := func(n int) []float32 { return make([]float32, n) }
	return &layerCache{
		rows: rows, d: d,
		xn1: f(rows * d), q: f(rows * wide), k: f(rows * wide), v: f(rows * wide), ctx: f(rows * wide),
		x1: f(rows * d), xn2: f(rows * d), a1: f(rows * wide),
		dq: f(rows * wide), dk: f(rows * wide), dv: f(rows * wide), dctx: f(rows * wide),
		dx1: f(rows * d), dxn: f(rows * d), da1: f(rows * wide),
	}
}

// selfAttentionBackward recomputes one self-attention layer's forward from its input x [B·L, D],
// then replaces dh, the gradient with respect to its output, by the gradient with respect to x.
// dprobs, when not nil, receives the gradient with respect to the probabilities [B, heads, L, L].
func (s *layerCache) selfAttentionBackward(dh, dprobs, x []float32, l *Layer, batch, L int) {
	a := &l.Attention.Self
	rows := s.rows
	qk, vw := a.Query.Out(), a.Value.Out()
	heads := l.Heads
	dqk, dvh := qk/heads, vw/heads
	scale := float32(1 / math.Sqrt(float64(dqk)))
	if need := batch * heads * L * L; len(s.probs) < need {
		s.probs = make([]float32, need)
		s.ds = make([]float32, L*L)
	}
	// Forward, keeping what the backward needs.
	layerNorm(s.xn1, x, rows, &a.LayerNorm1)
	q, k, v, ctx := s.q[:rows*qk], s.k[:rows*qk], s.v[:rows*vw], s.ctx[:rows*vw]
	linear(q, s.xn1, rows, &a.Query)
	linear(k, s.xn1, rows, &a.Key)
	linear(v, s.xn1, rows, &a.Value)
	size := heads * L * L
	for b := 0; b < batch; b++ {
		attention.MultiHead(ctx[b*L*vw:(b+1)*L*vw], s.probs[b*size:(b+1)*size], q[b*L*qk:], k[b*L*qk:], v[b*L*vw:], L, L, heads, dqk, dvh, scale)
	}
	if l.QueryResidual {
		copy(s.x1, x)
		linearAdd(s.x1, ctx, rows, &l.Attention.Output.Dense)
	} else {
		linear(s.x1, ctx, rows, &l.Attention.Output.Dense)
	}
	wide := l.MLP.Dense1.Out()
	a1 := s.a1[:rows*wide]
	layerNorm(s.xn2, s.x1, rows, &l.LayerNorm)
	linear(a1, s.xn2, rows, &l.MLP.Dense1)

	// Backward of x2 = x1 + MLP(LN(x1)).
	da1 := s.da1[:rows*wide]
	mlpBackward(s.dx1, da1, s.dxn, dh, s.x1, a1, rows, l)
	// Backward of x1 = x + Wo·attention(LN1(x)).
	dctx := s.dctx[:rows*vw]
	linearBackward(dctx, s.dx1, rows, &l.Attention.Output.Dense, false)
	dq, dk, dv := s.dq[:rows*qk], s.dk[:rows*qk], s.dv[:rows*vw]
	for b := 0; b < batch; b++ {
		var dp []float32
		if dprobs != nil {
			dp = dprobs[b*size : (b+1)*size]
		}
		multiHeadBackward(dq[b*L*qk:(b+1)*L*qk], dk[b*L*qk:(b+1)*L*qk], dv[b*L*vw:(b+1)*L*vw], dp, s.ds,
			q[b*L*qk:(b+1)*L*qk], k[b*L*qk:(b+1)*L*qk], v[b*L*vw:(b+1)*L*vw], s.probs[b*size:(b+1)*size], dctx[b*L*vw:(b+1)*L*vw],
			L, L, heads, dqk, dvh, scale)
	}
	linearBackward(s.dxn, dq, rows, &a.Query, false)
	linearBackward(s.dxn, dk, rows, &a.Key, true)
	linearBackward(s.dxn, dv, rows, &a.Value, true)
	if l.QueryResidual {
		copy(dh, s.dx1)
	} else {
		clear(dh)
	}
	layerNormBackward(dh, x, s.dxn, rows, &a.LayerNorm1, true)
}

// mlpBackward writes into dx1 [rows, D] the gradient with respect to x1 of x2 = x1 + MLP(LN(x1))
// given dx2 [rows, D]; a1 is Dense1's output (GELU's input), overwritten by nothing. da1 and dxn
// are scratch.
func mlpBackward(dx1, da1, dxn, dx2, x1, a1 []float32, rows int, l *Layer) {
	linearBackward(da1, dx2, rows, &l.MLP.Dense2, false)
	geluBackward(da1, a1)
	linearBackward(dxn, da1, rows, &l.MLP.Dense1, false)
	copy(dx1, dx2)
	layerNormBackward(dx1, x1, dxn, rows, &l.LayerNorm, true)
}

// backward carries each image's target logit back through the classification decoder to the
// final latents hidden [B, L, D], writing the gradient into dh [B, L, D] and, when dprobs is not
// nil, the gradient with respect to the decoder's attention into dprobs [B, L]. The decoder has
// one query and one head, so it runs folded as in decode: scores = scale·kq·LN2(h)ᵀ, with
// kq = q·Wk, and pooled = p·LN2(h) before the value projection.
func (dec *ClassificationDecoder) backward(m *Model, dh, dprobs, hidden []float32, batch int, targets []int) {
	cfg := &m.Config
	l := &dec.CrossAttention
	a := &l.Attention.Self
	L, D := cfg.NumLatents, cfg.DLatents
	qk, vw := a.Query.Out(), a.Value.Out()
	scale := float32(1 / math.Sqrt(float64(qk/l.Heads)))
	query := dec.Query.Data
	qn := make([]float32, D)
	layerNorm(qn, query, 1, &a.LayerNorm1)
	q := make([]float32, qk)
	linear(q, qn, 1, &a.Query)
	kq := foldKey(q, 1, &a.Key) // [D]

	norm := make([]float32, batch*L*D)
	p := make([]float32, batch*L)
	pooled := make([]float32, batch*D)
	for b := 0; b < batch; b++ {
		xn := norm[b*L*D : (b+1)*L*D]
		layerNorm(xn, hidden[b*L*D:(b+1)*L*D], L, a.LayerNorm2)
		pb := p[b*L : (b+1)*L]
		sgemm.Gemm(false, true, 1, L, D, scale, kq, D, xn, D, 0, pb, L)
		attention.SoftmaxRows(pb, 1, L, L)
		sgemm.Gemm(false, false, 1, D, L, 1, pb, L, xn, D, 0, pooled[b*D:(b+1)*D], D)
	}
	ctx := make([]float32, batch*vw)
	linear(ctx, pooled, batch, &a.Value)
	x1 := make([]float32, batch*D)
	for b := 0; b < batch; b++ {
		copy(x1[b*D:(b+1)*D], query)
	}
	linearAdd(x1, ctx, batch, &l.Attention.Output.Dense)
	xn2 := make([]float32, batch*D)
	layerNorm(xn2, x1, batch, &l.LayerNorm)
	wide := l.MLP.Dense1.Out()
	a1 := make([]float32, batch*wide)
	linear(a1, xn2, batch, &l.MLP.Dense1)

	// y = logits[target]: ∂y/∂out is the target's row of the final layer.
	fin := &dec.FinalLayer
	dout := make([]float32, batch*D)
	for b, t := range targets {
		copy(dout[b*D:(b+1)*D], fin.Weight.Data[t*fin.In():(t+1)*fin.In()])
	}
	dx1 := make([]float32, batch*D)
	mlpBackward(dx1, make([]float32, batch*wide), make([]float32, batch*D), dout, x1, a1, batch, l)
	dctx := make([]float32, batch*vw)
	linearBackward(dctx, dx1, batch, &l.Attention.Output.Dense, false)
	dpooled := make([]float32, batch*D)
	linearBackward(dpooled, dctx, batch, &a.Value, false)
	dp := make([]float32, L)
	dxn := make([]float32, L*D)
	for b := 0; b < batch; b++ {
		xn, pb, dpb := norm[b*L*D:(b+1)*L*D], p[b*L:(b+1)*L], dpooled[b*D:(b+1)*D]
		// Hugging Face's probabilities multiply the projected values LN2(h)·Wvᵀ + bv, so their
		// gradient is LN2(h)·(Wvᵀ·dctx) + bv·dctx; the constant cancels in the softmax.
		sgemm.Gemm(false, true, 1, L, D, 1, dpb, D, xn, D, 0, dp, L)
		var bias float32
		for i, v := range a.Value.Bias.Data {
			bias += v * dctx[b*vw+i]
		}
		for i := range dp {
			dp[i] += bias
		}
		if dprobs != nil {
			copy(dprobs[b*L:(b+1)*L], dp)
		}
		softmaxBackward(dp, pb, dp, 1, L, L)
		// dxn = p ⊗ dpooled + scale·ds ⊗ kq.
		for i := 0; i < L; i++ {
			row := dxn[i*D : (i+1)*D]
			pi, si := pb[i], scale*dp[i]
			for c := range row {
				row[c] = pi*dpb[c] + si*kq[c]
			}
		}
		layerNormBackward(dh[b*L*D:(b+1)*L*D], hidden[b*L*D:(b+1)*L*D], dxn, L, a.LayerNorm2, false)
	}
}

// encoderBackward carries the gradient with respect to hidden state 0 back through the encoder
// cross-attention (one head, folded: scores = scale·kq·LN2(x)ᵀ whichever path the forward took)
// and the input stage to one image's pixels.
type encoderBackward struct {
	m      *Model
	grid   TokenGrid
	kq     []float32 // [L, C]
	tokens []float32 // [N, C]
	xn     []float32 // LN2(tokens)
	dxn    []float32
	dp, ds []float32 // [L, N]
}

func (m *Model) newEncoderBackward(g TokenGrid) *encoderBackward {
	a := &m.Weights.CrossAttention.Attention.Self
	L, N, C := m.Config.NumLatents, g.Tokens(), m.Config.DModel
	return &encoderBackward{
		m: m, grid: g,
		kq:     foldKey(m.encoderQueries(), L, &a.Key),
		tokens: make([]float32, N*C), xn: make([]float32, N*C), dxn: make([]float32, N*C),
		dp: make([]float32, L*N), ds: make([]float32, L*N),
	}
}

// backward: dh0 [L, D] is the gradient with respect to hidden state 0, img [3, h, w] the image,
// probs [L, N] its encoder attention from the forward pass. dimg [3, h, w] and dprobs [L, N]
// receive the gradients when not nil.
func (e *encoderBackward) backward(dimg, dprobs, dh0, img, probs []float32) error {
	m, g := e.m, e.grid
	cfg := &m.Config
	l := &m.Weights.CrossAttention
	a := &l.Attention.Self
	L, D, N, C := cfg.NumLatents, cfg.DLatents, g.Tokens(), cfg.DModel
	qk, vw := a.Query.Out(), a.Value.Out()
	scale := float32(1 / math.Sqrt(float64(qk)))
	h, w := g.Height, g.Width

	m.Weights.Input.Tokens(e.tokens, img, h, w)
	layerNorm(e.xn, e.tokens, N, a.LayerNorm2)
	// Recompute the attention half's output x1 = latents + Wo·(Wv·(P·LN2(x)) + bv) + bo.
	acc := make([]float32, L*C)
	sgemm.Gemm(false, false, L, C, N, 1, probs, N, e.xn, C, 0, acc, C)
	ctx := make([]float32, L*vw)
	linear(ctx, acc, L, &a.Value)
	x1 := make([]float32, L*D)
	if l.QueryResidual {
		copy(x1, m.Weights.Latents.Data)
		linearAdd(x1, ctx, L, &l.Attention.Output.Dense)
	} else {
		linear(x1, ctx, L, &l.Attention.Output.Dense)
	}
	xn2 := make([]float32, L*D)
	layerNorm(xn2, x1, L, &l.LayerNorm)
	wide := l.MLP.Dense1.Out()
	a1 := make([]float32, L*wide)
	linear(a1, xn2, L, &l.MLP.Dense1)

	dx1 := make([]float32, L*D)
	mlpBackward(dx1, make([]float32, L*wide), make([]float32, L*D), dh0, x1, a1, L, l)
	dctx := make([]float32, L*vw)
	linearBackward(dctx, dx1, L, &l.Attention.Output.Dense, false)
	dacc := make([]float32, L*C)
	linearBackward(dacc, dctx, L, &a.Value, false)
	// dP = dacc·LN2(x)ᵀ + bv·dctx per row (the values' bias; it cancels in the softmax).
	dp := e.dp
	if dprobs != nil {
		dp = dprobs
	}
	sgemm.Gemm(false, true, L, N, C, 1, dacc, C, e.xn, C, 0, dp, N)
	if dprobs != nil {
		for i := 0; i < L; i++ {
			var bias float32
			for c, v := range a.Value.Bias.Data {
				bias += v * dctx[i*vw+c]
			}
			row := dp[i*N : (i+1)*N]
			for n := range row {
				row[n] += bias
			}
		}
	}
	softmaxBackward(e.ds, probs, dp, L, N, N)
	if dimg == nil {
		return nil
	}
	// dLN2(x) = scale·dSᵀ·kq + Pᵀ·dacc.
	sgemm.Gemm(true, false, N, C, L, scale, e.ds, N, e.kq, C, 0, e.dxn, C)
	sgemm.Gemm(true, false, N, C, L, 1, probs, N, dacc, C, 1, e.dxn, C)
	dtokens := make([]float32, N*C)
	layerNormBackward(dtokens, e.tokens, e.dxn, N, a.LayerNorm2, false)
	return inputBackward(m.Weights.Input, dimg, dtokens, img, h, w)
}
