package core

import (
	"fmt"
	"math"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// inputBackward writes into dimg [3, h, w], when not nil, the gradient with respect to the pixels
// of one image img given the gradient dtok [N, C] with respect to its tokens. Only the stage's
// pixel-dependent channels carry gradient to the pixels: position features are constants of the
// pixels. pg, when not nil, accumulates the stage's parameter gradients: the convolutions' and
// BatchNorm's here; the learned positions' channels are added to dpos [N, c2] (summed over the
// batch, then carried through the projection once by positionsBackward).
func inputBackward(stage InputStage, dimg, dtok, img []float32, h, w int, pg *paramGrads, dpos []float32) error {
	switch s := stage.(type) {
	case *FourierStage:
		// Tokens are [r, g, b, pos…]: the colour channels are the pixels themselves.
		if dimg == nil {
			return nil
		}
		N, C := h*w, s.Channels()
		for p := 0; p < N; p++ {
			dimg[p], dimg[N+p], dimg[2*N+p] = dtok[p*C], dtok[p*C+1], dtok[p*C+2]
		}
	case *LearnedStage:
		if dimg != nil {
			s.backward(dimg, dtok, h, w)
		}
		s.paramBackward(pg, dpos, dtok, img, h, w)
	case *ConvStage:
		s.backward(dimg, dtok, img, h, w, pg)
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

// stageHasParams reports whether pg wants any of the input stage's parameters.
func stageHasParams(stage InputStage, pg *paramGrads) bool {
	switch s := stage.(type) {
	case *LearnedStage:
		return pg.wants(&s.Conv.Weight, s.Conv.Bias, &s.Positions, &s.Projection.Weight, &s.Projection.Bias)
	case *ConvStage:
		return pg.wants(&s.Conv.Weight, s.Conv.Bias, &s.BatchNorm.Weight, &s.BatchNorm.Bias)
	}
	return false
}

// paramBackward adds the 1×1 convolution's gradients from one image's token gradient dtok [N, C]
// (dW[c, ch] = Σ_p dtok[p, c]·img[ch, p], db[c] = Σ_p dtok[p, c]) and adds the position
// channels' gradient to dpos [N, c2].
func (s *LearnedStage) paramBackward(pg *paramGrads, dpos, dtok, img []float32, h, w int) {
	N, C, out := h*w, s.Channels(), s.Conv.Out()
	if dw := pg.of(&s.Conv.Weight); dw != nil {
		sgemm.Gemm(true, true, out, 3, N, 1, dtok, C, img, N, 1, dw, 3)
	}
	if db := pg.of(s.Conv.Bias); db != nil {
		pg.colSum(db, dtok, N, out, C)
	}
	if dpos == nil {
		return
	}
	P := C - out
	par.For(N, 1024, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			add(dpos[p*P:(p+1)*P], dtok[p*C+out:(p+1)*C])
		}
	})
}

// positionsBackward adds the gradients of the projection and the position table given dpos
// [N, c2], the gradient with respect to the projected positions summed over the batch.
func (s *LearnedStage) positionsBackward(pg *paramGrads, dpos []float32) {
	n := s.Positions.Shape[0]
	pg.linear(&s.Projection, dpos, s.Positions.Data, n)
	if d := pg.of(&s.Positions); d != nil {
		linearBackward(d, dpos, n, &s.Projection, true)
	}
}

// backward of convolution → BatchNorm (eval) → ReLU → 3×3 max pool: the pool routes each token
// channel's gradient to the first maximum of its window in row-major order (as PyTorch's
// max_pool2d does), ReLU passes it where its input is positive, BatchNorm scales it by
// α = weight/√(var + ε), and the convolution's transpose scatters it back onto the pixels (when
// dimg is not nil). The convolution is recomputed from img. pg, when not nil, accumulates the
// gradients of BatchNorm's weight and bias (the running statistics are frozen buffers: eval mode)
// and of the convolution's weights.
func (s *ConvStage) backward(dimg, dtok, img []float32, h, w int, pg *paramGrads) {
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
		if v <= 0 {
			dfeat[k] = 0
		}
	}
	// dfeat is now the gradient at BatchNorm's output y = (x − mean)·inv·weight + bias.
	if dw := pg.of(&bn.Weight); dw != nil {
		for k, d := range dfeat {
			c := k % out
			inv := float32(1 / math.Sqrt(float64(bn.RunningVar.Data[c]+batchNormEps)))
			dw[c] += d * (feat[k] - bn.RunningMean.Data[c]) * inv
		}
	}
	if db := pg.of(&bn.Bias); db != nil {
		pg.colSum(db, dfeat, ch*cw, out, out)
	}
	for k := range dfeat {
		dfeat[k] *= alpha[k%out]
	}
	s.Conv.paramBackward(pg, dfeat, out, img, h, w)
	if dimg != nil {
		s.Conv.backward(dimg, dfeat, h, w)
	}
}

// paramBackward adds the convolution's gradients given dout [oh·ow, Out] (row stride ld) for the
// input img [In, h, w]: dW = doutᵀ·im2col(img), db = Σ dout.
func (c *Conv2d) paramBackward(pg *paramGrads, dout []float32, ld int, img []float32, h, w int) {
	dw, db := pg.of(&c.Weight), pg.of(c.Bias)
	if dw == nil && db == nil {
		return
	}
	k, in, out := c.Kernel(), c.In(), c.Out()
	oh, ow := (h+2*c.Pad-k)/c.Stride+1, (w+2*c.Pad-k)/c.Stride+1
	if dw != nil {
		K := in * k * k
		cols := pg.scratch(1, oh*ow*K)
		c.im2col(cols, img, h, w)
		sgemm.Gemm(true, false, out, K, oh*ow, 1, dout, ld, cols, K, 1, dw, K)
	}
	if db != nil {
		pg.colSum(db, dout, oh*ow, out, ld)
	}
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
