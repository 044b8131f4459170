package explain

import (
	"fmt"
	"sort"

	"github.com/perceiverkit/perceiver/core"
)

// The relevance-propagation presets: core.Rules for the backward pass. Rules as in LXT's
// efficient implementation (README, section "Relevance propagation"): linear layers,
// convolutions, BatchNorm, ReLU, max pooling and residuals keep their gradient everywhere.
var (
	// AttnLRP (Achtibat et al., ICML 2024): LayerNorm's σ constant, the identity rule on GELU, the
	// uniform rule on both attention products (Q and K get ¼, V ½ of the gradient; the softmax
	// keeps its Jacobian).
	AttnLRP = core.Rules{LayerNormConstantStd: true, GELUIdentity: true, Attention: core.AttentionUniform}
	// CPLRP (Ali et al., ICML 2022): LayerNorm's σ and the attention probabilities constant; GELU
	// keeps its derivative.
	CPLRP = core.Rules{LayerNormConstantStd: true, Attention: core.AttentionConstant}
)

// relevanceRules are the relevance methods by name.
var relevanceRules = map[string]core.Rules{"attnlrp": AttnLRP, "cp-lrp": CPLRP}

// TopLatents is how many of the most relevant latents a relevance map keeps the encoder
// attention of (Map.TopLatents).
const TopLatents = 8

func init() {
	Register(Method{Name: "attnlrp", Compute: relevanceMethod("attnlrp"),
		Description: "AttnLRP (Achtibat et al., 2024): relevance Σ_c x·ĝ with LayerNorm σ constant, GELU's identity rule and the uniform rule on attention (signed)"})
	Register(Method{Name: "cp-lrp", Compute: relevanceMethod("cp-lrp"),
		Description: "CP-LRP (Ali et al., 2022): relevance Σ_c x·ĝ with LayerNorm σ and the attention probabilities constant (signed)"})
}

func relevanceMethod(name string) func(Input, Options) (Map, error) {
	return func(in Input, _ Options) (Map, error) { return Relevance(in, name) }
}

// Conservation is where a relevance map's logit y went: the relevance that reached the pixels,
// the position inputs (Fourier features, or the learned position table), the initial latent array
// and the decoder's query; Absorbed is the rest, y minus those four, taken up by the biases, the
// softmaxes and (CP-LRP) the GELUs.
type Conservation struct {
	Pixels    float64 `json:"pixels"`
	Positions float64 `json:"positions"`
	Latents   float64 `json:"latents"`
	Logit     float64 `json:"logit"`
	Query     float64 `json:"query"`
	Absorbed  float64 `json:"absorbed"`
}

// LatentMap is one latent's encoder cross-attention over the token grid, with its relevance.
type LatentMap struct {
	Index     int
	Relevance float64
	Attention []float32 // [Grid.Tokens()], the latent's row of the encoder attention
}

// Relevance computes the relevance method name ("attnlrp" or "cp-lrp") in one forward and one
// modified backward pass: the map Σ_c x_c ⊙ ĝ_x,c on the pixel grid (signed), with its
// conservation record, each latent's relevance after the encoder cross-attention (Map.Latents)
// and the TopLatents most relevant latents' attention (Map.TopLatents, by relevance, largest
// first).
func Relevance(in Input, name string) (Map, error) {
	rules, ok := relevanceRules[name]
	if !ok {
		return Map{}, fmt.Errorf("explain: %q is not a relevance method (attnlrp, cp-lrp)", name)
	}
	if err := in.check(true); err != nil {
		return Map{}, err
	}
	m := in.Model
	gt := core.GradTrace{Rules: rules, Budget: true, Targets: []int{in.Target}}
	out, g, err := m.ForwardBackward(in.Pixels, 1, in.H, in.W, core.Trace{EncoderAttention: true}, gt)
	if err != nil {
		return Map{}, err
	}
	n := in.H * in.W
	vals := make([]float32, n)
	for c := 0; c < 3; c++ {
		for p := range vals {
			vals[p] += in.Pixels[c*n+p] * g.Pixels[c*n+p]
		}
	}
	b := g.Budget[0]
	y := float64(out.Logits[in.Target])
	cons := &Conservation{Pixels: b.Pixels, Positions: b.Positions, Latents: b.Latents, Logit: y, Query: b.Query}
	cons.Absorbed = y - cons.Pixels - cons.Positions - cons.Latents - cons.Query
	lat := make([]float32, len(b.PerLatent))
	order := make([]int, len(lat))
	for i, v := range b.PerLatent {
		lat[i], order[i] = float32(v), i
	}
	sort.SliceStable(order, func(i, j int) bool { return b.PerLatent[order[i]] > b.PerLatent[order[j]] })
	N := out.Grid.Tokens()
	var top []LatentMap
	for _, i := range order[:min(TopLatents, len(order))] {
		top = append(top, LatentMap{Index: i, Relevance: b.PerLatent[i], Attention: append([]float32(nil), out.EncoderAttention[i*N:(i+1)*N]...)})
	}
	return Map{Method: name, Grid: pixelGrid(in.H, in.W), Values: vals, Signed: true,
		Conservation: cons, Latents: lat, TopLatents: top, AttentionGrid: out.Grid}, nil
}

// IsRelevance reports whether a method is a relevance propagation (attnlrp, cp-lrp), whose maps
// carry a conservation record and per-latent relevance.
func IsRelevance(name string) bool { _, ok := relevanceRules[name]; return ok }
