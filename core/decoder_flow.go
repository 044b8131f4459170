package core

import (
	"math"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// FlowDecoder is Hugging Face's PerceiverOpticalFlowDecoder: one query per pixel, and the queries
// are the input tokens themselves (FlowStage's). Each attends to the final latents (one head, no
// query residual), goes through the layer's MLP with its residual, then FinalLayer gives two
// channels, divided by RescaleFactor: the flow (u, v) at that pixel in Hugging Face's units.
// DeepMind's pixels are 20 times those (their FLOW_SCALE_FACTOR).
type FlowDecoder struct {
	CrossAttention Layer  `hf:"decoding_cross_attention"`
	FinalLayer     Linear `hf:"final_layer"`
	RescaleFactor  float32
}

// flowQueryChunk is how many pixels the decoder queries at a time: the scores of a chunk are
// flowQueryChunk × latents floats (16 MB for the released model), never the whole pixels ×
// latents matrix (1.5 GB at 368×496) unless the trace keeps it.
const flowQueryChunk = 2048

func newFlowDecoder(c *Config, fs *FlowStage) *FlowDecoder {
	C, D := fs.Channels(), c.DLatents
	// PerceiverBasicDecoder passes no qk/v channels: they follow cross_attention_shape_for_attention.
	qk, v := c.crossChannels(nil, nil, C, D)
	return &FlowDecoder{
		CrossAttention: newLayer(true, C, D, qk, v, 1, 1, false),
		FinalLayer:     newLinear(C, 2),
		RescaleFactor:  100,
	}
}

// decode queries the latents with every pixel's token, flowQueryChunk pixels at a time.
//
// With one head the query and key projections fold into one matrix, and the value and output
// projections into another, so that a chunk costs two products with the latents instead of four:
// scores = (LN1(x)·Wqᵀ + bq)·kᵀ = LN1(x)·(Wqᵀ·kᵀ) + bq·kᵀ with k = LN2(z)·Wkᵀ + bk, and
// (p·v)·Woᵀ + bo = p·(v·Woᵀ) + bo.
func (dec *FlowDecoder) decode(m *Model, hidden, frames []float32, batch int, tr Trace, o *Output) {
	fs := m.Weights.Input.(*FlowStage)
	l := &dec.CrossAttention
	a := &l.Attention.Self
	h, w := o.Height, o.Width
	N, C, L, D := o.Grid.Tokens(), o.InputChannels, o.Latents, o.Channels
	qk, vw := a.Query.Out(), a.Value.Out()
	scale := float32(1 / math.Sqrt(float64(qk)))
	wide := l.MLP.Dense1.Out()

	o.Flow = make([]float32, batch*N*2)
	if tr.DecoderAttention {
		o.DecoderAttention = make([]float32, batch*N*L)
	}
	if tr.DecoderOutput {
		o.DecoderOutput = make([]float32, batch*N*C)
	}
	chunk := min(flowQueryChunk, N)
	x, xn, y := make([]float32, chunk*C), make([]float32, chunk*C), make([]float32, chunk*C)
	hid := make([]float32, chunk*wide)
	s := make([]float32, chunk*L)
	flow := make([]float32, chunk*2)
	zn, k, v := make([]float32, L*D), make([]float32, L*qk), make([]float32, L*vw)
	qkT, bias, vo := make([]float32, C*L), make([]float32, L), make([]float32, L*C)
	for b := 0; b < batch; b++ {
		layerNorm(zn, hidden[b*L*D:(b+1)*L*D], L, a.LayerNorm2)
		linear(k, zn, L, &a.Key)
		linear(v, zn, L, &a.Value)
		sgemm.Gemm(true, true, C, L, qk, scale, a.Query.Weight.Data, C, k, qk, 0, qkT, L)
		sgemm.Gemm(false, true, 1, L, qk, scale, a.Query.Bias.Data, qk, k, qk, 0, bias, L)
		sgemm.Gemm(false, true, L, C, vw, 1, v, vw, l.Attention.Output.Dense.Weight.Data, vw, 0, vo, C)
		scores := sgemm.PackB(false, C, L, qkT, L)
		values := sgemm.PackB(false, L, C, vo, C)
		img := frames[b*6*h*w : (b+1)*6*h*w]
		for p0 := 0; p0 < N; p0 += chunk {
			n := min(chunk, N-p0)
			fs.tokenRows(x[:n*C], img, h, w, p0, n)
			layerNorm(xn[:n*C], x[:n*C], n, &a.LayerNorm1)
			sgemm.GemmPacked(n, 1, xn, C, false, scores, bias, 0, s, L)
			attention.SoftmaxRows(s, n, L, L)
			if o.DecoderAttention != nil {
				copy(o.DecoderAttention[(b*N+p0)*L:], s[:n*L])
			}
			sgemm.GemmPacked(n, 1, s, L, false, values, l.Attention.Output.Dense.Bias.Data, 0, y, C)
			// No query residual; the MLP half of the layer keeps its residual.
			layerNorm(xn[:n*C], y[:n*C], n, &l.LayerNorm)
			linear(hid[:n*wide], xn, n, &l.MLP.Dense1)
			gelu(hid[:n*wide])
			linearAdd(y[:n*C], hid, n, &l.MLP.Dense2)
			if o.DecoderOutput != nil {
				copy(o.DecoderOutput[(b*N+p0)*C:], y[:n*C])
			}
			linear(flow[:n*2], y, n, &dec.FinalLayer)
			out := o.Flow[(b*N+p0)*2 : (b*N+p0+n)*2]
			for i, f := range flow[:n*2] {
				out[i] = f / dec.RescaleFactor
			}
		}
	}
}

// flops counts the decoder's work on n pixels as Hugging Face computes it (multiply and add apart).
func (dec *FlowDecoder) flops(n, latents, d float64) float64 {
	a := &dec.CrossAttention.Attention.Self
	c, qk, v := float64(a.Query.In()), float64(a.Query.Out()), float64(a.Value.Out())
	f := 2 * n * c * qk             // queries
	f += 2 * latents * d * (qk + v) // keys and values of the latents
	f += 2 * n * latents * (qk + v) // scores and context
	f += 2 * n * v * c              // output projection
	f += 4 * n * c * float64(dec.CrossAttention.MLP.Dense1.Out())
	f += 2 * n * c * 2 // final layer
	return f
}
