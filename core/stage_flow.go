package core

import (
	"fmt"

	"github.com/perceiverkit/perceiver/fourier"
	"github.com/perceiverkit/perceiver/internal/par"
)

// FlowStage is the input stage of PerceiverForOpticalFlow (Hugging Face's PerceiverImagePreprocessor
// with prep_type "patches", temporal_downsample 2 and conv_after_patching): every pixel is a token.
// Its 54 patch values — the 3×3 neighbourhood of the pixel in each of the two frames, zero outside
// the image, ordered (frame, row offset, column offset, colour) as space_to_depth folds them — go
// through ConvAfterPatches, a linear layer (54 → 64 in the released model), and are followed by
// Fourier features of the pixel's position whose frequencies follow the training size (config
// train_size, 368×496). The decoder queries with these same tokens.
//
// The stage takes its input as two frames [2, 3, h, w], each normalised to [−1, 1] (see
// preprocess.FlowFrames), and only at the training size: Hugging Face's decoder reshapes its
// output to that size, and larger frames are tiled (see package opticalflow).
type FlowStage struct {
	ConvAfterPatches Linear `hf:"conv_after_patches"`
	Fourier          FourierStage
	TrainSize        [2]int // height, width
}

// FlowPatchChannels is the width of a pixel's patch vector: 2 frames × 3×3 pixels × 3 colours.
const FlowPatchChannels = 2 * 3 * 3 * 3

func newFlowStage(c *Config, shape func(string) []int) (*FlowStage, error) {
	size, err := c.flowTrainSize()
	if err != nil {
		return nil, err
	}
	out := 64 // Hugging Face's PerceiverImagePreprocessor out_channels
	if s := shape("conv_after_patches.weight"); len(s) == 2 {
		out = s[0]
	}
	rest := c.DModel - out - 2
	if out < 1 || rest < 4 || rest%4 != 0 {
		return nil, fmt.Errorf("config: d_model %d is not %d projected patch channels + 2 positions + 4·bands Fourier features", c.DModel, out)
	}
	s := &FlowStage{ConvAfterPatches: newLinear(FlowPatchChannels, out), TrainSize: size}
	s.Fourier.Spec = fourier.Spec{MaxResolution: size, NumBands: rest / 4}
	return s, s.Fourier.Spec.Validate()
}

func (s *FlowStage) Kind() string  { return "flow" }
func (s *FlowStage) Channels() int { return s.ConvAfterPatches.Out() + s.Fourier.Spec.Channels() }

// PixelChannels is the number of input planes per example: two RGB frames.
func (s *FlowStage) PixelChannels() int { return 6 }

func (s *FlowStage) Grid(h, w int) (TokenGrid, error) {
	if h != s.TrainSize[0] || w != s.TrainSize[1] {
		return TokenGrid{}, fmt.Errorf("the optical flow model takes frames of its training size %d×%d, not %d×%d (probe flow and opticalflow.Compute tile larger frames)",
			s.TrainSize[0], s.TrainSize[1], h, w)
	}
	return TokenGrid{Rows: h, Cols: w, Height: h, Width: w, Stride: 1}, nil
}

func (s *FlowStage) Tokens(dst, frames []float32, h, w int) {
	s.tokenRows(dst, frames, h, w, 0, h*w)
}

// tokenRows writes into dst [n, C] the tokens of the n pixels from p0 on (row-major) of the frames
// [2, 3, h, w]: the decoder remakes its queries chunk by chunk instead of holding all of them.
func (s *FlowStage) tokenRows(dst, frames []float32, h, w, p0, n int) {
	C, out := s.Channels(), s.ConvAfterPatches.Out()
	if len(dst) != n*C || len(frames) != 6*h*w || p0 < 0 || p0+n > h*w {
		panic(ShapeError(fmt.Sprintf("FlowStage.tokenRows: dst %d, frames %d values for pixels [%d, %d) of %d×%d", len(dst), len(frames), p0, p0+n, h, w)))
	}
	patches := make([]float32, n*FlowPatchChannels)
	par.For(n, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			pixelPatch(patches[i*FlowPatchChannels:(i+1)*FlowPatchChannels], frames, h, w, p0+i)
		}
	})
	feat := make([]float32, n*out)
	linear(feat, patches, n, &s.ConvAfterPatches)
	pos := s.Fourier.Features(h, w)
	P := C - out
	par.For(n, 512, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := dst[i*C : (i+1)*C]
			copy(row[:out], feat[i*out:(i+1)*out])
			copy(row[out:], pos[(p0+i)*P:(p0+i+1)*P])
		}
	})
}

// pixelPatch writes the 54 patch values of pixel p (row-major) of frames [2, 3, h, w] into dst,
// ordered (frame, dy, dx, colour): DeepMind's 3×3 patch extraction with one pixel of zero padding,
// then Hugging Face's space_to_depth with a temporal block of 2.
func pixelPatch(dst, frames []float32, h, w, p int) {
	y, x := p/w, p%w
	i := 0
	for t := 0; t < 2; t++ {
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				yy, xx := y+dy, x+dx
				inside := yy >= 0 && yy < h && xx >= 0 && xx < w
				for c := 0; c < 3; c++ {
					if inside {
						dst[i] = frames[((t*3+c)*h+yy)*w+xx]
					} else {
						dst[i] = 0
					}
					i++
				}
			}
		}
	}
}

// FlowPatches writes into dst [2, 27, h, w] the patches of frames [2, 3, h, w]: Hugging Face's
// PerceiverForOpticalFlow input, channel (dy+1)·9 + (dx+1)·3 + colour of each frame holding the
// colour of the pixel (y+dy, x+dx), zero outside the image.
func FlowPatches(dst, frames []float32, h, w int) {
	N := h * w
	if len(dst) != FlowPatchChannels*N || len(frames) != 6*N {
		panic(ShapeError(fmt.Sprintf("FlowPatches: dst %d, frames %d values for %d×%d", len(dst), len(frames), h, w)))
	}
	par.For(N, 1024, func(lo, hi int) {
		var patch [FlowPatchChannels]float32
		for p := lo; p < hi; p++ {
			pixelPatch(patch[:], frames, h, w, p)
			for c, v := range patch {
				dst[c*N+p] = v
			}
		}
	})
}

// pixelChannels is the number of input planes per example a stage takes: 3 for an image, 6 for
// the flow stage's two frames.
func pixelChannels(s InputStage) int {
	if f, ok := s.(interface{ PixelChannels() int }); ok {
		return f.PixelChannels()
	}
	return 3
}
