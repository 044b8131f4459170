package main

import (
	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/flagcheck"
)

// Sizes set by flags are checked here, through flagcheck, before anything they size is
// allocated: the estimates are the buffers the commands allocate in proportion to the flag (the
// batch of pixels, the noisy copies, the queue), in bytes. Counts that only set work have
// ceilings far above any real use.

// Work ceilings: values past these would not finish in a day on any machine this runs on.
const (
	maxRuns         = 1_000_000 // bench --runs
	maxPermutations = 10_000_000
	maxBootstrap    = 10_000_000
	maxSteps        = 100_000 // integrated-gradients nodes, faithfulness fractions: O(steps) passes
	maxWorkers      = 4096
	maxQueue        = 1_000_000
	maxWindow       = 1 << 16 // occlusion window and stride, pixels
)

// imageValues is the number of float32 values of one preprocessed image the model takes [3, H, W].
func imageValues(m *core.Model) float64 {
	if size, ok := m.TrainSize(); ok {
		return 2 * 3 * float64(size[0]) * float64(size[1]) // two frames
	}
	s := m.Preprocessor.Size
	return 3 * float64(max(1, s.Height)) * float64(max(1, s.Width))
}

// checkBatch refuses a --batch whose images (pixels and the model's activations, taken at 16
// values per input value as a floor) exceed the memory.
func checkBatch(flag string, batch int, m *core.Model) error {
	return flagcheck.Bytes(flag, batch, flagcheck.Mul(float64(batch), imageValues(m), 4*16))
}
