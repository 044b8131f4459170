package core

import (
	"fmt"
	"math"

	"github.com/perceiverkit/perceiver/fourier"
	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// ConvStage is the input stage of PerceiverForImageClassificationConvProcessing: a 7×7
// convolution of stride 2 with Hugging Face's symmetric zero padding of 3 and no bias, BatchNorm
// in eval mode (running statistics), ReLU and a 3×3 max pool of stride 2 without padding, which
// turns a 224² image into a 55×55 grid of Conv.Out channels (DeepMind's original pads the pool
// and gets 56×56; Hugging Face does not). Each token is those channels followed by Fourier
// features of its place on the pooled grid, whose frequencies follow a quarter of the processor
// size (Hugging Face hard-codes 56×56 for 224²).
type ConvStage struct {
	Conv      Conv2d      `hf:"convnet.conv"`
	BatchNorm BatchNorm2d `hf:"convnet.batchnorm"`
	Fourier   FourierStage
}

func newConvStage(c *Config, prep [2]int, shape func(string) []int) (*ConvStage, error) {
	out := 64 // Hugging Face's Conv2DDownsample
	if s := shape("convnet.conv.weight"); len(s) == 4 {
		out = s[0]
	}
	rest := c.DModel - out - 2
	if out < 1 || rest < 4 || rest%4 != 0 {
		return nil, fmt.Errorf("config: d_model %d is not %d convolution channels + 2 positions + 4·bands Fourier features", c.DModel, out)
	}
	s := &ConvStage{
		Conv:      newConv2d(3, out, 7, 2, 3, false),
		BatchNorm: newBatchNorm2d(out),
	}
	s.Fourier.Spec = fourier.Spec{MaxResolution: [2]int{prep[0] / 4, prep[1] / 4}, NumBands: rest / 4}
	if err := s.Fourier.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("conv input stage (max resolution = processor size / 4): %w", err)
	}
	return s, nil
}

func (s *ConvStage) Kind() string  { return "conv" }
func (s *ConvStage) Channels() int { return s.Conv.Out() + s.Fourier.Spec.Channels() }

// convSize and poolSize are the output sizes of the convolution and of the pool along one axis.
func (s *ConvStage) convSize(n int) int { return (n+2*s.Conv.Pad-s.Conv.Kernel())/s.Conv.Stride + 1 }
func poolSize(n int) int                { return (n-3)/2 + 1 }

func (s *ConvStage) Grid(h, w int) (TokenGrid, error) {
	ch, cw := s.convSize(h), s.convSize(w)
	if ch < 3 || cw < 3 {
		return TokenGrid{}, fmt.Errorf("the conv model needs images of at least 5×5 pixels, not %d×%d", h, w)
	}
	return TokenGrid{Rows: poolSize(ch), Cols: poolSize(cw), Height: h, Width: w, Stride: 4, Offset: 2}, nil
}

func (s *ConvStage) Tokens(dst, img []float32, h, w int) {
	g, err := s.Grid(h, w)
	if err != nil {
		panic(ShapeError("ConvStage.Tokens: " + err.Error()))
	}
	N, C, out := g.Tokens(), s.Channels(), s.Conv.Out()
	if len(dst) != N*C || len(img) != 3*h*w {
		panic(ShapeError(fmt.Sprintf("ConvStage.Tokens: dst %d, img %d values for %d×%d", len(dst), len(img), h, w)))
	}
	ch, cw := s.convSize(h), s.convSize(w)
	feat := make([]float32, ch*cw*out) // [ch·cw, out]: channels last, as the tokens want them
	s.Conv.Apply(feat, img, h, w)
	s.BatchNorm.applyReLU(feat, out)
	pos := s.Fourier.Features(g.Rows, g.Cols)
	P := C - out
	par.For(g.Rows, 4, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for j := 0; j < g.Cols; j++ {
				t := i*g.Cols + j
				row := dst[t*C : (t+1)*C]
				maxPool3(row[:out], feat, 2*i, 2*j, cw, out)
				copy(row[out:], pos[t*P:(t+1)*P])
			}
		}
	})
}

// maxPool3 writes into dst [out] the channel-wise maximum over the 3×3 window of feat [·, cw, out]
// whose top-left corner is (y, x).
func maxPool3(dst, feat []float32, y, x, cw, out int) {
	copy(dst, feat[(y*cw+x)*out:(y*cw+x+1)*out])
	for dy := 0; dy < 3; dy++ {
		for dx := 0; dx < 3; dx++ {
			src := feat[((y+dy)*cw+x+dx)*out:]
			for c, v := range src[:out] {
				if v > dst[c] {
					dst[c] = v
				}
			}
		}
	}
}

// Conv2d is a 2-D convolution over [in, h, w] images with square kernels, zero padding Pad on every
// side, and weights [out, in, k, k] as PyTorch stores them. Bias is nil for a convolution without.
type Conv2d struct {
	Weight Param  `hf:"weight"`
	Bias   *Param `hf:"bias"`
	Stride int
	Pad    int
}

func newConv2d(in, out, k, stride, pad int, bias bool) Conv2d {
	c := Conv2d{Weight: newParam(out, in, k, k), Stride: stride, Pad: pad}
	if bias {
		b := newParam(out)
		c.Bias = &b
	}
	return c
}

// In, Out and Kernel are the input channels, output channels and kernel side.
func (c *Conv2d) In() int     { return c.Weight.Shape[1] }
func (c *Conv2d) Out() int    { return c.Weight.Shape[0] }
func (c *Conv2d) Kernel() int { return c.Weight.Shape[2] }

// Apply writes into dst [oh·ow, Out] (channels last) the convolution of img [In, h, w].
func (c *Conv2d) Apply(dst, img []float32, h, w int) {
	k, in, out := c.Kernel(), c.In(), c.Out()
	oh, ow := (h+2*c.Pad-k)/c.Stride+1, (w+2*c.Pad-k)/c.Stride+1
	K := in * k * k
	if len(dst) != oh*ow*out || len(img) != in*h*w {
		panic(ShapeError(fmt.Sprintf("Conv2d.Apply: dst %d, img %d values for [%d, %d, %d]", len(dst), len(img), in, h, w)))
	}
	cols := make([]float32, oh*ow*K)
	c.im2col(cols, img, h, w)
	beta := float32(0)
	if c.Bias != nil {
		for r := 0; r < oh*ow; r++ {
			copy(dst[r*out:(r+1)*out], c.Bias.Data)
		}
		beta = 1
	}
	sgemm.Gemm(false, true, oh*ow, out, K, 1, cols, K, c.Weight.Data, K, beta, dst, out)
}

// im2col writes into cols [oh·ow, In·k·k] the windows of img [In, h, w]: row (y, x) holds the
// window of every input channel, in the weights' (c, ky, kx) order, zeros where it overhangs.
func (c *Conv2d) im2col(cols, img []float32, h, w int) {
	k, in := c.Kernel(), c.In()
	oh, ow := (h+2*c.Pad-k)/c.Stride+1, (w+2*c.Pad-k)/c.Stride+1
	K := in * k * k
	par.For(oh, 4, func(lo, hi int) {
		for y := lo; y < hi; y++ {
			for x := 0; x < ow; x++ {
				row := cols[(y*ow+x)*K : (y*ow+x+1)*K]
				for ci := 0; ci < in; ci++ {
					plane := img[ci*h*w : (ci+1)*h*w]
					for ky := 0; ky < k; ky++ {
						iy := y*c.Stride - c.Pad + ky
						r := row[(ci*k+ky)*k : (ci*k+ky+1)*k]
						if iy < 0 || iy >= h {
							clear(r)
							continue
						}
						for kx := range r {
							ix := x*c.Stride - c.Pad + kx
							if ix < 0 || ix >= w {
								r[kx] = 0
							} else {
								r[kx] = plane[iy*w+ix]
							}
						}
					}
				}
			}
		}
	})
}

// BatchNorm2d is PyTorch's BatchNorm2d in eval mode: y = (x − mean)/√(var + eps)·weight + bias with
// the running statistics and eps 1e-5. num_batches_tracked is a training counter, read and unused.
type BatchNorm2d struct {
	Weight            Param  `hf:"weight"`
	Bias              Param  `hf:"bias"`
	RunningMean       Param  `hf:"running_mean"`
	RunningVar        Param  `hf:"running_var"`
	NumBatchesTracked Buffer `hf:"num_batches_tracked"`
}

func newBatchNorm2d(n int) BatchNorm2d {
	return BatchNorm2d{Weight: newParam(n), Bias: newParam(n), RunningMean: newParam(n), RunningVar: newParam(n)}
}

// batchNormEps is PyTorch's BatchNorm2d default, which Hugging Face keeps.
const batchNormEps = 1e-5

// applyReLU normalises x [positions, n] (channels last) in place and applies ReLU, as PyTorch's
// eval-mode kernel computes it: x·α + β with α = weight/√(var + eps) and β = bias − mean·α.
func (b *BatchNorm2d) applyReLU(x []float32, n int) {
	alpha, beta := make([]float32, n), make([]float32, n)
	for c := range alpha {
		inv := float32(1 / math.Sqrt(float64(b.RunningVar.Data[c]+batchNormEps)))
		alpha[c] = inv * b.Weight.Data[c]
		beta[c] = b.Bias.Data[c] - b.RunningMean.Data[c]*alpha[c]
	}
	par.For(len(x)/n, 1024, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			row := x[p*n : (p+1)*n]
			for c, v := range row {
				row[c] = max(v*alpha[c]+beta[c], 0)
			}
		}
	})
}
