package core

import (
	"strconv"

	"github.com/perceiverkit/perceiver/core/weights"
)

// Tensors names the kept results as Hugging Face does, with their shapes: `inputs` [B,N,C],
// `hidden_states.{i}` [B,L,D], `attentions.{j}` [B,heads,L,L], `cross_attentions.encoder`
// [B,heads,L,N], `cross_attentions.decoder` [B,1,1,L], `decoder_output` [B,1,D], `logits`
// [B,labels]; for the flow model `cross_attentions.decoder` [B,1,N,L], `decoder_output` [B,N,C]
// and `flow` [B,H,W,2]. The tensors share the output's memory.
func (o *Output) Tensors() []*weights.Tensor {
	B, L, D, N := o.Batch, o.Latents, o.Channels, o.Grid.Tokens()
	var ts []*weights.Tensor
	put := func(name string, data []float32, shape ...int) {
		if data != nil {
			ts = append(ts, &weights.Tensor{Name: name, DType: "F32", Shape: shape, Data: data})
		}
	}
	put("inputs", o.Inputs, B, N, o.InputChannels)
	for i, h := range o.HiddenStates {
		put("hidden_states."+strconv.Itoa(i), h, B, L, D)
	}
	for j, a := range o.SelfAttentions {
		put("attentions."+strconv.Itoa(j), a, B, o.Heads, L, L)
	}
	put("cross_attentions.encoder", o.EncoderAttention, B, o.CrossHeads, L, N)
	q := 1 // decoder queries: one, or one per pixel for the flow decoder
	if o.Flow != nil {
		q = N
	}
	put("cross_attentions.decoder", o.DecoderAttention, B, 1, q, L)
	put("decoder_output", o.DecoderOutput, B, q, len(o.DecoderOutput)/(B*q))
	put("logits", o.Logits, B, len(o.Logits)/B)
	put("flow", o.Flow, B, o.Height, o.Width, 2)
	return ts
}
