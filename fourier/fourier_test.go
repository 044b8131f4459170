package fourier

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/perceiverkit/perceiver/core/weights"
)

// TestFeaturesMatchHuggingFace compares the position features with the `inputs` tensor Hugging
// Face's PerceiverImagePreprocessor produced for the tiny fixture (12×16 grid, 6 bands, max
// resolution 12×16): channels 3… of every pixel.
//
// Tolerance: one float32 ulp of the largest sine argument, π·8 ≈ 25 (ulp 1.9e-6), since sin and
// cos have slope at most 1. PyTorch's vectorised float32 kernels round π·f·p differently in a few
// places (we tried float32 and float64 orders of the products and linspace variants: none agrees
// everywhere, all stay within 1.9e-6), and the model-level bar is 1e-4 relative.
func TestFeaturesMatchHuggingFace(t *testing.T) {
	f, err := weights.OpenSafetensors(filepath.Join("..", "testdata", "tiny", "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ref := f.Tensors["inputs"] // [1, 192, 29]
	spec := Spec{MaxResolution: [2]int{12, 16}, NumBands: 6}
	c := spec.Channels()
	if 3+c != ref.Shape[2] {
		t.Fatalf("%d channels, reference has %d", 3+c, ref.Shape[2])
	}
	got := make([]float32, 12*16*c)
	Features(got, 12, 16, spec)
	worst := 0.0
	for p := 0; p < 12*16; p++ {
		for j := 0; j < c; j++ {
			d := math.Abs(float64(got[p*c+j] - ref.Data[p*ref.Shape[2]+3+j]))
			worst = max(worst, d)
			if d > 1.91e-6 {
				t.Fatalf("pixel %d feature %d: %g, want %g", p, j, got[p*c+j], ref.Data[p*ref.Shape[2]+3+j])
			}
		}
	}
	t.Logf("max |Δ| %.2g", worst)
}

// TestLinspace checks values torch.linspace gives in float32 (printed by PyTorch 1.13):
// linspace(1, 112, 64)[63] is exactly 112 and the midpoint of linspace(-1, 1, 224) is not 0.
func TestLinspace(t *testing.T) {
	v := make([]float32, 64)
	Linspace(v, 1, 112)
	if v[0] != 1 || v[63] != 112 {
		t.Errorf("ends %g %g", v[0], v[63])
	}
	p := make([]float32, 224)
	Linspace(p, -1, 1)
	if p[0] != -1 || p[223] != 1 || p[111] != -p[112] {
		t.Errorf("positions not symmetric: %g %g %g %g", p[0], p[223], p[111], p[112])
	}
	one := make([]float32, 1)
	Linspace(one, -1, 1)
	if one[0] != -1 {
		t.Errorf("single step %g", one[0])
	}
}

func ExampleFeatures() {
	spec := Spec{MaxResolution: [2]int{224, 224}, NumBands: 64}
	feats := make([]float32, 2*3*spec.Channels())
	Features(feats, 2, 3, spec) // a 2×3 grid
	c := spec.Channels()
	fmt.Println("channels:", c)
	fmt.Printf("position of pixel (1,2): y=%g x=%g\n", feats[5*c], feats[5*c+1])
	// Output:
	// channels: 258
	// position of pixel (1,2): y=1 x=1
}

func BenchmarkFeatures224(b *testing.B) {
	spec := Spec{MaxResolution: [2]int{224, 224}, NumBands: 64}
	dst := make([]float32, 224*224*spec.Channels())
	for i := 0; i < b.N; i++ {
		Features(dst, 224, 224, spec)
	}
}

// TestAxis: each channel is constant along the axis Axis does not name, and varies along the
// one it names (the encoder's separable attention relies on this layout).
func TestAxis(t *testing.T) {
	spec := Spec{MaxResolution: [2]int{12, 16}, NumBands: 6}
	const h, w = 12, 16
	c := spec.Channels()
	f := make([]float32, h*w*c)
	Features(f, h, w, spec)
	at := func(u, v, ch int) float32 { return f[(u*w+v)*c+ch] }
	counts := [2]int{}
	for ch := 0; ch < c; ch++ {
		axis := spec.Axis(ch)
		counts[axis]++
		varies := false
		for u := 0; u < h; u++ {
			for v := 0; v < w; v++ {
				if axis == 0 && at(u, v, ch) != at(u, 0, ch) || axis == 1 && at(u, v, ch) != at(0, v, ch) {
					t.Fatalf("channel %d (axis %d) changes along the other axis at (%d, %d)", ch, axis, u, v)
				}
				if at(u, v, ch) != at(0, 0, ch) {
					varies = true
				}
			}
		}
		if !varies {
			t.Errorf("channel %d is constant: not a feature of axis %d", ch, axis)
		}
	}
	if counts[0] != c/2 || counts[1] != c/2 {
		t.Errorf("axes have %v channels, want %d each", counts, c/2)
	}
}
