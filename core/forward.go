package core

import (
	"fmt"
	"math"
	"time"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/internal/par"
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
	Batch, Height, Width int
	Latents, Channels    int // L and D
	InputChannels        int // C: 3 colours + position features
	Heads                int // self-attention heads
	CrossHeads           int // encoder cross-attention heads

	Logits           []float32   // [B, labels]
	Inputs           []float32   // [B, N, C]
	HiddenStates     [][]float32 // each [B, L, D]
	SelfAttentions   [][]float32 // each [B, heads, L, L]
	EncoderAttention []float32   // [B, cross heads, L, N]
	DecoderAttention []float32   // [B, 1, 1, L]
	DecoderOutput    []float32   // [B, 1, D]

	// Time spent in each stage: the encoder cross-attention (with the position features), the
	// latent self-attention stack, and the decoder.
	Timings struct{ Encoder, Latents, Decoder time.Duration }
}

// projectKeys turns off the single-head shortcut of the encoder (see encode), so that tests can
// check the general path against the same reference.
var projectKeys = false

// pixelChunk is how many pixels the general (several-head) cross-attention streams at a time:
// large enough for efficient matrix products, small enough that its buffers stay in the low
// megabytes.
const pixelChunk = 4096

// Forward runs the model on pixels [batch, 3, h, w] (normalised, as from the image processor).
// The input size may differ from the one the model was built for; the position features follow it.
func (m *Model) Forward(pixels []float32, batch, h, w int, tr Trace) (*Output, error) {
	cfg := &m.Config
	if batch < 1 || h < 1 || w < 1 {
		return nil, fmt.Errorf("forward: batch %d of %d×%d images is empty", batch, h, w)
	}
	if len(pixels) != batch*3*h*w {
		return nil, fmt.Errorf("forward: pixel_values has %d values, want %d×3×%d×%d", len(pixels), batch, h, w)
	}
	if c := 3 + m.Fourier.Channels(); c != cfg.DModel {
		return nil, fmt.Errorf("forward: inputs would have %d channels, the model takes d_model %d", c, cfg.DModel)
	}
	W := &m.Weights
	L, D := cfg.NumLatents, cfg.DLatents
	N, C := h*w, cfg.DModel
	o := &Output{
		Batch: batch, Height: h, Width: w, Latents: L, Channels: D, InputChannels: C,
		Heads: cfg.NumSelfAttentionHeads, CrossHeads: cfg.NumCrossAttentionHeads,
	}
	if tr.Inputs {
		o.Inputs = make([]float32, batch*N*C)
	}
	hidden := make([]float32, batch*L*D)
	start := time.Now()
	m.encode(hidden, pixels, batch, h, w, tr, o)

	state := 0
	record := func() {
		if tr.HiddenStates {
			o.HiddenStates = append(o.HiddenStates, append([]float32(nil), hidden...))
		}
		if tr.OnHiddenState != nil {
			tr.OnHiddenState(state, hidden)
		}
		state++
	}
	// The MLP half of the cross-attention layer runs on all images at once.
	s := newStack(batch*L, D, m.widest)
	s.feedForward(hidden, &W.CrossAttention)
	o.Timings.Encoder = time.Since(start)
	record()
	start = time.Now()

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
			record()
			j++
		}
	}
	o.Timings.Latents = time.Since(start)
	start = time.Now()
	m.decode(hidden, batch, tr, o)
	o.Timings.Decoder = time.Since(start)
	return o, nil
}

// maxWidth is the largest dimension of any weight: enough columns for every activation buffer.
func maxWidth(w *Weights) int {
	n := 0
	for _, p := range w.Params() {
		for _, d := range p.Param.Shape {
			n = max(n, d)
		}
	}
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
		attention.MultiHead(s.ctx[b*L*vw:(b+1)*L*vw], p, s.q[b*L*qk:], s.k[b*L*qk:], s.v[b*L*vw:], L, L, l.Heads, dqk, dv, scale)
		seen(b, p)
	}
	if l.QueryResidual {
		linearAdd(x, s.ctx[:rows*vw], rows, &l.Attention.Output.Dense)
	} else {
		linear(x, s.ctx[:rows*vw], rows, &l.Attention.Output.Dense)
	}
}

// encode writes into hidden [B, L, D] the attention half of the encoder cross-attention:
// latents + Wo·attention(LN1(latents) → LN2(inputs)).
func (m *Model) encode(hidden, pixels []float32, batch, h, w int, tr Trace, o *Output) {
	cfg := &m.Config
	l := &m.Weights.CrossAttention
	a := &l.Attention.Self
	L, D := cfg.NumLatents, cfg.DLatents
	N, C := h*w, cfg.DModel
	qk, vw := a.Query.Out(), a.Value.Out()
	heads := l.Heads
	dqk, dv := qk/heads, vw/heads
	scale := float32(1 / math.Sqrt(float64(dqk)))
	pos := m.positionFeatures(h, w)
	P := C - 3

	latents := m.Weights.Latents.Data

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

	// With one head, keys and values need not be computed for every pixel:
	// q·(x·Wkᵀ + bk)ᵀ = (q·Wk)·xᵀ + q·bk, whose constant q·bk per row cancels in the softmax, and
	// Σ p·(x·Wvᵀ + bv) = (Σ p·x)·Wvᵀ + bv because each row of p sums to 1. So the latents attend
	// with q·Wk straight over LN2(x), and the value projection is applied once to the result;
	// separableEncoder then avoids even the products over the pixels (see encoder.go).
	if heads == 1 && !projectKeys {
		enc := m.separableFor(h, w)
		acc := make([]float32, L*C)
		for b := 0; b < batch; b++ {
			img := pixels[b*3*N : (b+1)*3*N]
			if o.Inputs != nil {
				m.writeInputs(o.Inputs[b*N*C:(b+1)*N*C], img, pos, N, C)
			}
			var scores []float32
			if o.EncoderAttention != nil {
				scores = o.EncoderAttention[b*L*N : (b+1)*L*N]
			}
			enc.attend(acc, img, scores)
			if scores != nil {
				attention.SoftmaxRows(scores, L, N, N)
			}
			linear(ctx, acc, L, &a.Value)
			finish(b)
		}
		return
	}

	// The general path: keys and values projected for every pixel, streamed in chunks through an
	// online softmax, whether or not the map is kept (it is filled with the raw scores chunk by
	// chunk and normalised at the end).
	q := m.encoderQueries()
	chunk := min(pixelChunk, N)
	x := make([]float32, chunk*C)
	xn := make([]float32, chunk*C)
	kc, vc := make([]float32, chunk*qk), make([]float32, chunk*vw)
	online := attention.NewOnline(L, heads, dqk, dv, chunk, scale)
	for b := 0; b < batch; b++ {
		img := pixels[b*3*N : (b+1)*3*N]
		var scores []float32
		if o.EncoderAttention != nil {
			scores = o.EncoderAttention[b*heads*L*N : (b+1)*heads*L*N]
		}
		online.Reset()
		for p0 := 0; p0 < N; p0 += chunk {
			n := min(chunk, N-p0)
			xs := x[:n*C]
			m.writeInputs(xs, img[p0:], pos[p0*P:], N, C)
			if o.Inputs != nil {
				copy(o.Inputs[(b*N+p0)*C:], xs)
			}
			layerNorm(xn[:n*C], xs, n, a.LayerNorm2)
			var keep []float32
			if scores != nil {
				keep = scores[p0:]
			}
			linear(kc[:n*qk], xn, n, &a.Key)
			linear(vc[:n*vw], xn, n, &a.Value)
			online.Add(q, kc, vc, n, keep, N)
		}
		online.Finish(ctx)
		if scores != nil {
			online.Probabilities(scores, N)
		}
		finish(b)
	}
}

// writeInputs fills dst [n, C] with the model's inputs for n pixels: the three colour values
// (img holds the planes, N values apart) followed by the position features pos [n, C-3].
func (m *Model) writeInputs(dst, img, pos []float32, N, C int) {
	n := len(dst) / C
	P := C - 3
	par.For(n, 512, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := dst[i*C : (i+1)*C]
			row[0], row[1], row[2] = img[i], img[N+i], img[2*N+i]
			copy(row[3:], pos[i*P:(i+1)*P])
		}
	})
}

// decode runs the classification decoder on the final latents: one trainable query attends to the
// latents, then an MLP and the final linear layer give the logits.
func (m *Model) decode(hidden []float32, batch int, tr Trace, o *Output) {
	cfg := &m.Config
	W := &m.Weights
	l := &W.DecoderCrossAttention
	a := &l.Attention.Self
	L, D := cfg.NumLatents, cfg.DLatents
	qk, vw := a.Query.Out(), a.Value.Out()
	dqk, dv := qk/l.Heads, vw/l.Heads
	scale := float32(1 / math.Sqrt(float64(dqk)))

	query := W.DecoderQuery.Data
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
			attention.MultiHead(ctx[b*vw:(b+1)*vw], probs[b*l.Heads*L:(b+1)*l.Heads*L], q, k, v, 1, L, l.Heads, dqk, dv, scale)
		}
	}
	if tr.DecoderAttention {
		o.DecoderAttention = probs
	}
	dec := make([]float32, batch*D)
	if l.QueryResidual {
		for b := 0; b < batch; b++ {
			copy(dec[b*D:(b+1)*D], query)
		}
		linearAdd(dec, ctx, batch, &l.Attention.Output.Dense)
	} else {
		linear(dec, ctx, batch, &l.Attention.Output.Dense)
	}
	s := newStack(batch, D, m.widest)
	s.feedForward(dec, l)
	if tr.DecoderOutput {
		o.DecoderOutput = dec
	}
	o.Logits = make([]float32, batch*W.FinalLayer.Out())
	linear(o.Logits, dec, batch, &W.FinalLayer)
}
