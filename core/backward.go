package core

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// GradTrace chooses which gradients ForwardBackward keeps, as Trace chooses the forward pass's
// states: nothing is kept that was not asked for. y, the scalar differentiated, is one logit per
// image, the target's (Targets); or, with Labels, the mean cross-entropy loss of the batch.
type GradTrace struct {
	Pixels           bool // ∂y/∂pixel_values, [B, 3, H, W]
	HiddenStates     bool // ∂y/∂hidden_states.i, each [B, L, D] (i as in Output.HiddenStates)
	SelfAttentions   bool // ∂y/∂attentions.j, each [B, heads, L, L]
	EncoderAttention bool // ∂y/∂cross_attentions.encoder, [B, cross heads, L, N]
	DecoderAttention bool // ∂y/∂cross_attentions.decoder, [B, 1, 1, L]

	// Targets holds each image's class, whose logit is y; nil, or a negative entry, means the
	// image's argmax.
	Targets []int

	// Labels, when not nil, makes y the mean cross-entropy loss of the batch,
	// L = (1/B)·Σ_b (logsumexp(z_b) − z_b[Labels[b]]) over the logits z (natural log), instead of
	// a logit: one label per image, each in [0, classes). Gradients.Loss reports L. Every kept
	// gradient is then of L (so an image's pixel gradient carries the 1/B). Targets must be nil.
	Labels []int

	// Params chooses the parameters whose gradients are formed (NoParams: none), returned in
	// Gradients.Params. With DecoderParams alone the backward pass stops at the decoder.
	Params ParamSet

	// Recompute trades time for memory: the forward pass keeps only the hidden states, and the
	// backward recomputes each self-attention application's activations from its input (one more
	// pass through the latent stack) instead of keeping them all (see doc.go).
	Recompute bool

	// OnSelfAttention, when set, receives self-attention application j's (0-based) probabilities
	// and their gradient, each [heads, L, L], for image b, as soon as the backward pass has them:
	// in decreasing j. Reductions such as Chefer's relevance run without holding every map. Both
	// slices are reused after the call returns.
	OnSelfAttention func(b, j int, probs, grad []float32)

	// Rules modify the backward pass into a relevance propagation (rules.go); the zero value is
	// the gradient. Every kept gradient is then the modified one.
	Rules Rules
	// Budget keeps, per image, Σ x⊙ĝ_x over the network's inputs and the relevance of each latent
	// after the encoder (Gradients.Budget); it implies a pass through the encoder to the pixels.
	Budget bool
}

// Gradients are the kept results of a backward pass, row-major, shaped as the forward tensors
// they are the gradients of. Targets holds the class each image was differentiated for (its label
// with GradTrace.Labels).
type Gradients struct {
	Targets          []int
	Pixels           []float32
	HiddenStates     [][]float32
	SelfAttentions   [][]float32
	EncoderAttention []float32
	DecoderAttention []float32
	Budget           []Budget // per image, when GradTrace.Budget

	// Loss is the mean cross-entropy of the batch when GradTrace.Labels is set, else 0.
	Loss float64

	// Params holds the parameters' gradients GradTrace.Params asked for, in the order of
	// Weights.Trainable: PyTorch's named_parameters() order, each summed over the batch.
	Params []ParamGrad
}

// Tensors names the kept gradients as `probe dump --grads` writes them: `grad.pixel_values`
// [B,3,H,W], `grad.hidden_states.{i}`, `grad.attentions.{j}`, `grad.cross_attentions.encoder`,
// `grad.cross_attentions.decoder`, shaped like the forward tensors of o, and
// `grad.param.<Hugging Face name>` for each parameter, shaped like it.
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
	for _, p := range g.Params {
		put("param."+p.Name, p.Data, p.Shape...)
	}
	return ts
}

// ForwardBackward runs Forward with tr, then reverse mode from y — each image's target logit, or
// the batch's mean cross-entropy (GradTrace.Labels) — back through the model, keeping the
// gradients gt asks for: activations, and parameters (GradTrace.Params). See doc.go (the backward
// pass) for the algebra and the memory layout. The returned Output holds what tr asked for, as
// Forward's would.
func (m *Model) ForwardBackward(pixels []float32, batch, h, w int, tr Trace, gt GradTrace) (*Output, *Gradients, error) {
	cfg := &m.Config
	if m.precision != Float32 {
		return nil, nil, fmt.Errorf("backward: %w", ErrBackwardPrecision)
	}
	dec := m.Weights.Classifier()
	if dec == nil {
		return nil, nil, fmt.Errorf("backward: the model has no classification decoder")
	}
	switch gt.Params {
	case NoParams, AllParams, DecoderParams:
	default:
		return nil, nil, fmt.Errorf("backward: unknown parameter set %v", gt.Params)
	}
	allParams := gt.Params == AllParams
	throughEncoder := gt.Pixels || gt.EncoderAttention || gt.Budget || allParams
	// The latent stack's backward is needed for any gradient below the decoder.
	throughStack := throughEncoder || gt.HiddenStates || gt.SelfAttentions || gt.OnSelfAttention != nil
	if gt.Params != NoParams && gt.Rules != (Rules{}) {
		return nil, nil, fmt.Errorf("backward: relevance rules modify the gradient; parameter gradients take the plain one (Rules must be zero with Params)")
	}
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
	if gt.Labels != nil {
		if gt.Targets != nil {
			return nil, nil, fmt.Errorf("backward: both targets (a logit) and labels (the cross-entropy loss) given")
		}
		if len(gt.Labels) != batch {
			return nil, nil, fmt.Errorf("backward: %d labels for %d images", len(gt.Labels), batch)
		}
		for _, y := range gt.Labels {
			if y < 0 || y >= labels {
				return nil, nil, fmt.Errorf("backward: label %d out of range: the model has %d classes (0…%d)", y, labels, labels-1)
			}
		}
	}
	o, st, err := m.forwardSaving(pixels, batch, h, w, tr, throughEncoder, gt.Recompute, allParams, throughStack)
	if err != nil {
		return nil, nil, err
	}
	hidden, probsEnc := st.hidden, st.encoder
	trainable := m.Weights.Trainable(gt.Params)
	pg := newParamGrads(trainable)
	st.work.rules = gt.Rules

	g := &Gradients{Targets: make([]int, batch)}
	dlogits := make([]float32, batch*labels)
	if gt.Labels != nil {
		copy(g.Targets, gt.Labels)
		g.Loss = crossEntropy(dlogits, o.Logits, gt.Labels, batch, labels)
	} else {
		for b := range batch {
			t := -1
			if gt.Targets != nil {
				t = gt.Targets[b]
			}
			if t < 0 {
				t = argmax(o.Logits[b*labels : (b+1)*labels])
			}
			g.Targets[b] = t
			dlogits[b*labels+t] = 1
		}
	}
	collect := func() {
		for _, p := range trainable {
			g.Params = append(g.Params, ParamGrad{Name: p.Name, Shape: p.Param.Shape, Data: pg.of(p.Param), Param: p.Param})
		}
	}

	L, D := cfg.NumLatents, cfg.DLatents
	J := len(hidden) - 1
	var dh []float32
	if throughStack {
		dh = make([]float32, batch*L*D)
	}
	if gt.DecoderAttention {
		g.DecoderAttention = make([]float32, batch*L)
	}
	var queryRel []float64
	if gt.Budget {
		g.Budget = make([]Budget, batch)
		queryRel = make([]float64, batch)
	}
	dec.backward(m, gt.Rules, dh, g.DecoderAttention, queryRel, hidden[J], batch, dlogits, pg)
	if !throughStack {
		collect()
		return o, g, nil
	}
	if gt.HiddenStates {
		g.HiddenStates = make([][]float32, J+1)
		g.HiddenStates[J] = append([]float32(nil), dh...)
	}
	if gt.SelfAttentions {
		g.SelfAttentions = make([][]float32, J)
	}
	stackGrads := pg
	if !allParams {
		stackGrads = nil
	}
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
		var sv *savedLayer
		if gt.Recompute {
			sv = st.saved[0]
			st.work.forward(st.out, hidden[app-1], layer, batch, L, sv)
		} else {
			sv = st.saved[app-1]
		}
		st.work.backward(dh, dprobs, hidden[app-1], layer, batch, L, sv, stackGrads)
		if gt.OnSelfAttention != nil {
			for b := range batch {
				gt.OnSelfAttention(b, app-1, sv.probs[b*size:(b+1)*size], dprobs[b*size:(b+1)*size])
			}
		}
		if !gt.Recompute {
			st.saved[app-1] = nil // free it for the collector: the backward has passed it
		}
		if gt.HiddenStates {
			g.HiddenStates[app-1] = append([]float32(nil), dh...)
		}
	}
	for b := range g.Budget {
		g.Budget[b].Query = queryRel[b]
		per := make([]float64, L)
		for i := range per {
			per[i] = dot64(hidden[0][(b*L+i)*D:(b*L+i+1)*D], dh[(b*L+i)*D:(b*L+i+1)*D])
		}
		g.Budget[b].PerLatent = per
	}
	if !throughEncoder {
		collect()
		return o, g, nil
	}
	N := o.Grid.Tokens()
	if gt.Pixels || gt.Budget {
		g.Pixels = make([]float32, len(pixels))
	}
	if gt.EncoderAttention {
		g.EncoderAttention = make([]float32, batch*L*N)
	}
	e := m.newEncoderBackward(o.Grid, stackGrads)
	e.rules = gt.Rules
	for b := range batch {
		var dimg, dprobs []float32
		if g.Pixels != nil {
			dimg = g.Pixels[b*3*h*w : (b+1)*3*h*w]
		}
		if g.EncoderAttention != nil {
			dprobs = g.EncoderAttention[b*L*N : (b+1)*L*N]
		}
		var bud *Budget
		if g.Budget != nil {
			bud = &g.Budget[b]
		}
		err := e.backward(dimg, dprobs, bud, dh[b*L*D:(b+1)*L*D], pixels[b*3*h*w:(b+1)*3*h*w], probsEnc[b*L*N:(b+1)*L*N])
		if err != nil {
			return nil, nil, err
		}
	}
	e.finish()
	collect()
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

// savedLayer is what one self-attention application's backward needs from its forward, over
// rows = B·L positions: the projections, the probabilities, the state after the attention half
// (LayerNorm's and the MLP's input), the MLP's pre-GELU activations and, when parameter gradients
// are formed, the attention's context (the output projection's input). LN1(x), LN(x1) and
// GELU(a1) are not kept: the backward recomputes them from their inputs where a weight gradient
// needs them.
type savedLayer struct {
	q, k, v []float32 // [rows, qk], [rows, qk], [rows, vw]
	probs   []float32 // [B, heads, L, L]
	x1, a1  []float32 // [rows, D], [rows, widening·D]
	ctx     []float32 // [rows, vw], or nil
}

func newSavedLayer(l *Layer, batch, L int, params bool) *savedLayer {
	a := &l.Attention.Self
	rows := batch * L
	sv := &savedLayer{
		q: make([]float32, rows*a.Query.Out()), k: make([]float32, rows*a.Key.Out()), v: make([]float32, rows*a.Value.Out()),
		probs: make([]float32, batch*l.Heads*L*L),
		x1:    make([]float32, rows*l.LayerNorm.Weight.Len()), a1: make([]float32, rows*l.MLP.Dense1.Out()),
	}
	if params {
		sv.ctx = make([]float32, rows*a.Value.Out())
	}
	return sv
}

// layerWork is the scratch one layer's forward and backward share, over rows = B·L positions.
type layerWork struct {
	packs            *backwardPacks
	rows             int
	xn, ctx, gel     []float32
	dq, dk, dv, dctx []float32
	dx1, dxn, da1    []float32
	ds               []float32 // [L, L] softmax scratch
	rules            Rules     // the backward's relevance rules
}

func newLayerWork(packs *backwardPacks, rows, d, wide, L int) *layerWork {
	f := func(n int) []float32 { return make([]float32, n) }
	return &layerWork{
		packs: packs, rows: rows,
		xn: f(rows * d), ctx: f(rows * wide), gel: f(rows * wide),
		dq: f(rows * wide), dk: f(rows * wide), dv: f(rows * wide), dctx: f(rows * wide),
		dx1: f(rows * d), dxn: f(rows * d), da1: f(rows * wide), ds: f(L * L),
	}
}

// forward writes into out [B·L, D] the self-attention layer l applied to x, with the same kernels
// as Model.Forward (so the same numbers), keeping in sv what the backward needs.
func (s *layerWork) forward(out, x []float32, l *Layer, batch, L int, sv *savedLayer) {
	a := &l.Attention.Self
	rows := s.rows
	qk, vw := a.Query.Out(), a.Value.Out()
	heads := l.Heads
	dqk, dvh := qk/heads, vw/heads
	scale := float32(1 / math.Sqrt(float64(dqk)))
	layerNorm(s.xn, x, rows, &a.LayerNorm1)
	linear(sv.q, s.xn, rows, &a.Query)
	linear(sv.k, s.xn, rows, &a.Key)
	linear(sv.v, s.xn, rows, &a.Value)
	ctx := s.ctx[:rows*vw]
	if sv.ctx != nil {
		ctx = sv.ctx
	}
	size := heads * L * L
	for b := 0; b < batch; b++ {
		attention.MultiHead(ctx[b*L*vw:(b+1)*L*vw], sv.probs[b*size:(b+1)*size], sv.q[b*L*qk:], sv.k[b*L*qk:], sv.v[b*L*vw:], L, L, heads, dqk, dvh, scale)
	}
	if l.QueryResidual {
		copy(sv.x1, x)
		linearAdd(sv.x1, ctx, rows, &l.Attention.Output.Dense)
	} else {
		linear(sv.x1, ctx, rows, &l.Attention.Output.Dense)
	}
	layerNorm(s.xn, sv.x1, rows, &l.LayerNorm)
	linear(sv.a1, s.xn, rows, &l.MLP.Dense1)
	gel := s.gel[:len(sv.a1)]
	copy(gel, sv.a1)
	gelu(gel)
	copy(out, sv.x1)
	linearAdd(out, gel, rows, &l.MLP.Dense2)
}

// backward replaces dh, the gradient with respect to the layer's output, by the gradient with
// respect to its input x [B·L, D], from the activations sv of its forward. dprobs, when not nil,
// receives the gradient with respect to the probabilities [B, heads, L, L]. pg, when not nil,
// accumulates the layer's parameter gradients (sv then holds the context).
func (s *layerWork) backward(dh, dprobs, x []float32, l *Layer, batch, L int, sv *savedLayer, pg *paramGrads) {
	a := &l.Attention.Self
	rows := s.rows
	qk, vw := a.Query.Out(), a.Value.Out()
	heads := l.Heads
	dqk, dvh := qk/heads, vw/heads
	scale := float32(1 / math.Sqrt(float64(dqk)))
	size := heads * L * L
	// Backward of x2 = x1 + MLP(LN(x1)).
	mlpBackward(s.linearBackward, s.rules, s.dx1, s.da1[:len(sv.a1)], s.dxn, dh, sv.x1, sv.a1, rows, l, pg)
	// Backward of x1 = x + Wo·attention(LN1(x)).
	dctx := s.dctx[:rows*vw]
	s.linearBackward(dctx, s.dx1, rows, &l.Attention.Output.Dense, false)
	if pg != nil {
		pg.linear(&l.Attention.Output.Dense, s.dx1, sv.ctx, rows)
	}
	dq, dk, dv := s.dq[:rows*qk], s.dk[:rows*qk], s.dv[:rows*vw]
	for b := 0; b < batch; b++ {
		var dp []float32
		if dprobs != nil {
			dp = dprobs[b*size : (b+1)*size]
		}
		s.rules.multiHeadBackward(dq[b*L*qk:(b+1)*L*qk], dk[b*L*qk:(b+1)*L*qk], dv[b*L*vw:(b+1)*L*vw], dp, s.ds,
			sv.q[b*L*qk:(b+1)*L*qk], sv.k[b*L*qk:(b+1)*L*qk], sv.v[b*L*vw:(b+1)*L*vw], sv.probs[b*size:(b+1)*size], dctx[b*L*vw:(b+1)*L*vw],
			L, L, heads, dqk, dvh, scale)
	}
	s.linearBackward(s.dxn, dq, rows, &a.Query, false)
	s.linearBackward(s.dxn, dk, rows, &a.Key, true)
	s.linearBackward(s.dxn, dv, rows, &a.Value, true)
	if pg != nil {
		layerNorm(s.xn, x, rows, &a.LayerNorm1)
		pg.linear(&a.Query, dq, s.xn, rows)
		pg.linear(&a.Key, dk, s.xn, rows)
		pg.linear(&a.Value, dv, s.xn, rows)
		pg.layerNorm(&a.LayerNorm1, x, s.dxn, rows)
	}
	if l.QueryResidual {
		copy(dh, s.dx1)
	} else {
		clear(dh)
	}
	s.rules.layerNormBackward(dh, x, s.dxn, rows, &a.LayerNorm1, true)
}

// linearBackward is linearBackward with the layer's weights packed once per model.
func (s *layerWork) linearBackward(dx, dy []float32, rows int, l *Linear, accumulate bool) {
	linearBackwardPacked(dx, dy, rows, l, s.packs.packFor(l), accumulate)
}

// forwardState is what ForwardBackward's forward pass leaves for the backward.
type forwardState struct {
	hidden  [][]float32   // every hidden state, [B, L, D] each
	encoder []float32     // the encoder attention [B, 1, L, N], when the backward goes through it
	saved   []*savedLayer // per application; one, reused, when recomputing
	work    *layerWork
	out     []float32 // a layer's output when recomputing
}

// forwardSaving is Model.Forward (the same kernels, so the same numbers) keeping what the
// backward needs: every hidden state, the encoder attention when wanted, and each self-attention
// application's activations — or, with recompute, none of those, for the backward to recompute
// application by application from the hidden states. The Output holds what tr asks for.
//
// With params, each application also keeps its attention context, for the parameter gradients;
// without stack (no backward through the latent stack), only the final hidden state is kept and
// one application's activations are reused, as with recompute.
func (m *Model) forwardSaving(pixels []float32, batch, h, w int, tr Trace, encoder, recompute, params, stack bool) (*Output, *forwardState, error) {
	recompute = recompute || !stack
	cfg := &m.Config
	o, err := m.newOutput(pixels, batch, h, w, tr)
	if err != nil {
		return nil, nil, err
	}
	W := &m.Weights
	L, D := o.Latents, o.Channels
	st := &forwardState{work: newLayerWork(&m.backPacks, batch*L, D, m.widest, L)}
	etr := tr
	etr.EncoderAttention = tr.EncoderAttention || encoder
	hidden := make([]float32, batch*L*D)
	start := time.Now()
	m.encode(hidden, pixels, batch, o.Grid, etr, o)
	st.encoder = o.EncoderAttention
	if !tr.EncoderAttention {
		o.EncoderAttention = nil
	}
	s := newStack(batch*L, D, m.widest)
	s.feedForward(hidden, &W.CrossAttention)
	o.Timings.Encoder = time.Since(start) - o.Timings.Input
	// Without the latent stack's backward only the final state is needed (unless tr keeps them).
	keepHidden := stack || tr.HiddenStates
	recorded := 0
	record := func() {
		if keepHidden || len(st.hidden) == 0 {
			st.hidden = append(st.hidden, hidden)
		} else {
			st.hidden[0] = hidden
		}
		if tr.OnHiddenState != nil {
			tr.OnHiddenState(recorded, hidden)
		}
		recorded++
	}
	record()
	start = time.Now()
	j := 0
	for blk := 0; blk < cfg.NumBlocks; blk++ {
		for i := range W.SelfAttends {
			layer := &W.SelfAttends[i]
			var sv *savedLayer
			if recompute && len(st.saved) > 0 {
				sv = st.saved[0]
			} else {
				sv = newSavedLayer(layer, batch, L, params)
				st.saved = append(st.saved, sv)
			}
			next := make([]float32, batch*L*D)
			st.work.forward(next, hidden, layer, batch, L, sv)
			size := layer.Heads * L * L
			if tr.SelfAttentions {
				if recompute {
					o.SelfAttentions = append(o.SelfAttentions, append([]float32(nil), sv.probs...))
				} else {
					o.SelfAttentions = append(o.SelfAttentions, sv.probs)
				}
			}
			if tr.OnSelfAttention != nil {
				for b := 0; b < batch; b++ {
					tr.OnSelfAttention(b, j, sv.probs[b*size:(b+1)*size])
				}
			}
			hidden = next
			record()
			j++
		}
	}
	if recompute {
		st.out = make([]float32, batch*L*D)
	}
	o.Timings.Latents = time.Since(start)
	start = time.Now()
	if tr.HiddenStates {
		o.HiddenStates = st.hidden
	}
	W.Decoder.decode(m, hidden, pixels, batch, tr, o)
	o.Timings.Decoder = time.Since(start)
	return o, st, nil
}

// mlpBackward writes into dx1 [rows, D] the gradient with respect to x1 of x2 = x1 + MLP(LN(x1))
// given dx2 [rows, D]; a1 is Dense1's output (GELU's input). da1 and dxn are scratch; lin is the
// linear layers' backward (linearBackward, or a layerWork's with packed weights). pg, when not
// nil, accumulates the gradients of the MLP's and its LayerNorm's parameters.
func mlpBackward(lin func(dx, dy []float32, rows int, l *Linear, accumulate bool), r Rules, dx1, da1, dxn, dx2, x1, a1 []float32, rows int, l *Layer, pg *paramGrads) {
	lin(da1, dx2, rows, &l.MLP.Dense2, false)
	if pg != nil {
		gel := pg.scratch(1, len(a1))
		copy(gel, a1)
		gelu(gel)
		pg.linear(&l.MLP.Dense2, dx2, gel, rows)
	}
	r.geluBackward(da1, a1)
	lin(dxn, da1, rows, &l.MLP.Dense1, false)
	if pg != nil {
		xn := pg.scratch(1, len(x1))
		layerNorm(xn, x1, rows, &l.LayerNorm)
		pg.linear(&l.MLP.Dense1, da1, xn, rows)
		pg.layerNorm(&l.LayerNorm, x1, dxn, rows)
	}
	copy(dx1, dx2)
	r.layerNormBackward(dx1, x1, dxn, rows, &l.LayerNorm, true)
}

// backward carries the gradient dlogits [B, labels] of y with respect to the logits back through
// the classification decoder to the final latents hidden [B, L, D], writing the gradient into dh
// [B, L, D] when not nil and, when dprobs is not nil, the gradient with respect to the decoder's
// attention into dprobs [B, L], under the rules r; queryRel [B], when not nil, receives each
// image's Σ Qd⊙ĝ_Qd over the trainable query; pg, when not nil, accumulates the decoder's
// parameter gradients. The decoder has one query and one head, so it runs folded as in decode:
// scores = scale·kq·LN2(h)ᵀ, with kq = q·Wk, and pooled = p·LN2(h) before the value projection.
func (dec *ClassificationDecoder) backward(m *Model, r Rules, dh, dprobs []float32, queryRel []float64, hidden []float32, batch int, dlogits []float32, pg *paramGrads) {
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

	// The final layer: dout = dlogits·W (for one logit, the target's row of W).
	fin := &dec.FinalLayer
	dout := make([]float32, batch*D)
	linearBackward(dout, dlogits, batch, fin, false)
	if pg.wants(&fin.Weight) {
		out := append([]float32(nil), x1...) // the decoder output, the final layer's input
		gel := make([]float32, len(a1))
		copy(gel, a1)
		gelu(gel)
		linearAdd(out, gel, batch, &l.MLP.Dense2)
		pg.linear(fin, dlogits, out, batch)
	} else if pg != nil {
		pg.linear(fin, dlogits, nil, batch)
	}
	dx1 := make([]float32, batch*D)
	mlpBackward(linearBackward, r, dx1, make([]float32, batch*wide), make([]float32, batch*D), dout, x1, a1, batch, l, pg)
	dctx := make([]float32, batch*vw)
	linearBackward(dctx, dx1, batch, &l.Attention.Output.Dense, false)
	pg.linear(&l.Attention.Output.Dense, dx1, ctx, batch)
	dpooled := make([]float32, batch*D)
	linearBackward(dpooled, dctx, batch, &a.Value, false)
	pg.linear(&a.Value, dctx, pooled, batch)
	dp := make([]float32, L)
	dxn := make([]float32, L*D)
	fa, fv, fs := r.attentionFactors()
	// For the key and query: u = scale·Σ_b Σ_j ds_bj·LN2(h)_bj and rsum = Σ_b Σ_j ds_bj (zero but
	// for rounding: a softmax's gradient sums to zero).
	var u []float32
	var rsum float64
	if pg != nil {
		u = make([]float32, D)
	}
	for b := 0; b < batch; b++ {
		xn, pb, dpb := norm[b*L*D:(b+1)*L*D], p[b*L:(b+1)*L], dpooled[b*D:(b+1)*D]
		// Hugging Face's probabilities multiply the projected values LN2(h)·Wvᵀ + bv, so their
		// gradient is LN2(h)·(Wvᵀ·dctx) + bv·dctx; the constant cancels in the softmax.
		sgemm.Gemm(false, true, 1, L, D, fa, dpb, D, xn, D, 0, dp, L)
		var bias float32
		for i, v := range a.Value.Bias.Data {
			bias += v * dctx[b*vw+i]
		}
		for i := range dp {
			dp[i] += fa * bias
		}
		if dprobs != nil {
			copy(dprobs[b*L:(b+1)*L], dp)
		}
		softmaxBackward(dp, pb, dp, 1, L, L)
		if pg != nil {
			sgemm.Gemm(false, false, 1, D, L, scale, dp, L, xn, D, 1, u, D)
			for _, v := range dp {
				rsum += float64(v)
			}
		}
		// dxn = p ⊗ dpooled + scale·ds ⊗ kq, with the rules' factors on the two ways.
		for i := 0; i < L; i++ {
			row := dxn[i*D : (i+1)*D]
			pi, si := fv*pb[i], fs*scale*dp[i]
			for c := range row {
				row[c] = pi*dpb[c] + si*kq[c]
			}
		}
		if queryRel != nil {
			queryRel[b] = queryRelevance(r, query, dx1[b*D:(b+1)*D], dp, xn, 1, L, l, fs*scale)
		}
		if dh != nil {
			r.layerNormBackward(dh[b*L*D:(b+1)*L*D], hidden[b*L*D:(b+1)*L*D], dxn, L, a.LayerNorm2, false)
		}
		pg.layerNorm(a.LayerNorm2, hidden[b*L*D:(b+1)*L*D], dxn, L)
	}
	if pg == nil {
		return
	}
	// Keys k_j = Wk·LN2(h)_j + bk meet the one query q: dk_j = scale·ds_j·q, so dWk = q ⊗ u and
	// dbk = scale·r·q; dq = Σ_j scale·ds_j·k_j = Wk·u + scale·r·bk.
	if dw := pg.of(&a.Key.Weight); dw != nil {
		sgemm.Gemm(true, false, qk, D, 1, 1, q, qk, u, D, 1, dw, D)
	}
	sr := float32(float64(scale) * rsum)
	if db := pg.of(&a.Key.Bias); db != nil {
		for o, v := range q {
			db[o] += sr * v
		}
	}
	dq := make([]float32, qk)
	sgemm.Gemm(false, true, 1, qk, D, 1, u, D, a.Key.Weight.Data, D, 0, dq, qk)
	for o, v := range a.Key.Bias.Data {
		dq[o] += sr * v
	}
	pg.linear(&a.Query, dq, qn, 1)
	dqn := make([]float32, D)
	linearBackward(dqn, dq, 1, &a.Query, false)
	pg.layerNorm(&a.LayerNorm1, query, dqn, 1)
	// The query: through LN1, and the residual of every image.
	dquery := make([]float32, D)
	if l.QueryResidual {
		for b := 0; b < batch; b++ {
			add(dquery, dx1[b*D:(b+1)*D])
		}
	}
	layerNormBackward(dquery, query, dqn, 1, &a.LayerNorm1, true)
	pg.add(&dec.Query, dquery)
}

// encoderBackward carries the gradient with respect to hidden state 0 back through the encoder
// cross-attention (one head, folded: scores = scale·kq·LN2(x)ᵀ whichever path the forward took)
// and the input stage to one image's pixels, and, with pg, to the encoder's and the input stage's
// parameters and the latents. Its buffers serve every image of the batch.
type encoderBackward struct {
	m      *Model
	grid   TokenGrid
	pg     *paramGrads
	q      []float32 // the queries Query(LN1(latents)) [L, qk]
	qn     []float32 // LN1(latents) [L, D]
	kq     []float32 // [L, C]
	tokens []float32 // [N, C]
	xn     []float32 // LN2(tokens)
	dxn    []float32
	dp, ds []float32 // [L, N]; dp allocated when the caller keeps no gradient of the map
	dpos   []float32 // the learned stage's position channels' gradient [N, c2], summed over images

	acc, dacc, gk  []float32 // [L, C]
	ctx, dctx      []float32 // [L, vw]
	x1, xn2, dx1   []float32 // [L, D]
	dxl, dqn, dlat []float32 // [L, D]
	a1, da1        []float32 // [L, widening·D]
	dq             []float32 // [L, qk]
	rowSum         []float64 // [L]
	rules          Rules
}

func (m *Model) newEncoderBackward(g TokenGrid, pg *paramGrads) *encoderBackward {
	l := &m.Weights.CrossAttention
	a := &l.Attention.Self
	L, N, C, D := m.Config.NumLatents, g.Tokens(), m.Config.DModel, m.Config.DLatents
	qk, vw, wide := a.Query.Out(), a.Value.Out(), l.MLP.Dense1.Out()
	f := func(n int) []float32 { return make([]float32, n) }
	e := &encoderBackward{
		m: m, grid: g, pg: pg,
		q:      m.encoderQueries(),
		tokens: f(N * C), xn: f(N * C), dxn: f(N * C),
		ds:  f(L * N),
		acc: f(L * C), dacc: f(L * C),
		ctx: f(L * vw), dctx: f(L * vw),
		x1: f(L * D), xn2: f(L * D), dx1: f(L * D), dxl: f(L * D),
		a1: f(L * wide), da1: f(L * wide),
	}
	e.kq = foldKey(e.q, L, &a.Key)
	if pg != nil {
		e.qn = f(L * D)
		layerNorm(e.qn, m.Weights.Latents.Data, L, &a.LayerNorm1)
		e.gk, e.dq, e.dqn, e.dlat, e.rowSum = f(L*C), f(L*qk), f(L*D), f(L*D), make([]float64, L)
		if s, ok := m.Weights.Input.(*LearnedStage); ok && pg.wants(&s.Positions, &s.Projection.Weight, &s.Projection.Bias) {
			e.dpos = f(N * s.Projection.Out())
		}
	}
	return e
}

// backward: dh0 [L, D] is the gradient with respect to hidden state 0, img [3, h, w] the image,
// probs [L, N] its encoder attention from the forward pass. dimg [3, h, w] and dprobs [L, N]
// receive the gradients when not nil; bud, when not nil, the relevance of the pixels, positions
// and latents (it needs dimg).
func (e *encoderBackward) backward(dimg, dprobs []float32, bud *Budget, dh0, img, probs []float32) error {
	m, g, pg := e.m, e.grid, e.pg
	cfg := &m.Config
	l := &m.Weights.CrossAttention
	a := &l.Attention.Self
	L, N, C := cfg.NumLatents, g.Tokens(), cfg.DModel
	qk, vw := a.Query.Out(), a.Value.Out()
	scale := float32(1 / math.Sqrt(float64(qk)))
	h, w := g.Height, g.Width

	m.Weights.Input.Tokens(e.tokens, img, h, w)
	layerNorm(e.xn, e.tokens, N, a.LayerNorm2)
	// Recompute the attention half's output x1 = latents + Wo·(Wv·(P·LN2(x)) + bv) + bo.
	sgemm.Gemm(false, false, L, C, N, 1, probs, N, e.xn, C, 0, e.acc, C)
	linear(e.ctx, e.acc, L, &a.Value)
	if l.QueryResidual {
		copy(e.x1, m.Weights.Latents.Data)
		linearAdd(e.x1, e.ctx, L, &l.Attention.Output.Dense)
	} else {
		linear(e.x1, e.ctx, L, &l.Attention.Output.Dense)
	}
	layerNorm(e.xn2, e.x1, L, &l.LayerNorm)
	linear(e.a1, e.xn2, L, &l.MLP.Dense1)

	mlpBackward(linearBackward, e.rules, e.dx1, e.da1, e.dxl, dh0, e.x1, e.a1, L, l, pg)
	linearBackward(e.dctx, e.dx1, L, &l.Attention.Output.Dense, false)
	pg.linear(&l.Attention.Output.Dense, e.dx1, e.ctx, L)
	linearBackward(e.dacc, e.dctx, L, &a.Value, false)
	pg.linear(&a.Value, e.dctx, e.acc, L)
	// dP = dacc·LN2(x)ᵀ + bv·dctx per row (the values' bias; it cancels in the softmax).
	dp := dprobs
	if dp == nil {
		if e.dp == nil {
			e.dp = make([]float32, L*N)
		}
		dp = e.dp
	}
	// The rules' factors: fa on the probabilities' gradient, fv on the values', fs on the scores'
	// way into the queries and keys.
	fa, fv, fs := e.rules.attentionFactors()
	if fa == 0 {
		clear(dp[:L*N])
	} else {
		sgemm.Gemm(false, true, L, N, C, fa, e.dacc, C, e.xn, C, 0, dp, N)
	}
	if dprobs != nil && fa != 0 {
		for i := 0; i < L; i++ {
			var bias float32
			for c, v := range a.Value.Bias.Data {
				bias += v * e.dctx[i*vw+c]
			}
			bias *= fa
			row := dp[i*N : (i+1)*N]
			for n := range row {
				row[n] += bias
			}
		}
	}
	if fs == 0 {
		clear(e.ds)
	} else {
		softmaxBackward(e.ds, probs, dp, L, N, N)
	}
	if pg != nil {
		e.queryBackward(dh0, scale)
	}
	stageParams := pg != nil && stageHasParams(m.Weights.Input, pg)
	if dimg == nil && !stageParams && !pg.wants(&a.LayerNorm2.Weight, &a.LayerNorm2.Bias) {
		return nil
	}
	if bud != nil {
		bud.Latents = queryRelevance(e.rules, m.Weights.Latents.Data, e.dx1, e.ds, e.xn, L, N, l, fs*scale)
	}
	// dLN2(x) = scale·dSᵀ·kq + Pᵀ·dacc.
	sgemm.Gemm(true, false, N, C, L, fs*scale, e.ds, N, e.kq, C, 0, e.dxn, C)
	sgemm.Gemm(true, false, N, C, L, fv, probs, N, e.dacc, C, 1, e.dxn, C)
	pg.layerNorm(a.LayerNorm2, e.tokens, e.dxn, N)
	if dimg == nil && !stageParams {
		return nil
	}
	dtokens := e.xn // LN2(x) is not needed past this point: its buffer takes the tokens' gradient
	e.rules.layerNormBackward(dtokens, e.tokens, e.dxn, N, a.LayerNorm2, false)
	if bud != nil {
		bud.Positions = positionRelevance(m.Weights.Input, e.tokens, dtokens, N)
	}
	if err := inputBackward(m.Weights.Input, dimg, dtokens, img, h, w, pg, e.dpos); err != nil {
		return err
	}
	if bud != nil {
		bud.Pixels = dot64(img, dimg)
	}
	return nil
}

// queryBackward adds the gradients of the encoder's key and query projections, LN1 and the
// latents, from the scores' gradient e.ds [L, N] and the residual's e.dx1. With keys
// k_n = Wk·LN2(x)_n + bk and G = dS·LN2(x) [L, C], r_i = Σ_n dS_in (zero but for rounding):
// dWk = scale·qᵀ·G, dbk = scale·qᵀ·r, dq = scale·(G·Wkᵀ + r ⊗ bk).
func (e *encoderBackward) queryBackward(dh0 []float32, scale float32) {
	m, pg := e.m, e.pg
	l := &m.Weights.CrossAttention
	a := &l.Attention.Self
	L, N, C, D := m.Config.NumLatents, e.grid.Tokens(), m.Config.DModel, m.Config.DLatents
	qk := a.Query.Out()
	sgemm.Gemm(false, false, L, C, N, 1, e.ds, N, e.xn, C, 0, e.gk, C)
	for i := range e.rowSum {
		var s float64
		for _, v := range e.ds[i*N : (i+1)*N] {
			s += float64(v)
		}
		e.rowSum[i] = s
	}
	if dw := pg.of(&a.Key.Weight); dw != nil {
		sgemm.Gemm(true, false, qk, C, L, scale, e.q, qk, e.gk, C, 1, dw, C)
	}
	if db := pg.of(&a.Key.Bias); db != nil {
		for i := 0; i < L; i++ {
			s := float32(float64(scale) * e.rowSum[i])
			for o, v := range e.q[i*qk : (i+1)*qk] {
				db[o] += s * v
			}
		}
	}
	sgemm.Gemm(false, true, L, qk, C, scale, e.gk, C, a.Key.Weight.Data, C, 0, e.dq, qk)
	for i := 0; i < L; i++ {
		s := float32(float64(scale) * e.rowSum[i])
		row := e.dq[i*qk : (i+1)*qk]
		for o, v := range a.Key.Bias.Data {
			row[o] += s * v
		}
	}
	pg.linear(&a.Query, e.dq, e.qn, L)
	linearBackward(e.dqn, e.dq, L, &a.Query, false)
	latents := m.Weights.Latents.Data
	pg.layerNorm(&a.LayerNorm1, latents, e.dqn, L)
	if l.QueryResidual {
		copy(e.dlat, e.dx1)
	} else {
		clear(e.dlat)
	}
	layerNormBackward(e.dlat, latents, e.dqn, L, &a.LayerNorm1, true)
	pg.add(&m.Weights.Latents, e.dlat)
	_ = D
}

// finish adds what the encoder gathered over the batch to the input stage's parameters: the
// learned positions' gradient, through their projection.
func (e *encoderBackward) finish() {
	s, ok := e.m.Weights.Input.(*LearnedStage)
	if !ok || e.dpos == nil {
		return
	}
	s.positionsBackward(e.pg, e.dpos)
}
