package core

import (
	"fmt"
	"slices"
	"sync"

	"github.com/perceiverkit/perceiver/internal/par"
)

// LearnedStage is the input stage of PerceiverForImageClassificationLearned: a 1×1 convolution of
// the colours to Conv.Out channels, followed by trainable positions (one row per pixel, row-major)
// passed through a linear projection: tokens [conv(rgb_p), Projection(Positions_p)].
//
// The positions are a table of the size the model was trained at (image_size², 224² for the
// released model), so the stage takes that size only; Hugging Face offers no interpolation here.
type LearnedStage struct {
	Conv       Conv2d `hf:"convnet_1x1"`
	Positions  Param  `hf:"position_embeddings.position_embeddings"` // [H·W, P]
	Projection Linear `hf:"positions_projection"`                    // [C − Conv.Out, P]

	Height, Width int // the size the positions were trained at

	mu        sync.Mutex
	projected []float32 // Projection(Positions) [H·W, C − Conv.Out], the same for every image
	from      []*float32
}

// newLearnedStage lays out the stage; shape gives the shape of a checkpoint tensor by its name
// under the stage, or nil (then Hugging Face's split of d_model: half convolution, half positions).
func newLearnedStage(c *Config, shape func(string) []int) (*LearnedStage, error) {
	out := c.DModel / 2
	if s := shape("convnet_1x1.weight"); len(s) == 4 {
		out = s[0]
	}
	proj := c.DModel - out
	pos := proj
	if s := shape("position_embeddings.position_embeddings"); len(s) == 2 {
		pos = s[1]
	}
	if out < 1 || proj < 1 || pos < 1 {
		return nil, fmt.Errorf("config: d_model %d cannot hold %d convolution channels and learned positions", c.DModel, out)
	}
	if c.ImageSize < 1 {
		return nil, fmt.Errorf("config: image_size %d must be positive (the learned positions cover image_size² pixels)", c.ImageSize)
	}
	n := c.ImageSize * c.ImageSize
	return &LearnedStage{
		Conv:       newConv2d(3, out, 1, 1, 0, true),
		Positions:  newParam(n, pos),
		Projection: newLinear(pos, proj),
		Height:     c.ImageSize, Width: c.ImageSize,
	}, nil
}

func (s *LearnedStage) Kind() string  { return "learned" }
func (s *LearnedStage) Channels() int { return s.Conv.Out() + s.Projection.Out() }

func (s *LearnedStage) Grid(h, w int) (TokenGrid, error) {
	if h != s.Height || w != s.Width {
		return TokenGrid{}, fmt.Errorf("the learned model takes %d×%d images only (its %d positions are a trained table), not %d×%d",
			s.Height, s.Width, s.Height*s.Width, h, w)
	}
	return TokenGrid{Rows: h, Cols: w, Height: h, Width: w, Stride: 1}, nil
}

func (s *LearnedStage) Tokens(dst, img []float32, h, w int) {
	N, C, out := h*w, s.Channels(), s.Conv.Out()
	if len(dst) != N*C || len(img) != 3*N || N != s.Positions.Shape[0] {
		panic(ShapeError(fmt.Sprintf("LearnedStage.Tokens: dst %d, img %d values for %d×%d", len(dst), len(img), h, w)))
	}
	pos := s.projectedPositions()
	P := C - out
	wt, b := s.Conv.Weight.Data, s.Conv.Bias.Data
	par.For(N, 512, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			row := dst[p*C : (p+1)*C]
			r, g, bl := img[p], img[N+p], img[2*N+p]
			for c := 0; c < out; c++ {
				row[c] = b[c] + wt[3*c]*r + wt[3*c+1]*g + wt[3*c+2]*bl
			}
			copy(row[out:], pos[p*P:(p+1)*P])
		}
	})
}

// projectedPositions returns Projection(Positions), computed once while the weights stay those it
// was computed from.
func (s *LearnedStage) projectedPositions() []float32 {
	from := []*float32{s.Positions.first(), s.Projection.Weight.first(), s.Projection.Bias.first()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.projected == nil || !slices.Equal(from, s.from) {
		n := s.Positions.Shape[0]
		s.projected = make([]float32, n*s.Projection.Out())
		linear(s.projected, s.Positions.Data, n, &s.Projection)
		s.from = from
	}
	return s.projected
}
