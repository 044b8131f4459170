package explain

import (
	"math"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	tiny "github.com/perceiverkit/perceiver/internal/fixtures"
)

// bruteOcclusion reads Captum's rule literally: every window start (r, c) with r ≤ H − win, c ≤ W −
// win on the stride lattice, one forward pass per occluded image, and for each pixel the mean of
// y(x) − y(occluded) over the windows that contain it (0 when none does).
func bruteOcclusion(t *testing.T, m *core.Model, px []float32, h, w, target, win, stride int) []float64 {
	n := h * w
	logit := func(img []float32) float64 {
		out, err := m.Forward(img, 1, h, w, core.Trace{})
		if err != nil {
			t.Fatal(err)
		}
		return float64(out.Logits[target])
	}
	y := logit(px)
	type occ struct {
		r, c int
		d    float64
	}
	var all []occ
	for r := 0; r+win <= h; r += stride {
		for c := 0; c+win <= w; c += stride {
			img := append([]float32(nil), px...)
			for ch := range 3 {
				for p := range n {
					if pr, pc := p/w, p%w; pr >= r && pr < r+win && pc >= c && pc < c+win {
						img[ch*n+p] = 0
					}
				}
			}
			all = append(all, occ{r, c, y - logit(img)})
		}
	}
	res := make([]float64, n)
	for p := range n {
		pr, pc := p/w, p%w
		var s float64
		k := 0
		for _, o := range all {
			if pr >= o.r && pr < o.r+win && pc >= o.c && pc < o.c+win {
				s += o.d
				k++
			}
		}
		if k > 0 {
			res[p] = s / float64(k)
		}
	}
	return res
}

// TestOcclusionMatchesBruteForce checks the registered method on the three fixtures, with windows
// that overlap (stride < window), tile exactly, leave gaps and leave an uncovered margin (stride >
// window, or H − window not a multiple of the stride). Batches of 3. Tolerance: float32 rounding
// of the same float64 means, 1e-6 of the largest |value|.
func TestOcclusionMatchesBruteForce(t *testing.T) {
	OcclusionBatch = 3
	defer func() { OcclusionBatch = 8 }()
	method, ok := Lookup("occlusion")
	if !ok {
		t.Fatal("occlusion not registered")
	}
	for _, kind := range tiny.Kinds {
		m, img := tiny.Load(t, kind)
		for _, ws := range [][2]int{{4, 2}, {3, 3}, {2, 5}, {5, 4}} {
			target := 1
			got, err := method.Compute(Input{Model: m, Pixels: img.Pixels, H: img.H, W: img.W, Target: target}, Options{Window: ws[0], Stride: ws[1]})
			if err != nil {
				t.Fatal(err)
			}
			if !got.Signed || !got.Grid.Pixel() || got.Grid.Height != img.H || len(got.Values) != img.H*img.W {
				t.Fatalf("%s: map grid %v signed %v, want the %d×%d pixel grid, signed", kind, got.Grid, got.Signed, img.H, img.W)
			}
			want := bruteOcclusion(t, m, img.Pixels, img.H, img.W, target, ws[0], ws[1])
			scale, zeros := 0.0, 0
			for _, v := range want {
				scale = math.Max(scale, math.Abs(v))
				if v == 0 {
					zeros++
				}
			}
			if scale == 0 {
				t.Fatalf("%s window %v: the brute-force map is all zero", kind, ws)
			}
			for p, v := range want {
				if math.Abs(float64(got.Values[p])-v) > 1e-6*scale {
					t.Errorf("%s window %d stride %d: pixel %d = %g, brute force %g", kind, ws[0], ws[1], p, got.Values[p], v)
				}
			}
		}
	}
}

func TestOcclusionErrors(t *testing.T) {
	m, img := tiny.Load(t, "fourier")
	for _, c := range []struct{ win, stride, target int }{{0, 1, 0}, {2, 0, 0}, {img.H + 1, 1, 0}, {2, 2, 99}} {
		if _, err := Occlusion(m, img.Pixels, img.H, img.W, c.target, c.win, c.stride); err == nil {
			t.Errorf("window %d stride %d target %d: no error", c.win, c.stride, c.target)
		}
	}
}
