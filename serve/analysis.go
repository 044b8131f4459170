package serve

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// Analysis is everything the explorer shows about one image, from one forward pass. It is
// immutable once built, but for the maps of costly kinds it gathers as they are asked for
// (behind a lock), and shared by concurrent requests through the cache.
type Analysis struct {
	Model        *core.Model
	H, W         int             // the map grid: the model's input size (maps over coarser tokens are drawn on it)
	Grid         core.TokenGrid  // the model's tokens on the image
	Latents      int             // L
	Applications int             // J, self-attention applications
	Image        *preprocess.RGB // the cropped and resized image the model saw, H×W
	Pixels       []float32       // [3, H, W]: that image normalised, the model's input (for kinds that run it again)
	Probs        []float32       // softmax of the logits
	Cross        []float32       // [L, H·W]: encoder cross-attention, averaged over its heads, on the pixels
	Decoder      []float32       // [L]: the decoder query's attention over the final latents
	// RolloutWeights[j] [L] is d·R_j with R_j = Â_j⋯Â_1 the rollout through the first j
	// self-attention applications (R_0 = I, so RolloutWeights[0] = Decoder).
	RolloutWeights [][]float32
	// Output is the forward pass's output with whatever the kinds' Trace asked for.
	Output *core.Output
	// Extra holds what kinds' Prepare functions computed, by kind name.
	Extra   map[string]any
	Elapsed time.Duration // forward pass and reductions
	bytes   int64

	// costly holds the maps of Costly kinds computed so far, by costlyKey; costlyBytes counts
	// them for the cache's budget.
	costlyMu    sync.Mutex
	costly      map[string][]float32
	costlyBytes int64
}

// Bytes is the memory the analysis holds, for the cache's budget: what the forward pass and
// the kinds' Prepare kept, and the maps of costly kinds computed since.
func (a *Analysis) Bytes() int64 {
	a.costlyMu.Lock()
	defer a.costlyMu.Unlock()
	return a.bytes + a.costlyBytes
}

// costlyMap returns a costly kind's map computed earlier for this analysis.
func (a *Analysis) costlyMap(key string) ([]float32, bool) {
	a.costlyMu.Lock()
	defer a.costlyMu.Unlock()
	m, ok := a.costly[key]
	return m, ok
}

// keepCostlyMap stores a costly kind's map and returns the bytes it adds.
func (a *Analysis) keepCostlyMap(key string, m []float32) int64 {
	a.costlyMu.Lock()
	defer a.costlyMu.Unlock()
	if _, ok := a.costly[key]; ok {
		return 0
	}
	if a.costly == nil {
		a.costly = map[string][]float32{}
	}
	a.costly[key] = m
	b := 4*int64(len(m)) + int64(len(key)) + 64
	a.costlyBytes += b
	return b
}

// analyze runs the model on one preprocessed image and reduces its attention for the kinds.
// The rollout products R_j are copied as the pass goes (J·L² floats, transient) because the
// decoder's attention d, which weighs them, exists only at the end.
func analyze(m *core.Model, img *preprocess.Result, kinds []Kind) (*Analysis, error) {
	start := time.Now()
	cfg := &m.Config
	L, J := cfg.NumLatents, cfg.NumSelfAttentionApplications()
	heads := cfg.NumSelfAttentionHeads
	roll := attention.NewRollout(1, L)
	products := make([][]float32, 0, J)
	tr := core.Trace{EncoderAttention: true, DecoderAttention: true}
	for _, k := range kinds {
		tr = orTrace(tr, k.Trace)
	}
	tr.OnSelfAttention = func(_, _ int, probs []float32) {
		roll.Add(probs, heads)
		products = append(products, append([]float32(nil), roll.Matrix(0)...))
	}
	out, err := m.Forward(img.Pixels, 1, img.H, img.W, tr)
	if err != nil {
		return nil, err
	}
	// An overflowing model (finite but extreme weights) is refused here, naming the tensor, so
	// that no answer carries NaN (JSON cannot, and a map of NaN draws nothing).
	for _, c := range []struct {
		name string
		v    []float32
	}{{"logits", out.Logits}, {"encoder cross-attention", out.EncoderAttention}, {"decoder attention", out.DecoderAttention}} {
		if err := checkFinite(c.name, c.v); err != nil {
			return nil, err
		}
	}
	n := out.Grid.Tokens()
	if out.Latents != L || len(out.EncoderAttention) != out.CrossHeads*L*n || len(out.DecoderAttention) == 0 || len(out.DecoderAttention)%L != 0 {
		return nil, fmt.Errorf("forward pass returned attention of unexpected shape: encoder %d values for %d heads × %d latents × %d pixels, decoder %d values",
			len(out.EncoderAttention), out.CrossHeads, L, n, len(out.DecoderAttention))
	}
	if len(products) != J {
		return nil, fmt.Errorf("rollout saw %d self-attention applications, the model has %d", len(products), J)
	}
	a := &Analysis{
		Model: m, H: img.H, W: img.W, Grid: out.Grid, Latents: L, Applications: J, Image: img.Resized, Pixels: img.Pixels,
		Cross: out.EncoderAttention, Decoder: out.DecoderAttention, Output: out, Extra: map[string]any{},
	}
	if out.CrossHeads > 1 {
		a.Cross = make([]float32, L*n)
		attention.MeanHeads(a.Cross, out.EncoderAttention, out.CrossHeads, L, n)
		out.EncoderAttention = nil // the average is all the maps use
	}
	if !out.Grid.Pixel() {
		// Tokens coarser than pixels (the conv model's pooled grid): each latent's map is drawn
		// on the pixels with the grid's geometry, every token filling its cell, so that every map
		// and overlay downstream is on the image the model saw.
		px := make([]float32, L*img.H*img.W)
		for l := 0; l < L; l++ {
			out.Grid.ToPixels(px[l*img.H*img.W:(l+1)*img.H*img.W], a.Cross[l*n:(l+1)*n])
		}
		a.Cross = px
	}
	if dh := len(out.DecoderAttention) / L; dh > 1 {
		a.Decoder = make([]float32, L)
		attention.MeanHeads(a.Decoder, out.DecoderAttention, dh, 1, L)
	}
	a.RolloutWeights = make([][]float32, J+1)
	a.RolloutWeights[0] = a.Decoder
	for j, r := range products {
		w := make([]float32, L)
		attention.WeightedMap(w, a.Decoder, r, L, L) // w[k] = Σ_i d[i]·R_j[i, k]
		a.RolloutWeights[j+1] = w
	}
	a.Probs = make([]float32, len(out.Logits))
	for i, p := range core.Softmax(out.Logits) {
		a.Probs[i] = float32(p)
	}
	a.bytes = 4*int64(len(a.Cross)+len(a.Probs)+(J+2)*L+len(out.Logits)+len(a.Pixels)) + int64(len(img.Resized.Pix))
	a.bytes += outputBytes(out)
	for _, k := range kinds {
		if k.Prepare == nil {
			continue
		}
		b, err := k.Prepare(a)
		if err != nil {
			return nil, fmt.Errorf("map %s: %w", k.Name, err)
		}
		a.bytes += b
	}
	a.Elapsed = time.Since(start)
	return a, nil
}

// orTrace returns the union of what two traces keep (callbacks are not merged).
func orTrace(a, b core.Trace) core.Trace {
	a.Inputs = a.Inputs || b.Inputs
	a.HiddenStates = a.HiddenStates || b.HiddenStates
	a.SelfAttentions = a.SelfAttentions || b.SelfAttentions
	a.EncoderAttention = a.EncoderAttention || b.EncoderAttention
	a.DecoderAttention = a.DecoderAttention || b.DecoderAttention
	a.DecoderOutput = a.DecoderOutput || b.DecoderOutput
	return a
}

// outputBytes counts what a forward pass's output holds besides the logits and, when it is
// the encoder attention itself, Analysis.Cross (already counted).
func outputBytes(o *core.Output) int64 {
	n := len(o.Inputs) + len(o.DecoderOutput)
	for _, h := range o.HiddenStates {
		n += len(h)
	}
	for _, s := range o.SelfAttentions {
		n += len(s)
	}
	return 4 * int64(n)
}

// prediction is one row of an analysis' top-k.
type prediction struct {
	Index int     `json:"index"`
	Label string  `json:"label"`
	Prob  float32 `json:"prob"`
}

// top returns the k most probable classes, most probable first (ties: lower index first).
func top(probs []float32, labels []string, k int) []prediction {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
	k = min(k, len(idx))
	out := make([]prediction, k)
	for i, c := range idx[:k] {
		label := ""
		if c < len(labels) {
			label = labels[c]
		}
		out[i] = prediction{Index: c, Label: label, Prob: probs[c]}
	}
	return out
}

// checkFinite returns an error naming what and the first NaN or ±Inf in v, or nil.
func checkFinite(what string, v []float32) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("the model gives non-finite %s (%v at index %d)", what, x, i)
		}
	}
	return nil
}
