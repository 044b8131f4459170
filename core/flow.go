package core

import (
	"errors"
	"fmt"
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
