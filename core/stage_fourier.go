package core

import (
	"fmt"
	"sync"

	"github.com/perceiverkit/perceiver/fourier"
	"github.com/perceiverkit/perceiver/internal/par"
)

// FourierStage is the input stage of PerceiverForImageClassificationFourier: every pixel is a
// token, its three colour values followed by Fourier features of its position, [r, g, b, pos…].
// It has no weights. Its frequencies follow the resolution the model was built for (the
// processor's output size); its positions follow each input's own size.
type FourierStage struct {
	Spec fourier.Spec

	mu        sync.Mutex
	positions map[[2]int][]float32 // features [h·w, Spec.Channels()] per input size
}

func newFourierStage(c *Config, prep [2]int) (*FourierStage, error) {
	if c.DModel < 9 || (c.DModel-5)%4 != 0 {
		return nil, fmt.Errorf("config: d_model %d is not 3 colour channels + 2 positions + 4·bands Fourier features", c.DModel)
	}
	s := &FourierStage{Spec: fourier.Spec{MaxResolution: prep, NumBands: (c.DModel - 5) / 4}}
	return s, s.Spec.Validate()
}

func (s *FourierStage) Kind() string  { return "fourier" }
func (s *FourierStage) Channels() int { return 3 + s.Spec.Channels() }

func (s *FourierStage) Grid(h, w int) (TokenGrid, error) {
	return TokenGrid{Rows: h, Cols: w, Height: h, Width: w, Stride: 1}, nil
}

func (s *FourierStage) Tokens(dst, img []float32, h, w int) {
	N, C := h*w, s.Channels()
	if len(dst) != N*C || len(img) != 3*N {
		panic(ShapeError(fmt.Sprintf("FourierStage.Tokens: dst %d, img %d values for %d×%d", len(dst), len(img), h, w)))
	}
	pixelTokens(dst, img, s.Features(h, w), N, C)
}

// Features returns the cached position features [h·w, Spec.Channels()] of an h×w input.
func (s *FourierStage) Features(h, w int) []float32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]int{h, w}
	if p, ok := s.positions[key]; ok {
		return p
	}
	if s.positions == nil {
		s.positions = map[[2]int][]float32{}
	}
	p := make([]float32, h*w*s.Spec.Channels())
	fourier.Features(p, h, w, s.Spec)
	s.positions[key] = p
	return p
}

// pixelTokens fills dst [n, C] with n tokens made of a pixel's three colour values (img holds the
// planes, N values apart) followed by its features pos [n, C-3].
func pixelTokens(dst, img, pos []float32, N, C int) {
	n := len(dst) / C
	P := C - 3
	par.For(n, 512, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := dst[i*C : (i+1)*C]
			row[0], row[1], row[2] = img[i], img[N+i], img[2*N+i]
			copy(row[3:], pos[i*P:(i+1)*P])
		}
	})
}
