package core

import (
	"fmt"
	"math"
	"strings"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
	"github.com/perceiverkit/perceiver/internal/vecmath"
)

// ParamSet chooses the parameters whose gradients ForwardBackward forms (GradTrace.Params).
type ParamSet int

const (
	// NoParams forms no parameter gradient: the backward pass stops at the activations.
	NoParams ParamSet = iota
	// AllParams forms the gradient of every parameter (Weights.Trainable(AllParams)).
	AllParams
	// DecoderParams forms the gradients of perceiver.decoder.* only (the decoder's query, its
	// cross-attention and the final layer), as `probe train --train decoder` trains; the backward
	// pass then stops at the decoder unless GradTrace asks for an activation's gradient.
	DecoderParams
)

// String names the set as the --train flag does: "none", "all", "decoder".
func (s ParamSet) String() string {
	switch s {
	case NoParams:
		return "none"
	case AllParams:
		return "all"
	case DecoderParams:
		return "decoder"
	}
	return fmt.Sprintf("ParamSet(%d)", int(s))
}

// decoderPrefix is the Hugging Face name prefix of the decoder's parameters.
const decoderPrefix = "perceiver.decoder."

// Trainable lists the parameters of set with their Hugging Face names, in PyTorch's
// named_parameters() order: the state dict's order without its buffers (BatchNorm's running_mean,
// running_var and num_batches_tracked, which eval-mode BatchNorm reads and never trains). A
// self-attention layer applied in every block is one parameter. NoParams lists none.
func (w *Weights) Trainable(set ParamSet) []NamedParam {
	var out []NamedParam
	for _, p := range w.Params() {
		if isBuffer(p.Name) {
			continue
		}
		switch set {
		case AllParams:
		case DecoderParams:
			if !strings.HasPrefix(p.Name, decoderPrefix) {
				continue
			}
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

// isBuffer reports whether a state-dict name is a buffer rather than a parameter.
func isBuffer(name string) bool {
	return strings.HasSuffix(name, ".running_mean") || strings.HasSuffix(name, ".running_var") ||
		strings.HasSuffix(name, ".num_batches_tracked")
}

// ParamGrad is the gradient of one parameter: float32, row-major, the parameter's shape, summed
// over the batch's images (so that, for the mean cross-entropy, it is ∂L/∂θ of the batch loss).
type ParamGrad struct {
	Name  string // the parameter's Hugging Face state-dict name
	Shape []int
	Data  []float32
	Param *Param // the parameter itself, in m.Weights
}

// Param returns the gradient of the parameter named name, or nil if it was not formed.
func (g *Gradients) Param(name string) *ParamGrad {
	for i := range g.Params {
		if g.Params[i].Name == name {
			return &g.Params[i]
		}
	}
	return nil
}

// WeightsChanged tells the model that parameter values changed inside the slices it already
// holds (an optimiser's update in place): it drops and rebuilds what the forward and backward
// passes derived from the old values (packed weights, the encoder's folded queries, the learned
// stage's projected positions). Assigning new Data slices needs no call; changing values in place
// without one leaves stale results. Not safe to call during a Forward on the same model.
func (m *Model) WeightsChanged() {
	m.Weights.prepack()
	m.encMu.Lock()
	clear(m.encoders)
	m.encoderFrom = nil
	m.learned, m.learnedFrom = nil, nil
	m.encMu.Unlock()
	m.backPacks.mu.Lock()
	m.backPacks.m = nil
	m.backPacks.mu.Unlock()
	if s, ok := m.Weights.Input.(*LearnedStage); ok {
		s.mu.Lock()
		s.projected, s.from = nil, nil
		s.mu.Unlock()
	}
}

// paramGrads accumulates the gradients of the wanted parameters during one backward pass. A nil
// *paramGrads wants none: every method is then a no-op, so ops call it unconditionally.
type paramGrads struct {
	m     map[*Param][]float32
	ones  []float32    // a row of ones, for sums over rows as products
	zeros []float32    // a row of zeros, LayerNorm's shift when normalising without one
	tmp   [2][]float32 // scratch: normalised inputs, recomputed activations
}

func newParamGrads(list []NamedParam) *paramGrads {
	if len(list) == 0 {
		return nil
	}
	g := &paramGrads{m: map[*Param][]float32{}}
	for _, p := range list {
		g.m[p.Param] = make([]float32, p.Param.Len())
	}
	return g
}

// of returns p's gradient buffer, or nil when p's gradient is not wanted.
func (g *paramGrads) of(p *Param) []float32 {
	if g == nil || p == nil {
		return nil
	}
	return g.m[p]
}

// wants reports whether any of ps is wanted.
func (g *paramGrads) wants(ps ...*Param) bool {
	for _, p := range ps {
		if g.of(p) != nil {
			return true
		}
	}
	return false
}

// scratch returns buffer i of at least n values (contents undefined), grown once and reused.
func (g *paramGrads) scratch(i, n int) []float32 {
	if cap(g.tmp[i]) < n {
		g.tmp[i] = make([]float32, n)
	}
	return g.tmp[i][:n]
}

// onesOf returns n ones.
func (g *paramGrads) onesOf(n int) []float32 {
	if len(g.ones) < n {
		g.ones = make([]float32, n)
		for i := range g.ones {
			g.ones[i] = 1
		}
	}
	return g.ones[:n]
}

// colSum adds to dst [n] the sums over rows of x [rows, n] (row stride ld): a bias's gradient.
// Columns are split over the cores, rows summed in order: the same bits on every run.
func (g *paramGrads) colSum(dst, x []float32, rows, n, ld int) {
	par.For(n, max(64, 1<<16/max(rows, 1)), func(lo, hi int) {
		acc := dst[lo:hi]
		for r := 0; r < rows; r++ {
			add(acc, x[r*ld+lo:r*ld+hi])
		}
	})
}

// linear adds the gradients of y = x·Wᵀ + b given dy [rows, out] and its input x [rows, in]:
// dW += dyᵀ·x, db += Σ_rows dy.
func (g *paramGrads) linear(l *Linear, dy, x []float32, rows int) {
	in, out := l.In(), l.Out()
	if dw := g.of(&l.Weight); dw != nil {
		sgemm.Gemm(true, false, out, in, rows, 1, dy, out, x, in, 1, dw, in)
	}
	if db := g.of(&l.Bias); db != nil {
		g.colSum(db, dy, rows, out, out)
	}
}

// layerNorm adds the gradients of y = x̂⊙γ + β given dy [rows, n] and the input x [rows, n]:
// dγ += Σ_rows dy⊙x̂, dβ += Σ_rows dy, with x̂ normalised as the forward pass normalises it.
func (g *paramGrads) layerNorm(ln *LayerNorm, x, dy []float32, rows int) {
	dw, db := g.of(&ln.Weight), g.of(&ln.Bias)
	if dw == nil && db == nil {
		return
	}
	n := len(ln.Weight.Data)
	if db != nil {
		g.colSum(db, dy, rows, n, n)
	}
	if dw == nil {
		return
	}
	prod := g.scratch(0, rows*n)
	if len(g.zeros) < n {
		g.zeros = make([]float32, n)
	}
	ones, zeros := g.onesOf(n), g.zeros[:n]
	par.For(rows, max(1, 8192/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := prod[r*n : (r+1)*n]
			vecmath.LayerNormRow(row, x[r*n:(r+1)*n], ones, zeros, layerNormEps)
			for i, d := range dy[r*n : (r+1)*n] {
				row[i] *= d
			}
		}
	})
	g.colSum(dw, prod, rows, n, n)
}

// add adds x to p's gradient.
func (g *paramGrads) add(p *Param, x []float32) {
	if d := g.of(p); d != nil {
		add(d, x)
	}
}

// crossEntropy writes into dlogits [B, labels] the gradient of the mean cross-entropy
// L = (1/B)·Σ_b (logsumexp(z_b) − z_b[y_b]) with respect to the logits z [B, labels], and returns L
// (float64 throughout, natural log).
func crossEntropy(dlogits, z []float32, labels []int, batch, n int) float64 {
	var loss float64
	e := make([]float64, n)
	for b := 0; b < batch; b++ {
		zb := z[b*n : (b+1)*n]
		mx := math.Inf(-1)
		for _, v := range zb {
			mx = math.Max(mx, float64(v))
		}
		var s float64
		for k, v := range zb {
			e[k] = math.Exp(float64(v) - mx)
			s += e[k]
		}
		y := labels[b]
		loss += mx + math.Log(s) - float64(zb[y])
		for k := range zb {
			v := e[k] / s
			if k == y {
				v--
			}
			dlogits[b*n+k] = float32(v / float64(batch))
		}
	}
	return loss / float64(batch)
}
