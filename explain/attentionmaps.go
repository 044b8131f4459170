package explain

import (
	"fmt"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core"
)

// The class-agnostic maps of `probe attention`, registered so that every map kind can be ranked
// side by side; they ignore the target. Definitions in package attention (maps.go).
func init() {
	Register(Method{Name: "mean", Description: "mean over latents of the encoder cross-attention (class-agnostic)",
		Compute: func(in Input, _ Options) (Map, error) { return attentionMap(in, "mean") }})
	Register(Method{Name: "decoder", Description: "encoder cross-attention weighted by the decoder's attention over latents (class-agnostic)",
		Compute: func(in Input, _ Options) (Map, error) { return attentionMap(in, "decoder") }})
	Register(Method{Name: "rollout", Description: "attention rollout through the latent stack, weighted by the decoder (class-agnostic)",
		Compute: func(in Input, _ Options) (Map, error) { return attentionMap(in, "rollout") }})
}

// check validates an Input: the pixels' size and, when the method explains a class, the target.
func (in Input) check(target bool) error {
	if in.Model == nil {
		return fmt.Errorf("explain: no model")
	}
	if in.H < 1 || in.W < 1 || len(in.Pixels) != 3*in.H*in.W {
		return fmt.Errorf("explain: pixel_values has %d values, want 3×%d×%d", len(in.Pixels), in.H, in.W)
	}
	if n := in.Model.Config.NumLabels(); target && (in.Target < 0 || in.Target >= n) {
		return fmt.Errorf("explain: target %d out of range: the model has %d classes (0…%d)", in.Target, n, n-1)
	}
	return nil
}

func attentionMap(in Input, kind string) (Map, error) {
	if err := in.check(false); err != nil {
		return Map{}, err
	}
	m := in.Model
	L := m.Config.NumLatents
	tr := core.Trace{EncoderAttention: true, DecoderAttention: true}
	var roll *attention.Rollout
	if kind == "rollout" {
		roll = attention.NewRollout(1, L)
		heads := m.Config.NumSelfAttentionHeads
		tr.OnSelfAttention = func(_, _ int, probs []float32) { roll.Add(probs, heads) }
	}
	out, err := m.Forward(in.Pixels, 1, in.H, in.W, tr)
	if err != nil {
		return Map{}, err
	}
	n := out.Grid.Tokens()
	cross := out.EncoderAttention
	if out.CrossHeads > 1 {
		cross = make([]float32, L*n)
		attention.MeanHeads(cross, out.EncoderAttention, out.CrossHeads, L, n)
	}
	dec := out.DecoderAttention
	if dh := len(dec) / L; dh > 1 {
		dec = make([]float32, L)
		attention.MeanHeads(dec, out.DecoderAttention, dh, 1, L)
	}
	res := Map{Method: kind, Grid: out.Grid, Values: make([]float32, n)}
	switch kind {
	case "mean":
		attention.MeanMap(res.Values, cross, L, n)
	case "decoder":
		attention.WeightedMap(res.Values, dec, cross, L, n)
	case "rollout":
		w := make([]float32, L)
		roll.LatentWeights(w, 0, dec)
		attention.WeightedMap(res.Values, w, cross, L, n)
	}
	return res, nil
}
