package explain

import (
	"fmt"

	"github.com/perceiverkit/perceiver/core"
)

// Occlusion is Captum's Occlusion with a zero baseline, over all channels (Zeiler & Fergus 2014):
// windows of Window×Window pixels start at rows 0, S, 2S, … ≤ H − Window and the same columns
// (S = Stride); each window is set to 0 in pixel_values in all three channels, and a pixel's
// attribution is the mean, over the windows covering it, of y(x) − y(x occluded), y the target
// logit. Pixels no window covers get 0. The map is on the pixel grid and signed.
func init() {
	Register(Method{Name: "occlusion", Description: "Captum's occlusion: mean drop of the target logit when a window over the pixel is set to 0 (--window, --stride)",
		Compute: func(in Input, opt Options) (Map, error) {
			if err := in.check(true); err != nil {
				return Map{}, err
			}
			v, err := Occlusion(in.Model, in.Pixels, in.H, in.W, in.Target, opt.Window, opt.Stride)
			if err != nil {
				return Map{}, err
			}
			g := core.TokenGrid{Rows: in.H, Cols: in.W, Height: in.H, Width: in.W, Stride: 1}
			return Map{Method: "occlusion", Grid: g, Values: v, Signed: true}, nil
		}})
}

// OcclusionBatch is how many occluded copies share a forward pass.
var OcclusionBatch = 8

// Occlusion returns the occlusion map [h·w] of one image pixels [3, h, w] for class target (see
// the method's definition above): one forward pass for y(x), then one per window, in batches.
func Occlusion(m *core.Model, pixels []float32, h, w, target, window, stride int) ([]float32, error) {
	if window < 1 || stride < 1 {
		return nil, fmt.Errorf("occlusion: --window %d and --stride %d must be positive", window, stride)
	}
	if window > h || window > w {
		return nil, fmt.Errorf("occlusion: a %d×%d window does not fit the %d×%d image", window, window, h, w)
	}
	n := h * w
	if len(pixels) != 3*n {
		return nil, fmt.Errorf("occlusion: pixel_values has %d values, want 3×%d×%d", len(pixels), h, w)
	}
	base, err := m.Forward(pixels, 1, h, w, core.Trace{})
	if err != nil {
		return nil, err
	}
	labels := len(base.Logits)
	if target < 0 || target >= labels {
		return nil, fmt.Errorf("occlusion: target %d out of range: the model has %d classes", target, labels)
	}
	y := float64(base.Logits[target])
	var starts [][2]int
	for r := 0; r <= h-window; r += stride {
		for c := 0; c <= w-window; c += stride {
			starts = append(starts, [2]int{r, c})
		}
	}
	sum := make([]float64, n)
	count := make([]int32, n)
	batch := max(1, OcclusionBatch)
	buf := make([]float32, min(batch, len(starts))*3*n)
	for i0 := 0; i0 < len(starts); i0 += batch {
		chunk := starts[i0:min(i0+batch, len(starts))]
		for b, s := range chunk {
			img := buf[b*3*n : (b+1)*3*n]
			copy(img, pixels)
			for ch := range 3 {
				for r := s[0]; r < s[0]+window; r++ {
					clear(img[ch*n+r*w+s[1] : ch*n+r*w+s[1]+window])
				}
			}
		}
		out, err := m.Forward(buf[:len(chunk)*3*n], len(chunk), h, w, core.Trace{})
		if err != nil {
			return nil, err
		}
		for b, s := range chunk {
			d := y - float64(out.Logits[b*labels+target])
			for r := s[0]; r < s[0]+window; r++ {
				for c := s[1]; c < s[1]+window; c++ {
					sum[r*w+c] += d
					count[r*w+c]++
				}
			}
		}
	}
	res := make([]float32, n)
	for p, k := range count {
		if k > 0 {
			res[p] = float32(sum[p] / float64(k))
		}
	}
	return res, nil
}
