package core

import (
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// Trace chooses what a forward pass keeps besides the logits. Nothing is kept that was not asked
// for: without encoder attention the cross-attention never holds the latents × pixels score
// matrix (it goes one latent at a time, or streams over pixel chunks with several heads).
type Trace struct {
	Inputs           bool // pixels with their position features, [B, N, C]
	HiddenStates     bool // the latents after the cross-attention and after each self-attention application
	SelfAttentions   bool // every self-attention application's probabilities
	EncoderAttention bool // the encoder cross-attention probabilities, latents over pixels
	DecoderAttention bool // the classification query's attention over latents
	DecoderOutput    bool // the decoder output before the final linear layer

	// OnSelfAttention, when set, receives the probabilities [heads, L, L] of self-attention
	// application j (0-based) for image b as soon as they are computed, whether or not
	// SelfAttentions keeps them: reductions such as attention rollout run without holding all maps.
	// probs is reused after the call returns.
	OnSelfAttention func(b, j int, probs []float32)

	// OnHiddenState, when set, receives hidden state i (0 after the cross-attention, j after
	// self-attention application j) of the whole batch, [B, L, D], as soon as it exists, whether
	// or not HiddenStates keeps it. hidden is overwritten after the call returns.
	OnHiddenState func(i int, hidden []float32)
}

// TraceAll keeps every internal state.
var TraceAll = Trace{Inputs: true, HiddenStates: true, SelfAttentions: true, EncoderAttention: true, DecoderAttention: true, DecoderOutput: true}

// Output holds the results of a forward pass over a batch of B images, each row-major.
//
// Hugging Face's hidden_states repeats each block boundary; HiddenStates holds the distinct states
// only: index 0 after the cross-attention, index j after the j-th self-attention application.
type Output struct {
	Batch, Height, Width int       // the images
	Grid                 TokenGrid // the input stage's tokens on each image (N = Grid.Tokens())
	Latents, Channels    int       // L and D
	InputChannels        int       // C, a token's width: d_model
	Heads                int       // self-attention heads
	CrossHeads           int       // encoder cross-attention heads

	Logits           []float32   // [B, labels]
	Inputs           []float32   // [B, N, C]
	HiddenStates     [][]float32 // each [B, L, D]
	SelfAttentions   [][]float32 // each [B, heads, L, L]
	EncoderAttention []float32   // [B, cross heads, L, N]
	DecoderAttention []float32   // [B, 1, 1, L]; the flow decoder's [B, 1, N, L]
	DecoderOutput    []float32   // [B, 1, D]; the flow decoder's [B, N, C]
	Flow             []float32   // the flow model's output [B, H, W, 2], in Hugging Face's units (pixels/20)

	// Time spent in each stage: the input stage (tokens, when they are made apart from the
	// attention), the encoder cross-attention, the latent self-attention stack, and the decoder.
	Timings struct{ Input, Encoder, Latents, Decoder time.Duration }
}

// projectKeys turns off the single-head shortcuts of the encoder (see encode), so that tests can
// check the general path against the same reference; streamTokens keeps the single-head fold but
// turns off its specialisations to an input stage (separable Fourier pixels, learned tokens).
var projectKeys, streamTokens = false, false

// pixelChunk is how many pixels the general (several-head) cross-attention streams at a time:
// large enough for efficient matrix products, small enough that its buffers stay in the low
// megabytes.
const pixelChunk = 4096

// Forward runs the model on pixels [batch, 3, h, w] (normalised, as from the image processor).
// The input size may differ from the one the model was built for where the input stage allows
// it (Fourier features follow any size; learned positions do not).
func (m *Model) Forward(pixels []float32, batch, h, w int, tr Trace) (*Output, error) {
	if _, ok := m.Weights.Input.(*FlowStage); ok {
		return nil, fmt.Errorf("forward: the optical flow model takes two frames: use ForwardFrames")
	}
	return m.forward(pixels, batch, h, w, tr)
}

// forward runs the model on its input [batch, pixelChannels, h, w]: an image, or two frames.
func (m *Model) forward(pixels []float32, batch, h, w int, tr Trace) (*Output, error) {
	o, hidden, err := m.encodeBatch(pixels, batch, h, w, tr)
	if err != nil {
		return nil, err
	}
	m.latentsAndDecoder(o, hidden, pixels, batch, tr)
	return o, nil
}

// Encode runs the input stage and the encoder cross-attention layer only, the part of Forward
// that sees the pixels: o.HiddenStates[0] is hidden state 0 [batch, L, D] whatever tr says, and
// Inputs and EncoderAttention are kept as tr asks. Continue with ForwardLatents; the two together
// compute what Forward does, bit for bit.
func (m *Model) Encode(pixels []float32, batch, h, w int, tr Trace) (*Output, error) {
	o, hidden, err := m.encodeBatch(pixels, batch, h, w, tr)
	if err != nil {
		return nil, err
	}
	if !tr.HiddenStates {
		o.HiddenStates = [][]float32{hidden}
	}
	return o, nil
}

// ForwardLatents runs the latent self-attention stack and the decoder from hidden state 0 (the
// latents after the encoder cross-attention) of batch images, [batch, L, D], which it does not
// modify: interventions on the latents, such as knocking one out, without rerunning the encoder.
// The Output has no Grid, Inputs or EncoderAttention; HiddenStates, when kept, starts with a copy
// of hidden, and OnHiddenState is called for states 1 onwards.
func (m *Model) ForwardLatents(hidden []float32, batch int, tr Trace) (*Output, error) {
	if _, ok := m.Weights.Decoder.(*FlowDecoder); ok {
		return nil, fmt.Errorf("forward from latents: the optical flow decoder queries with the frames: use ForwardFrames")
	}
	cfg := &m.Config
	L, D := cfg.NumLatents, cfg.DLatents
	if batch < 1 || len(hidden) != batch*L*D {
		return nil, fmt.Errorf("forward from latents: hidden state has %d values, want %d×%d×%d", len(hidden), batch, L, D)
	}
	o := &Output{Batch: batch, Latents: L, Channels: D, InputChannels: cfg.DModel,
		Heads: cfg.NumSelfAttentionHeads, CrossHeads: cfg.NumCrossAttentionHeads}
	own := append([]float32(nil), hidden...)
	if tr.HiddenStates {
		o.HiddenStates = append(o.HiddenStates, append([]float32(nil), hidden...))
	}
	m.latentsAndDecoder(o, own, nil, batch, tr)
	return o, nil
}

// encodeBatch runs the encoder for Forward and Encode and records hidden state 0, which it
// returns; the buffer goes on through the latent stack.
func (m *Model) encodeBatch(pixels []float32, batch, h, w int, tr Trace) (*Output, []float32, error) {
	o, err := m.newOutput(pixels, batch, h, w, tr)
	if err != nil {
		return nil, nil, err
	}
	L, D := o.Latents, o.Channels
	hidden := make([]float32, batch*L*D)
	start := time.Now()
	m.encode(hidden, pixels, batch, o.Grid, tr, o)

	// The MLP half of the cross-attention layer runs on all images at once.
	s := newStack(batch*L, D, m.widest)
	s.feedForward(hidden, &m.Weights.CrossAttention)
	o.Timings.Encoder = time.Since(start) - o.Timings.Input
	if tr.HiddenStates {
		o.HiddenStates = append(o.HiddenStates, append([]float32(nil), hidden...))
	}
	if tr.OnHiddenState != nil {
		tr.OnHiddenState(0, hidden)
	}
	return o, hidden, nil
}

// latentsAndDecoder runs the latent stack on hidden state 0 in hidden [B, L, D] (overwritten),
// then the decoder, recording into o what tr asks for. pixels is the model input, for the flow
// decoder (nil from ForwardLatents, which refuses the flow model).
func (m *Model) latentsAndDecoder(o *Output, hidden, pixels []float32, batch int, tr Trace) {
	cfg := &m.Config
	W := &m.Weights
	L, D := cfg.NumLatents, cfg.DLatents
	s := newStack(batch*L, D, m.widest)
	start := time.Now()
	probs := make([]float32, cfg.NumSelfAttentionHeads*L*L)
	j := 0
	for blk := 0; blk < cfg.NumBlocks; blk++ {
		for i := range W.SelfAttends {
			layer := &W.SelfAttends[i]
			var kept []float32
			if tr.SelfAttentions {
				kept = make([]float32, batch*layer.Heads*L*L)
			}
			s.selfAttention(hidden, layer, batch, L, func(b int, p []float32) {
				if kept != nil {
					copy(kept[b*len(p):], p)
				}
				if tr.OnSelfAttention != nil {
					tr.OnSelfAttention(b, j, p)
				}
			}, probs)
			s.feedForward(hidden, layer)
			if kept != nil {
				o.SelfAttentions = append(o.SelfAttentions, kept)
			}
			if tr.HiddenStates {
				o.HiddenStates = append(o.HiddenStates, append([]float32(nil), hidden...))
			}
			if tr.OnHiddenState != nil {
				tr.OnHiddenState(j+1, hidden)
			}
			j++
		}
	}
	o.Timings.Latents = time.Since(start)
	start = time.Now()
	W.Decoder.decode(m, hidden, pixels, batch, tr, o)
	o.Timings.Decoder = time.Since(start)
}

// newOutput checks a batch of pixels [batch, planes, h, w] against the model and lays out its
// Output: the sizes, the token grid, and the inputs buffer when tr keeps them.
func (m *Model) newOutput(pixels []float32, batch, h, w int, tr Trace) (*Output, error) {
	cfg := &m.Config
	if batch < 1 || h < 1 || w < 1 {
		return nil, fmt.Errorf("forward: batch %d of %d×%d images is empty", batch, h, w)
	}
	if pc := pixelChannels(m.Weights.Input); len(pixels) != batch*pc*h*w {
		return nil, fmt.Errorf("forward: pixel_values has %d values, want %d×%d×%d×%d", len(pixels), batch, pc, h, w)
	}
	grid, err := m.Weights.Input.Grid(h, w)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	o := &Output{
		Batch: batch, Height: h, Width: w, Grid: grid, Latents: cfg.NumLatents, Channels: cfg.DLatents,
		InputChannels: cfg.DModel, Heads: cfg.NumSelfAttentionHeads, CrossHeads: cfg.NumCrossAttentionHeads,
	}
	if tr.Inputs {
		o.Inputs = make([]float32, batch*grid.Tokens()*cfg.DModel)
	}
	return o, nil
}

// maxWidth is the largest dimension of any linear layer: enough columns for every activation
// buffer of the latent stack and the decoder.
func maxWidth(w *Weights) int {
	n := 0
	walkTagged(reflect.ValueOf(w).Elem(), "", func(_ string, v reflect.Value) bool {
		if v.Type() != linearType {
			return false
		}
		l := v.Addr().Interface().(*Linear)
		n = max(n, l.In(), l.Out())
		return true
	})
	return n
}

// stack holds the buffers of the latent stack for rows = B·L positions.
type stack struct {
	rows, d   int
	norm      []float32 // [rows, d]
	q, k, v   []float32 // [rows, ≤ wide]
	ctx       []float32 // [rows, ≤ wide]
	mlpHidden []float32 // [rows, widening·d]
}

func newStack(rows, d, wide int) *stack {
	return &stack{
		rows: rows, d: d,
		norm: make([]float32, rows*d),
		q:    make([]float32, rows*wide), k: make([]float32, rows*wide), v: make([]float32, rows*wide),
		ctx:       make([]float32, rows*wide),
		mlpHidden: make([]float32, rows*wide),
	}
}

// feedForward replaces x (the attention output, [rows, d]) by x + MLP(LN(x)).
func (s *stack) feedForward(x []float32, l *Layer) {
	rows := len(x) / s.d
	layerNorm(s.norm[:rows*s.d], x, rows, &l.LayerNorm)
	hid := s.mlpHidden[:rows*l.MLP.Dense1.Out()]
	linear(hid, s.norm, rows, &l.MLP.Dense1)
	gelu(hid)
	linearAdd(x, hid, rows, &l.MLP.Dense2)
}

// selfAttention replaces x [B·L, d] by the attention half of a self-attention layer:
// x (+ residual) + Wo·attention(LN1(x)). seen receives each image's probabilities [heads, L, L].
func (s *stack) selfAttention(x []float32, l *Layer, batch, L int, seen func(b int, probs []float32), probs []float32) {
	a := &l.Attention.Self
	rows := batch * L
	layerNorm(s.norm, x, rows, &a.LayerNorm1)
	qk, vw := a.Query.Out(), a.Value.Out()
	linear(s.q[:rows*qk], s.norm, rows, &a.Query)
	linear(s.k[:rows*qk], s.norm, rows, &a.Key)
	linear(s.v[:rows*vw], s.norm, rows, &a.Value)
	dqk, dv := qk/l.Heads, vw/l.Heads
	scale := float32(1 / math.Sqrt(float64(dqk)))
	p := probs[:l.Heads*L*L]
	for b := 0; b < batch; b++ {
		attention.MultiHeadPrec(a.Query.precision, s.ctx[b*L*vw:(b+1)*L*vw], p, s.q[b*L*qk:], s.k[b*L*qk:], s.v[b*L*vw:], L, L, l.Heads, dqk, dv, scale)
		seen(b, p)
	}
	if l.QueryResidual {
		linearAdd(x, s.ctx[:rows*vw], rows, &l.Attention.Output.Dense)
	} else {
		linear(x, s.ctx[:rows*vw], rows, &l.Attention.Output.Dense)
	}
}

// tokenAttention is a single-head encoder attention specialised to an input stage: it computes,
// for one image img [3, h·w], acc [L, C] = Σ_p w_ip·LN2(x_p) with w_i = softmax_p(kq_i·LN2(x_p)/√d)
// without forming the tokens x_p, and keeps the raw scores [L, N] (up to a constant per latent) in
// keep when it is not nil.
type tokenAttention interface {
	attend(acc, img, keep []float32)
}

// encode writes into hidden [B, L, D] the attention half of the encoder cross-attention:
// latents + Wo·attention(LN1(latents) → LN2(tokens)), choosing the cheapest exact path:
//
//   - one head over pixels with Fourier features: the separable encoder (encoder.go), which never
//     forms the tokens nor a product over them;
//   - one head over learned tokens: the learned encoder (encoder_learned.go), with one product
//     over the tokens instead of two;
//   - one head over any other tokens: the key and value projections folded into the queries and
//     the output (foldKey), so the latents attend straight over LN2(tokens);
//   - several heads: keys and values projected per token.
//
// The last two stream the tokens in chunks through an online softmax, whether or not the map is
// kept (it is filled with the raw scores chunk by chunk and normalised at the end).
func (m *Model) encode(hidden, pixels []float32, batch int, g TokenGrid, tr Trace, o *Output) {
	cfg := &m.Config
	l := &m.Weights.CrossAttention
	a := &l.Attention.Self
	L, D := cfg.NumLatents, cfg.DLatents
	N, C := g.Tokens(), cfg.DModel
	h, w := g.Height, g.Width
	qk, vw := a.Query.Out(), a.Value.Out()
	heads := l.Heads
	scale := float32(1 / math.Sqrt(float64(qk/heads)))
	latents := m.Weights.Latents.Data
	input := m.Weights.Input

	if tr.EncoderAttention {
		o.EncoderAttention = make([]float32, batch*heads*L*N)
	}
	ctx := make([]float32, L*vw)
	finish := func(b int) {
		out := hidden[b*L*D : (b+1)*L*D]
		if l.QueryResidual {
			copy(out, latents)
			linearAdd(out, ctx, L, &l.Attention.Output.Dense)
		} else {
			linear(out, ctx, L, &l.Attention.Output.Dense)
		}
	}

	// One head: q·(x·Wkᵀ + bk)ᵀ = (q·Wk)·xᵀ + q·bk, whose constant q·bk per row cancels in the
	// softmax, and Σ p·(x·Wvᵀ + bv) = (Σ p·x)·Wvᵀ + bv because each row of p sums to 1. So the
	// latents attend with kq = q·Wk over LN2(x), and the value projection is applied once to the
	// result.
	folded := heads == 1 && !projectKeys
	if fs, ok := input.(*FlowStage); ok && folded && !streamTokens {
		m.encodeFlow(fs, pixels, batch, o, ctx, finish)
		return
	}
	var special tokenAttention
	if folded && !streamTokens {
		switch st := input.(type) {
		case *FourierStage:
			special = m.separableFor(st, h, w)
		case *LearnedStage:
			special = m.learnedFor(st)
		}
	}
	if special != nil {
		acc := make([]float32, L*C)
		for b := 0; b < batch; b++ {
			img := pixels[b*3*h*w : (b+1)*3*h*w]
			if o.Inputs != nil {
				t0 := time.Now()
				input.Tokens(o.Inputs[b*N*C:(b+1)*N*C], img, h, w)
				o.Timings.Input += time.Since(t0)
			}
			var scores []float32
			if o.EncoderAttention != nil {
				scores = o.EncoderAttention[b*L*N : (b+1)*L*N]
			}
			special.attend(acc, img, scores)
			if scores != nil {
				attention.SoftmaxRows(scores, L, N, N)
			}
			linear(ctx, acc, L, &a.Value)
			finish(b)
		}
		return
	}

	q := m.encoderQueries()
	kw, vwid := qk, vw // widths of what the queries meet: projected keys and values, or LN2(x) itself
	if folded {
		q = foldKey(q, L, &a.Key)
		kw, vwid = C, C
	}
	chunk := min(pixelChunk, N)
	pc := pixelChannels(input)
	tokens := make([]float32, N*C)
	xn := make([]float32, chunk*C)
	var kc, vc []float32
	if !folded {
		kc, vc = make([]float32, chunk*qk), make([]float32, chunk*vw)
	}
	acc := make([]float32, L*vwid)
	online := attention.NewOnline(L, heads, kw/heads, vwid/heads, chunk, scale)
	for b := 0; b < batch; b++ {
		img := pixels[b*pc*h*w : (b+1)*pc*h*w]
		t0 := time.Now()
		input.Tokens(tokens, img, h, w)
		o.Timings.Input += time.Since(t0)
		if o.Inputs != nil {
			copy(o.Inputs[b*N*C:], tokens)
		}
		var scores []float32
		if o.EncoderAttention != nil {
			scores = o.EncoderAttention[b*heads*L*N : (b+1)*heads*L*N]
		}
		online.Reset()
		for p0 := 0; p0 < N; p0 += chunk {
			n := min(chunk, N-p0)
			layerNorm(xn[:n*C], tokens[p0*C:(p0+n)*C], n, a.LayerNorm2)
			var keep []float32
			if scores != nil {
				keep = scores[p0:]
			}
			if folded {
				online.Add(q, xn, xn, n, keep, N)
				continue
			}
			linear(kc[:n*qk], xn, n, &a.Key)
			linear(vc[:n*vw], xn, n, &a.Value)
			online.Add(q, kc, vc, n, keep, N)
		}
		if folded {
			online.Finish(acc)
			linear(ctx, acc, L, &a.Value)
		} else {
			online.Finish(ctx)
		}
		if scores != nil {
			online.Probabilities(scores, N)
		}
		finish(b)
	}
}

// Decoder turns the final latents into the model's output: Hugging Face's perceiver.decoder.
type Decoder interface {
	// decode writes into o what the batch's final latents hidden [B, L, D] decode to. pixels is
	// the model's input, for decoders whose queries are made from it (the flow decoder's).
	decode(m *Model, hidden, pixels []float32, batch int, tr Trace, o *Output)
}

// decode runs the classification decoder on the final latents: one trainable query attends to the
// latents, then an MLP and the final linear layer give the logits.
func (dec *ClassificationDecoder) decode(m *Model, hidden, _ []float32, batch int, tr Trace, o *Output) {
	cfg := &m.Config
	l := &dec.CrossAttention
	a := &l.Attention.Self
	L, D := cfg.NumLatents, cfg.DLatents
	qk, vw := a.Query.Out(), a.Value.Out()
	dqk, dv := qk/l.Heads, vw/l.Heads
	scale := float32(1 / math.Sqrt(float64(dqk)))

	query := dec.Query.Data
	qn := make([]float32, D)
	layerNorm(qn, query, 1, &a.LayerNorm1)
	q := make([]float32, qk)
	linear(q, qn, 1, &a.Query)

	norm := make([]float32, L*D)
	ctx := make([]float32, batch*vw)
	probs := make([]float32, batch*l.Heads*L)
	if l.Heads == 1 && !projectKeys {
		// One query and one head: fold the key projection into the query and the value
		// projection after the pooling, as the encoder does (q·bk cancels in the softmax, the
		// weights sum to 1): two products of the latents by 1024×1024 weights become vectors.
		kq := foldKey(q, 1, &a.Key)
		pooled := make([]float32, batch*D)
		for b := 0; b < batch; b++ {
			layerNorm(norm, hidden[b*L*D:(b+1)*L*D], L, a.LayerNorm2)
			p := probs[b*L : (b+1)*L]
			sgemm.Gemm(false, true, 1, L, D, scale, kq, D, norm, D, 0, p, L)
			attention.SoftmaxRows(p, 1, L, L)
			sgemm.Gemm(false, false, 1, D, L, 1, p, L, norm, D, 0, pooled[b*D:(b+1)*D], D)
		}
		linear(ctx, pooled, batch, &a.Value)
	} else {
		k, v := make([]float32, L*qk), make([]float32, L*vw)
		for b := 0; b < batch; b++ {
			layerNorm(norm, hidden[b*L*D:(b+1)*L*D], L, a.LayerNorm2)
			linear(k, norm, L, &a.Key)
			linear(v, norm, L, &a.Value)
			attention.MultiHeadPrec(a.Query.precision, ctx[b*vw:(b+1)*vw], probs[b*l.Heads*L:(b+1)*l.Heads*L], q, k, v, 1, L, l.Heads, dqk, dv, scale)
		}
	}
	if tr.DecoderAttention {
		o.DecoderAttention = probs
	}
	out := make([]float32, batch*D)
	if l.QueryResidual {
		for b := 0; b < batch; b++ {
			copy(out[b*D:(b+1)*D], query)
		}
		linearAdd(out, ctx, batch, &l.Attention.Output.Dense)
	} else {
		linear(out, ctx, batch, &l.Attention.Output.Dense)
	}
	s := newStack(batch, D, m.widest)
	s.feedForward(out, l)
	if tr.DecoderOutput {
		o.DecoderOutput = out
	}
	o.Logits = make([]float32, batch*dec.FinalLayer.Out())
	linear(o.Logits, out, batch, &dec.FinalLayer)
}
