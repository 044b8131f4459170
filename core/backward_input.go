package core

import (
	"fmt"
	"math"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// inputBackward writes into dimg [3, h, w] the gradient with respect to the pixels of one image img
// given the gradient dtok [N, C] with respect to its tokens. Only the stage's pixel-dependent
// channels carry gradient: position features are constants of the pixels.
func inputBackward(stage InputStage, dimg, dtok, img []float32, h, w int) error {
	switch s := stage.(type) {
	case *FourierStage:
		// Tokens are [r, g, b, pos…]: the colour channels are the pixels themselves.
		N, C := h*w, s.Channels()
		for p := 0; p < N; p++ {
			dimg[p], dimg[N+p], dimg[2*N+p] = dtok[p*C], dtok[p*C+1], dtok[p*C+2]
		}
	case *LearnedStage:
		s.backward(dimg, dtok, h, w)
	case *ConvStage:
		s.backward(dimg, dtok, img, h, w)
	default:
		return fmt.Errorf("backward: the %s input stage has no backward pass", stage.Kind())
	}
	return nil
}

// backward of the 1×1 convolution: dimg[ch, p] = Σ_c W[c, ch]·dtok[p, c] over the Conv.Out
// convolution channels; the projected positions do not depend on the pixels.
func (s *LearnedStage) backward(dimg, dtok []float32, h, w int) {
	N, C, out := h*w, s.Channels(), s.Conv.Out()
	wt := s.Conv.Weight.Data
	par.For(N, 512, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			row := dtok[p*C : p*C+out]
			var r, g, b float32
			for c, d := range row {
				r += wt[3*c] * d
				g += wt[3*c+1] * d
				b += wt[3*c+2] * d
			}
			dimg[p], dimg[N+p], dimg[2*N+p] = r, g, b
		}
	})
}

// backward of convolution → BatchNorm (eval) → ReLU → 3×3 max pool: the pool routes each token
// channel's gradient to the first maximum of its window in row-major order (as PyTorch's
// max_pool2d does), ReLU passes it where its input is positive, BatchNorm scales it by
// α = weight/√(var + ε), and the convolution's transpose scatters it back onto the pixels.
// The convolution is recomputed from img.
func (s *ConvStage) backward(dimg, dtok, img []float32, h, w int) {
	g, _ := s.Grid(h, w)
	C, out := s.Channels(), s.Conv.Out()
	ch, cw := s.convSize(h), s.convSize(w)
	feat := make([]float32, ch*cw*out)
	s.Conv.Apply(feat, img, h, w)
	bn := &s.BatchNorm
	alpha, beta := make([]float32, out), make([]float32, out)
	for c := range alpha {
		inv := float32(1 / math.Sqrt(float64(bn.RunningVar.Data[c]+batchNormEps)))
		alpha[c] = inv * bn.Weight.Data[c]
		beta[c] = bn.Bias.Data[c] - bn.RunningMean.Data[c]*alpha[c]
	}
	relu := make([]float32, len(feat))
	for p := 0; p < ch*cw; p++ {
		for c := 0; c < out; c++ {
			relu[p*out+c] = max(feat[p*out+c]*alpha[c]+beta[c], 0)
		}
	}
	dfeat := make([]float32, len(feat))
	for i := 0; i < g.Rows; i++ {
		for j := 0; j < g.Cols; j++ {
			t := i*g.Cols + j
			for c := 0; c < out; c++ {
				best, at := float32(math.Inf(-1)), -1
				for dy := 0; dy < 3; dy++ {
					for dx := 0; dx < 3; dx++ {
						k := ((2*i+dy)*cw+2*j+dx)*out + c
						if v := relu[k]; v > best || at < 0 {
							best, at = v, k
						}
					}
				}
				dfeat[at] += dtok[t*C+c]
			}
		}
	}
	for k, v := range relu {
		if v > 0 {
			dfeat[k] *= alpha[k%out]
		} else {
			dfeat[k] = 0
		}
	}
	s.Conv.backward(dimg, dfeat, h, w)
}

// backward writes into dimg [In, h, w] the gradient of Apply with respect to its input given
// dout [oh·ow, Out] (channels last): dcols = dout·W, then each column entry is added back to the
// pixel it was copied from (col2im).
func (c *Conv2d) backward(dimg, dout []float32, h, w int) {
	k, in, out := c.Kernel(), c.In(), c.Out()
	oh, ow := (h+2*c.Pad-k)/c.Stride+1, (w+2*c.Pad-k)/c.Stride+1
	K := in * k * k
	dcols := make([]float32, oh*ow*K)
	sgemm.Gemm(false, false, oh*ow, K, out, 1, dout, out, c.Weight.Data, K, 0, dcols, K)
	clear(dimg[:in*h*w])
	// Split by input channel so that no two goroutines add to the same pixel.
	par.For(in, 1, func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			plane := dimg[ci*h*w : (ci+1)*h*w]
			for y := 0; y < oh; y++ {
				for x := 0; x < ow; x++ {
					row := dcols[(y*ow+x)*K:]
					for ky := 0; ky < k; ky++ {
						iy := y*c.Stride - c.Pad + ky
						if iy < 0 || iy >= h {
							continue
						}
						r := row[(ci*k+ky)*k : (ci*k+ky+1)*k]
						for kx, v := range r {
							if ix := x*c.Stride - c.Pad + kx; ix >= 0 && ix < w {
								plane[iy*w+ix] += v
							}
						}
					}
				}
			}
		}
	})
}
