package main

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core/weights"
)

// TestDumpGrads writes the gradients of the conv fixture's target logit and checks every grad.*
// tensor against PyTorch autograd's (../../testdata/tiny-conv/expected.safetensors, target 2 in
// its metadata) at the bar, 1e-4 of each tensor's largest magnitude.
func TestDumpGrads(t *testing.T) {
	const dir = "../../testdata/tiny-conv"
	ref, err := weights.OpenSafetensors(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	tmp := t.TempDir()
	pix := filepath.Join(tmp, "pixels.safetensors")
	if err := weights.WriteSafetensors(pix, []*weights.Tensor{ref.Tensors["pixel_values"]}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "dump.safetensors")
	if _, errOut, code := run(t, "dump", "--model", dir, "--pixels", pix, "--out", out, "--grads", "--target", ref.Metadata["target"]); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got, err := weights.OpenSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Metadata["target"] != ref.Metadata["target"] {
		t.Errorf("metadata target %q, want %q", got.Metadata["target"], ref.Metadata["target"])
	}
	n := 0
	for name, want := range ref.Tensors {
		if !strings.HasPrefix(name, "grad.") {
			continue
		}
		n++
		g, ok := got.Tensors[name]
		if !ok || len(g.Data) != len(want.Data) {
			t.Errorf("%s missing or mis-shaped", name)
			continue
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
	if n == 0 {
		t.Fatal("the reference holds no gradients")
	}
	_, errOut, code := run(t, "dump", "--model", dir, "--pixels", pix, "--out", out, "--grads", "--target", "5")
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "--target 5 out of range") {
		t.Errorf("target 5 of 5 classes: exit %d, stderr %q; want one line naming the target", code, errOut)
	}
}
