package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
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

// TestDumpParams writes every parameter's gradient with --params, for the logit and, with
// --label, for the cross-entropy loss, and checks them and every other grad.* against PyTorch
// float64 autograd (../../testdata/tiny-learned/expected-params.safetensors, written by
// tools/torchref/perceiver_param_grads.py: `logit/` for the metadata's target, `label/` for its
// label) at the bar, 1e-4 of each tensor's largest magnitude; the key biases, whose true
// gradient is 0, to 1e-5 of the largest parameter gradient. The file holds grad.param.<name> for
// every parameter and no other grad.param name.
func TestDumpParams(t *testing.T) {
	const dir = "../../testdata/tiny-learned"
	ref, err := weights.OpenSafetensors(filepath.Join(dir, "expected-params.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	exp, err := weights.OpenSafetensors(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	tmp := t.TempDir()
	pix := filepath.Join(tmp, "pixels.safetensors")
	if err := weights.WriteSafetensors(pix, []*weights.Tensor{exp.Tensors["pixel_values"]}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ mode, flag, value string }{{"logit", "--target", ref.Metadata["target"]}, {"label", "--label", ref.Metadata["label"]}} {
		t.Run(c.mode, func(t *testing.T) {
			out := filepath.Join(tmp, c.mode+".safetensors")
			if _, errOut, code := run(t, "dump", "--model", dir, "--pixels", pix, "--out", out, "--grads", "--params", c.flag, c.value); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got, err := weights.OpenSafetensors(out)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			var largest float64
			want := 0
			for name, r := range ref.Tensors {
				if strings.HasPrefix(name, c.mode+"/grad.param.") {
					want++
					for _, v := range r.Data {
						largest = max(largest, math.Abs(float64(v)))
					}
				}
			}
			params, compared := 0, 0
			for name, g := range got.Tensors {
				if !strings.HasPrefix(name, "grad.") {
					continue
				}
				if strings.HasPrefix(name, "grad.param.") {
					params++
				}
				r, ok := ref.Tensors[c.mode+"/"+name]
				if !ok {
					if c.mode == "label" || strings.HasPrefix(name, "grad.param.") {
						t.Errorf("%s: not in the reference", name)
					}
					continue // the logit's activation gradients are TestDumpGrads's
				}
				if len(g.Data) != len(r.Data) || !slicesEqual(g.Shape, r.Shape) {
					t.Errorf("%s: shape %v, want %v", name, g.Shape, r.Shape)
					continue
				}
				var d, m float64
				for i := range r.Data {
					d = max(d, math.Abs(float64(g.Data[i]-r.Data[i])))
					m = max(m, math.Abs(float64(r.Data[i])))
				}
				if strings.HasSuffix(name, "attention.self.key.bias") {
					if d > 1e-5*largest {
						t.Errorf("%s: max |Δ| %.3g > 1e-5 × %.3g", name, d, largest)
					}
				} else if d > 1e-4*m {
					t.Errorf("%s: max |Δ| %.3g > 1e-4 × %.3g", name, d, m)
				}
				compared++
			}
			if params != want || want == 0 {
				t.Errorf("%d grad.param tensors, want %d", params, want)
			}
			if c.mode == "label" {
				if compared != params+12 {
					t.Errorf("compared %d gradients, want %d parameters + 12 activations", compared, params)
				}
				if got.Metadata["label"] != c.value || got.Metadata["loss"] == "" || got.Metadata["target"] != "" {
					t.Errorf("metadata %v", got.Metadata)
				}
			}
		})
	}
	// Two copies of the image with --label: each image's gradients are its own loss's (the
	// reference's), the parameters' sum the two (twice the reference).
	t.Run("two images", func(t *testing.T) {
		px := exp.Tensors["pixel_values"]
		two := &weights.Tensor{Name: "pixel_values", DType: "F32", Shape: []int{2, 3, px.Shape[2], px.Shape[3]}, Data: append(slices.Clone(px.Data), px.Data...)}
		pix2 := filepath.Join(tmp, "two.safetensors")
		if err := weights.WriteSafetensors(pix2, []*weights.Tensor{two}, nil); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(tmp, "two-out.safetensors")
		if _, errOut, code := run(t, "dump", "--model", dir, "--pixels", pix2, "--out", out, "--grads", "--params", "--label", ref.Metadata["label"]); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		got, err := weights.OpenSafetensors(out)
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		for _, name := range []string{"grad.pixel_values", "grad.param.perceiver.embeddings.latents", "grad.param.perceiver.input_preprocessor.position_embeddings.position_embeddings"} {
			g, r := got.Tensors[name], ref.Tensors["label/"+name]
			factor, n := 2.0, len(r.Data)
			if name == "grad.pixel_values" {
				factor = 1
			}
			var d, m float64
			for k := 0; k < len(g.Data); k++ {
				want := factor * float64(r.Data[k%n])
				d = max(d, math.Abs(float64(g.Data[k])-want))
				m = max(m, math.Abs(want))
			}
			if len(g.Data) != len(r.Data)*int(3-factor) || d > 1e-4*m {
				t.Errorf("%s: %d values, max |Δ| %.3g of %.3g", name, len(g.Data), d, m)
			}
		}
	})
	// Bad flags: one line each, before any work.
	out := filepath.Join(tmp, "bad.safetensors")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--grads", "--label", "5"}, "--label 5 out of range: the model has 5 classes"},
		{[]string{"--grads", "--label", "-2"}, "--label -2"},
		{[]string{"--grads", "--label", "1", "--target", "2"}, "give one"},
		{[]string{"--params"}, "--params applies to the gradients: add --grads"},
		{[]string{"--label", "1"}, "--label applies to the gradients: add --grads"},
	} {
		args := append([]string{"dump", "--model", dir, "--pixels", pix, "--out", out}, c.args...)
		_, errOut, code := run(t, args...)
		if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", c.args, code, errOut, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused dump wrote its output")
	}
}

func slicesEqual(a, b []int) bool { return slices.Equal(a, b) }
