package core

import (
	"fmt"
	"strconv"
)

// TensorInfo describes one tensor a forward pass can keep, under the name probe dump writes it.
type TensorInfo struct {
	Name        string `json:"name"`
	Shape       []int  `json:"shape"` // for one image: the leading batch axis is 1
	Stage       string `json:"stage"` // input, input stage, encoder, latent stack, decoder
	Description string `json:"description"`
	// HuggingFace says where the tensor is in Hugging Face's outputs (hidden_states lists each
	// block boundary twice, so a state may be there twice or not at all).
	HuggingFace string `json:"hugging_face,omitempty"`
	// Weights names the weight set that computed it: a self-attention application's shared layer.
	Weights string `json:"weights,omitempty"`
	// Layer is, for a self-attention map or a hidden state after one, the index of the shared
	// self-attention layer (0 … num_self_attends_per_block−1) that computed it; -1 otherwise.
	Layer int `json:"layer"`
}

// Catalogue lists every tensor probe dump can write for one h×w image, in forward order, with its
// shape, its stage and where Hugging Face reports it.
func (m *Model) Catalogue(h, w int) ([]TensorInfo, TokenGrid, error) {
	g, err := m.Weights.Input.Grid(h, w)
	if err != nil {
		return nil, TokenGrid{}, err
	}
	c := &m.Config
	L, D, N, C := c.NumLatents, c.DLatents, g.Tokens(), c.DModel
	P, blocks := c.NumSelfAttendsPerBlock, c.NumBlocks
	apps := P * blocks
	stageDesc := map[string]string{
		"fourier": "pixels with their Fourier position features [r, g, b, pos…]",
		"learned": "1×1-convolution channels followed by the projected learned positions",
		"conv":    "pooled convolution channels followed by Fourier features of the pooled grid",
		"flow":    "the projected 3×3 patches of both frames followed by Fourier features of the pixel",
	}[m.Weights.Input.Kind()]
	out := []TensorInfo{
		{Name: "pixel_values", Shape: []int{1, 3, h, w}, Stage: "input", Description: "the normalised image from the processor", HuggingFace: "pixel_values", Layer: -1},
		{Name: "inputs", Shape: []int{1, N, C}, Stage: "input stage", Description: fmt.Sprintf("the %d tokens the latents attend to: %s", N, stageDesc),
			HuggingFace: "perceiver.input_preprocessor's output", Weights: "perceiver.input_preprocessor", Layer: -1},
		{Name: "cross_attentions.encoder", Shape: []int{1, c.NumCrossAttentionHeads, L, N}, Stage: "encoder",
			Description: "each latent's attention over the tokens", HuggingFace: "cross_attentions[0]", Weights: "perceiver.encoder.cross_attention", Layer: -1},
	}
	if _, flow := m.Weights.Decoder.(*FlowDecoder); flow {
		out[0] = TensorInfo{Name: "patches", Shape: []int{1, 2, FlowPatchChannels / 2, h, w}, Stage: "input",
			Description: "the 3×3 patches of the two normalised frames", HuggingFace: "inputs", Layer: -1}
	}
	hf := func(s int) string {
		var at []string
		if s < apps {
			at = append(at, strconv.Itoa((s/P)*(P+1)+s%P))
		}
		if s > 0 && s%P == 0 {
			at = append([]string{strconv.Itoa((s/P-1)*(P+1) + P)}, at...)
		}
		switch len(at) {
		case 1:
			return "hidden_states[" + at[0] + "]"
		default:
			return "hidden_states[" + at[0] + "] and [" + at[1] + "] (a block boundary, listed twice)"
		}
	}
	out = append(out, TensorInfo{Name: "hidden_states.0", Shape: []int{1, L, D}, Stage: "encoder",
		Description: "the latents after the encoder cross-attention layer", HuggingFace: hf(0), Weights: "perceiver.encoder.cross_attention", Layer: -1})
	for j := 1; j <= apps; j++ {
		layer := (j - 1) % P
		weights := "perceiver.encoder.self_attends." + strconv.Itoa(layer)
		where := fmt.Sprintf("self-attention application %d of %d (block %d, layer %d)", j, apps, (j-1)/P+1, layer)
		out = append(out,
			TensorInfo{Name: "attentions." + strconv.Itoa(j-1), Shape: []int{1, c.NumSelfAttentionHeads, L, L}, Stage: "latent stack",
				Description: "the attention probabilities of " + where, HuggingFace: "attentions[" + strconv.Itoa(j-1) + "]", Weights: weights, Layer: layer},
			TensorInfo{Name: "hidden_states." + strconv.Itoa(j), Shape: []int{1, L, D}, Stage: "latent stack",
				Description: "the latents after " + where, HuggingFace: hf(j), Weights: weights, Layer: layer})
	}
	if dec := m.Weights.Classifier(); dec != nil {
		out = append(out,
			TensorInfo{Name: "cross_attentions.decoder", Shape: []int{1, 1, 1, L}, Stage: "decoder",
				Description: "the classification query's attention over the final latents", HuggingFace: "cross_attentions[1]",
				Weights: "perceiver.decoder.decoder.decoding_cross_attention", Layer: -1},
			TensorInfo{Name: "decoder_output", Shape: []int{1, 1, D}, Stage: "decoder",
				Description: "the decoder's output before the final linear layer", Weights: "perceiver.decoder.decoder.decoding_cross_attention", Layer: -1},
			TensorInfo{Name: "logits", Shape: []int{1, dec.FinalLayer.Out()}, Stage: "decoder",
				Description: "the class logits", HuggingFace: "logits", Weights: "perceiver.decoder.decoder.final_layer", Layer: -1})
	}
	if dec, ok := m.Weights.Decoder.(*FlowDecoder); ok {
		const where = "perceiver.decoder.decoder.decoding_cross_attention"
		out = append(out,
			TensorInfo{Name: "cross_attentions.decoder", Shape: []int{1, 1, N, L}, Stage: "decoder",
				Description: "each pixel's query attention over the final latents", HuggingFace: "cross_attentions[1]", Weights: where, Layer: -1},
			TensorInfo{Name: "decoder_output", Shape: []int{1, N, C}, Stage: "decoder",
				Description: "the decoder's output per pixel before the final linear layer", Weights: where, Layer: -1},
			TensorInfo{Name: "flow", Shape: []int{1, h, w, dec.FinalLayer.Out()}, Stage: "decoder",
				Description: "the flow (u, v) per pixel in Hugging Face's units (pixels/20)", HuggingFace: "logits", Weights: "perceiver.decoder.decoder.final_layer", Layer: -1})
	}
	return out, g, nil
}
