package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core/weights"
)

// TestExplainConv runs probe explain on the conv fixture's photo for its target (metadata of
// ../../testdata/tiny-conv/expected.safetensors) and checks the raw maps against the fixture's
// map.* tensors (float64 from PyTorch autograd's gradients) at 1e-4 of their largest magnitude:
// the image processor's pixels are within 1e-6 of Hugging Face's, far inside that bar.
func TestExplainConv(t *testing.T) {
	const dir = "../../testdata/tiny-conv"
	ref, err := weights.OpenSafetensors(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	out := t.TempDir()
	stdout, errOut, code := run(t, "explain", "--model", dir, "--image", filepath.Join(dir, "camera.png"), "--out", out,
		"--target", ref.Metadata["target"], "--raw", "--overlay", "--steps", "8", "--samples", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "integrated-gradients completeness") {
		t.Errorf("no completeness check printed:\n%s", stdout)
	}
	got, err := weights.OpenSafetensors(filepath.Join(out, "maps.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for _, name := range []string{"chefer", "grad_rollout", "saliency", "input_x_gradient"} {
		g, want := got.Tensors[name], ref.Tensors["map."+name]
		if g == nil || len(g.Data) != len(want.Data) || g.Shape[0] != want.Shape[0] {
			t.Fatalf("%s: got %v, want shape %v", name, g, want.Shape)
		}
		var d, r float64
		for i := range want.Data {
			d = max(d, math.Abs(float64(g.Data[i]-want.Data[i])))
			r = max(r, math.Abs(float64(want.Data[i])))
		}
		if d > 1e-4*r {
			t.Errorf("%s: max |Δ| %.3g > 1e-4 × %.3g", name, d, r)
		}
	}
	for _, name := range []string{"integrated_gradients", "smoothgrad"} {
		if g := got.Tensors[name]; g == nil || g.Shape[0] != 24 || g.Shape[1] != 32 {
			t.Errorf("%s: want a 24×32 pixel map, got %v", name, g)
		}
	}
	var sum explainSummary
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Target != 2 || sum.Label != "class_2" || !(sum.Probability > 0 && sum.Probability < 1) || len(sum.Methods) != 6 {
		t.Errorf("summary: %+v", sum)
	}
	if ig := sum.Methods["integrated-gradients"]; !ig.Signed || ig.Notes["delta"] == 0 {
		t.Errorf("integrated-gradients summary: %+v", ig)
	}
	for _, f := range []string{"input.png", "chefer.png", "smoothgrad.png", "summary.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestExplainBadArguments(t *testing.T) {
	img := filepath.Join(tinyDir, "chelsea.png")
	cases := map[string][]string{
		"--target 5 out of range": {"--target", "5"},
		`--target "lion"`:         {"--target", "lion"},
		`unknown method "occ"`:    {"--methods", "chefer,occ"},
		`--baseline "grey"`:       {"--baseline", "grey"},
		"--steps 0":               {"--steps", "0"},
	}
	for want, extra := range cases {
		out := filepath.Join(t.TempDir(), "out")
		args := append([]string{"explain", "--model", tinyDir, "--image", img, "--out", out}, extra...)
		_, errOut, code := run(t, args...)
		if code != 1 || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", extra, code, errOut, want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: the output folder was created for a failing run", extra)
		}
	}
}
