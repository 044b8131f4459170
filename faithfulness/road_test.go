package faithfulness

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/fixtures"
)

var roadMaps = []string{"levels", "saliency", "input_x_gradient"}

// TestImputeMatchesDenseSolve holds the CG imputation to the dense float64 solve of
// testdata/roadsanity/road.safetensors (tools/roadsanity/make_references.py: the system assembled
// densely from the definition, numpy.linalg.solve) on the tiny fixture's 12×16 pixel_values, for
// three maps (one with many ties, one signed), both orders, the 9 fractions of steps 10: ranking,
// removed sets and imputed values. Tolerance 1e-8 absolute, the bound the stopping rule gives:
// CG stops at ‖b − Ax‖₂ ≤ 1e-10, so ‖x − x*‖₂ ≤ ‖A⁻¹‖₂·1e-10, and the smallest eigenvalue of
// these 54 systems is 0.0101 (numpy.linalg.eigvalsh), ‖A⁻¹‖₂ < 100. Measured: worst is logged.
func TestImputeMatchesDenseSolve(t *testing.T) {
	ref := readF64(t, "road.safetensors")
	px := ref.Tensors["pixel_values"]
	h, w := ref.Shapes["pixel_values"][1], ref.Shapes["pixel_values"][2]
	n := h * w
	im := NewImputer(h, w)
	dst := make([]float32, 3*n)
	all := 0.0
	defer func() { t.Logf("worst difference from the dense solve: %.3g", all) }()
	for _, name := range roadMaps {
		mp := toF32(ref.Tensors["map."+name])
		for _, dir := range []string{"morf", "lerf"} {
			order, err := Order(mp, dir == "morf")
			if err != nil {
				t.Fatal(err)
			}
			want := ref.Tensors["imputed."+name+"."+dir]
			for j := 1; j < 10; j++ {
				removed := order[:Removed(n, j, 10)]
				vals, err := im.Impute(px, removed)
				if err != nil {
					t.Fatal(err)
				}
				u := len(removed)
				worst := 0.0
				for c := range 3 {
					for i, p := range removed {
						worst = max(worst, math.Abs(vals[c*u+i]-want[(j-1)*3*n+c*n+p]))
					}
				}
				// Known pixels are untouched; Perturb without noise writes exactly the solution.
				if err := im.Perturb(dst, px, removed, 0, [3]float64{1, 1, 1}, nil); err != nil {
					t.Fatal(err)
				}
				for i := range dst {
					if d := math.Abs(float64(dst[i]) - want[(j-1)*3*n+i]); d > 1e-6 {
						t.Fatalf("%s %s p=%d: perturbed value %d is %g, reference %g", name, dir, j, i, dst[i], want[(j-1)*3*n+i])
					}
				}
				all = max(all, worst)
				if worst > 1e-8 {
					t.Errorf("%s %s p=%d/10 (%d removed): imputed values differ from the dense solve by %.3g", name, dir, j, u, worst)
				}
			}
		}
	}
}

// TestROADCurvesMatchReference runs EvaluateROAD with no noise on the tiny Fourier fixture and
// compares probabilities and AUCs with road.safetensors, whose curves come from a float64 torch
// transcription of Hugging Face's model (checked against the HF-made fixture to 1e-6) on the
// dense-solve images. Tolerance 2e-6 absolute: our model runs in float32 (the fixtures agree with
// float64 to ~5e-7 relative on the logits) and gets the imputed images rounded to float32.
func TestROADCurvesMatchReference(t *testing.T) {
	ref := readF64(t, "road.safetensors")
	m, img := fixtures.Load(t, "fourier")
	base, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{})
	if err != nil {
		t.Fatal(err)
	}
	im := Image{Pixels: img.Pixels, H: img.H, W: img.W, Logits: base.Logits}
	if got := im.Target(); ref.Metadata["target"] != string(rune('0'+got)) {
		t.Fatalf("target %d, reference %s", got, ref.Metadata["target"])
	}
	var maps [][]float32
	for _, name := range roadMaps {
		maps = append(maps, toF32(ref.Tensors["map."+name]))
	}
	got, err := EvaluateROAD(m, im, maps, RoadOptions{Steps: 10, Batch: 4, Noise: 0})
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	defer func() { t.Logf("worst probability difference: %.3g", worst) }()
	for i, name := range roadMaps {
		for _, d := range []struct {
			dir string
			c   RoadCurve
		}{{"morf", got[i].MoRF}, {"lerf", got[i].LeRF}} {
			want := ref.Tensors["prob."+name+"."+d.dir]
			for j := range want {
				if d.c.Fractions[j] != float64(j+1)/10 {
					t.Fatalf("fraction %d = %g", j, d.c.Fractions[j])
				}
				worst = max(worst, math.Abs(d.c.Prob[j]-want[j]))
				if math.Abs(d.c.Prob[j]-want[j]) > 2e-6 {
					t.Errorf("%s %s p=%g: prob %.9f, reference %.9f", name, d.dir, d.c.Fractions[j], d.c.Prob[j], want[j])
				}
			}
			if auc := ref.Tensors["auc."+name+"."+d.dir][0]; math.Abs(d.c.AUCProb-auc) > 2e-6 {
				t.Errorf("%s %s: AUC %.9f, reference %.9f", name, d.dir, d.c.AUCProb, auc)
			}
		}
	}
}

// TestROADNoise checks the noise: known pixels never change, imputed ones move by (σ/std_c)·z with
// z of unit variance (over 3·45 draws per fraction the sample σ is within 30 %), the run is
// reproducible from the seed, and another seed draws other noise.
func TestROADNoise(t *testing.T) {
	const h, w = 12, 16
	n := h * w
	rng := rand.New(rand.NewPCG(1, 2))
	px := make([]float64, 3*n)
	for i := range px {
		px[i] = rng.NormFloat64()
	}
	removed := []int{}
	for p := 0; p < n; p += 3 {
		removed = append(removed, p)
	}
	im := NewImputer(h, w)
	clean := make([]float32, 3*n)
	noisy := make([]float32, 3*n)
	again := make([]float32, 3*n)
	std := [3]float64{0.229, 0.224, 0.225}
	if err := im.Perturb(clean, px, removed, 0, std, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		dst  []float32
		seed uint64
	}{{noisy, 5}, {again, 5}} {
		if err := im.Perturb(d.dst, px, removed, 0.05, std, rand.New(rand.NewPCG(d.seed, 9))); err != nil {
			t.Fatal(err)
		}
	}
	isRemoved := map[int]bool{}
	for _, p := range removed {
		isRemoved[p] = true
	}
	for c := range 3 {
		var ss float64
		for p := range n {
			i := c*n + p
			if noisy[i] != again[i] {
				t.Fatal("the same seed drew other noise")
			}
			d := float64(noisy[i] - clean[i])
			if !isRemoved[p] && d != 0 {
				t.Fatalf("known pixel %d of channel %d changed", p, c)
			}
			if isRemoved[p] {
				ss += d * d
			}
		}
		sigma := math.Sqrt(ss/float64(len(removed))) / (0.05 / std[c])
		if sigma < 0.7 || sigma > 1.3 {
			t.Errorf("channel %d: noise σ is %.3f of σ/std, want ≈ 1", c, sigma)
		}
	}
}

// TestImputeErrors: removing every pixel, a pixel twice or one outside the image is an error.
func TestImputeErrors(t *testing.T) {
	im := NewImputer(2, 2)
	px := make([]float64, 12)
	for _, removed := range [][]int{{0, 1, 2, 3}, {1, 1}, {4}, {-1}} {
		if _, err := im.Impute(px, removed); err == nil {
			t.Errorf("Impute(%v) succeeded", removed)
		}
	}
	if _, err := im.Impute(px, []int{0, 3}); err != nil {
		t.Errorf("after errors, a good call fails: %v", err)
	}
}

// TestImputeCorner checks one pixel by hand: the corner of a 3×3 image whose neighbours hold 1
// (right, 1/6), 2 (below, 1/6) and 3 (diagonal, 1/12) is (1/6 + 2/6 + 3/12)/(5/12) = 1.8.
func TestImputeCorner(t *testing.T) {
	px := make([]float64, 27)
	for c := range 3 {
		px[c*9+1], px[c*9+3], px[c*9+4] = 1, 2, 3
	}
	vals, err := NewImputer(3, 3).Impute(px, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		if math.Abs(vals[c]-1.8) > 1e-12 {
			t.Errorf("channel %d: corner imputed as %.15g, want 1.8", c, vals[c])
		}
	}
}
