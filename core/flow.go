package core

import (
	"errors"
	"fmt"
	"math"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// ForwardFrames runs the optical flow model (PerceiverForOpticalFlow) on frames [batch, 2, 3, h, w]:
// pairs of RGB frames, channel-major, each value normalised to [−1, 1] as x/255·2 − 1
// (preprocess.FlowFrames), at the model's training size (config train_size). Output.Flow holds
// the flow [batch, h, w, 2] (u along the width, v along the height) in Hugging Face's units:
// multiply by 20 for pixels, as DeepMind does. Larger frames are tiled by package opticalflow.
//
// The decoder queries the latents chunk by chunk; the pixels × latents attention is held only if
// tr.DecoderAttention asks for it.
func (m *Model) ForwardFrames(frames []float32, batch, h, w int, tr Trace) (*Output, error) {
	if _, ok := m.Weights.Input.(*FlowStage); !ok {
		return nil, fmt.Errorf("forward frames: the %s model takes one image: use Forward", m.Weights.Input.Kind())
	}
	if batch >= 1 && h >= 1 && w >= 1 && len(frames) != batch*6*h*w {
		return nil, fmt.Errorf("forward frames: frames have %d values, want %d×2×3×%d×%d", len(frames), batch, h, w)
	}
	return m.forward(frames, batch, h, w, tr)
}

// FlowScale is DeepMind's FLOW_SCALE_FACTOR: flow in pixels is 20 times the model's output.
const FlowScale = 20

// TrainSize is the frame size the optical flow model takes, height and width; ok is false for
// the image classifiers.
func (m *Model) TrainSize() (size [2]int, ok bool) {
	fs, ok := m.Weights.Input.(*FlowStage)
	if !ok {
		return [2]int{}, false
	}
	return fs.TrainSize, true
}

// fullSizeFlowConfig is deepmind/optical-flow-perceiver's architecture: 368×496 frames, 64-channel
// projected patches with 64 Fourier bands (d_model 322), 2,048 latents of 512 channels, one block of
// 24 self-attention layers with 16 heads, one cross-attention head.
func fullSizeFlowConfig() Config {
	c := DefaultConfig()
	c.Architectures = []string{ArchFlow}
	c.NumLatents, c.DLatents, c.DModel = 2048, 512, 322
	c.NumBlocks, c.NumSelfAttendsPerBlock = 1, 24
	c.NumSelfAttentionHeads, c.NumCrossAttentionHeads = 16, 1
	c.TrainSize = []int{368, 496}
	return c
}

// flowTrainSize is config train_size as (height, width).
func (c *Config) flowTrainSize() ([2]int, error) {
	if len(c.TrainSize) != 2 || c.TrainSize[0] < 3 || c.TrainSize[1] < 3 {
		return [2]int{}, errors.New("config: train_size must be [height, width] of at least 3×3 for the optical flow model")
	}
	return [2]int{c.TrainSize[0], c.TrainSize[1]}, nil
}

// validateFlow lists what the optical flow model needs of a config beyond the common checks.
func (c *Config) validateFlow() []string {
	if _, err := c.flowTrainSize(); err != nil {
		return []string{err.Error()[len("config: "):]}
	}
	return nil
}

// FlowQueryMaps returns, for the decoder query of each pixel (y, x) of frames [2, 3, h, w], which
// input pixels informed its flow vector: the query's attention over the latents pushed through the
// encoder cross-attention, Σ_i dec(p, i)·enc(i, ·) over latents i (encoder heads averaged), a map
// [h·w] that sums to 1. final is the last hidden state [L, D] of the same frames (from
// Trace.OnHiddenState). Nothing of size pixels × latents is held: the encoder attention is
// recomputed a few latents at a time.
func (m *Model) FlowQueryMaps(frames []float32, h, w int, final []float32, pixels [][2]int) ([][]float32, error) {
	fs, ok := m.Weights.Input.(*FlowStage)
	if !ok {
		return nil, fmt.Errorf("query maps: the %s model has no per-pixel queries", m.Weights.Input.Kind())
	}
	g, err := fs.Grid(h, w)
	if err != nil {
		return nil, fmt.Errorf("query maps: %w", err)
	}
	L, D, C, N := m.Config.NumLatents, m.Config.DLatents, fs.Channels(), g.Tokens()
	if len(frames) != 6*N || len(final) != L*D {
		return nil, fmt.Errorf("query maps: frames of %d values and a hidden state of %d, want 2×3×%d×%d and %d×%d", len(frames), len(final), h, w, L, D)
	}
	for _, p := range pixels {
		if p[0] < 0 || p[0] >= h || p[1] < 0 || p[1] >= w {
			return nil, fmt.Errorf("query pixel (%d, %d) is outside the %d×%d frames", p[0], p[1], h, w)
		}
	}
	nq := len(pixels)
	// The decoder's attention of each query over the latents.
	dec := m.Weights.Decoder.(*FlowDecoder)
	da := &dec.CrossAttention.Attention.Self
	qk := da.Query.Out()
	zn, k := make([]float32, L*D), make([]float32, L*qk)
	layerNorm(zn, final, L, da.LayerNorm2)
	linear(k, zn, L, &da.Key)
	weights := make([]float32, nq*L) // [nq, L]
	x, xn, q := make([]float32, C), make([]float32, C), make([]float32, qk)
	for i, p := range pixels {
		fs.tokenRows(x, frames, h, w, p[0]*w+p[1], 1)
		layerNorm(xn, x, 1, &da.LayerNorm1)
		linear(q, xn, 1, &da.Query)
		row := weights[i*L : (i+1)*L]
		sgemm.Gemm(false, true, 1, L, qk, float32(1/math.Sqrt(float64(qk))), q, qk, k, qk, 0, row, L)
		attention.SoftmaxRows(row, 1, L, L)
	}
	// The encoder's attention, latent block by latent block, weighted by the queries' attention.
	l := &m.Weights.CrossAttention
	ea := &l.Attention.Self
	eqk, heads := ea.Query.Out(), l.Heads
	dh := eqk / heads
	tokens := make([]float32, N*C)
	fs.Tokens(tokens, frames, h, w)
	layerNorm(tokens, tokens, N, ea.LayerNorm2)
	keys := make([]float32, N*eqk)
	linear(keys, tokens, N, &ea.Key)
	tokens = nil
	queries := m.encoderQueries() // [L, eqk]
	const block = 32
	s := make([]float32, block*N)
	maps := make([]float32, nq*N)
	scale := float32(1 / math.Sqrt(float64(dh)))
	for hd := 0; hd < heads; hd++ {
		for i0 := 0; i0 < L; i0 += block {
			n := min(block, L-i0)
			sgemm.Gemm(false, true, n, N, dh, scale, queries[i0*eqk+hd*dh:], eqk, keys[hd*dh:], eqk, 0, s, N)
			attention.SoftmaxRows(s, n, N, N)
			sgemm.Gemm(false, false, nq, N, n, 1/float32(heads), weights[i0:], L, s, N, 1, maps, N)
		}
	}
	out := make([][]float32, nq)
	for i := range out {
		out[i] = maps[i*N : (i+1)*N]
	}
	return out, nil
}
