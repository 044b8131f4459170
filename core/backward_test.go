package core

import (
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/perceiverkit/perceiver/core/weights"
)

// The gradient references: grad.* tensors written by PyTorch 1.13 autograd (float32) through Hugging
// Face's upstream modules, for the target logit named in each file's metadata — the tiny Fourier
// model in testdata/tiny/expected-grads.safetensors, the learned and conv models beside their
// forward tensors in expected.safetensors (copies of ../shared/fixtures). Tolerance, from issue 14:
// max |ours − ref| ≤ 1e-4 × max |ref| per tensor (float32 autograd agrees with float64 to ~1.5e-6).
var gradFixtures = map[string]string{
	"fourier": filepath.Join(tinyDir, "expected-grads.safetensors"),
	"learned": "../testdata/tiny-learned/expected.safetensors",
	"conv":    "../testdata/tiny-conv/expected.safetensors",
}

func openGradFixture(t testing.TB, kind string) (*weights.File, int) {
	t.Helper()
	f, err := weights.OpenSafetensors(gradFixtures[kind])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	target, err := strconv.Atoi(f.Metadata["target"])
	if err != nil {
		t.Fatalf("%s: metadata target %q: %v", gradFixtures[kind], f.Metadata["target"], err)
	}
	return f, target
}

func TestBackwardMatchesPyTorch(t *testing.T) {
	for _, kind := range []string{"fourier", "learned", "conv"} {
		t.Run(kind, func(t *testing.T) {
			exp, target := openGradFixture(t, kind)
			m, err := Load(fixtureDirs[kind])
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			px := exp.Tensors["pixel_values"]
			B, h, w := px.Shape[0], px.Shape[2], px.Shape[3]
			gt := GradTrace{Pixels: true, HiddenStates: true, SelfAttentions: true, EncoderAttention: true, DecoderAttention: true, Targets: []int{target}}
			out, g, err := m.ForwardBackward(px.Data, B, h, w, Trace{}, gt)
			if err != nil {
				t.Fatal(err)
			}
			if out.HiddenStates != nil || out.EncoderAttention != nil {
				t.Error("ForwardBackward kept forward states the trace did not ask for")
			}
			seen := 0
			for _, ts := range g.Tensors(out) {
				ref, ok := exp.Tensors[ts.Name]
				if !ok {
					t.Errorf("%s: not in the reference", ts.Name)
					continue
				}
				compare(t, ts.Name, ts.Data, ts.Shape, ref)
				seen++
			}
			want := 0
			for name := range exp.Tensors {
				if len(name) > 5 && name[:5] == "grad." {
					want++
				}
			}
			if seen != want {
				t.Errorf("compared %d gradients, the reference holds %d", seen, want)
			}
		})
	}
}

// The forward half of ForwardBackward runs Forward's kernels: its outputs are Forward's, bit for
// bit; and recomputing the latent stack's activations gives the gradients that keeping them gives.
func TestForwardBackwardConsistent(t *testing.T) {
	exp, target := openGradFixture(t, "learned")
	m, err := Load(fixtureDirs["learned"])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	px := exp.Tensors["pixel_values"]
	h, w := px.Shape[2], px.Shape[3]
	two := append(append([]float32(nil), px.Data...), px.Data...)
	for i := len(px.Data); i < len(two); i++ {
		two[i] *= 0.5 // a second, different image in the batch
	}
	fwd, err := m.Forward(two, 2, h, w, TraceAll)
	if err != nil {
		t.Fatal(err)
	}
	gt := GradTrace{Pixels: true, HiddenStates: true, SelfAttentions: true, EncoderAttention: true, DecoderAttention: true, Targets: []int{target, -1}}
	o1, g1, err := m.ForwardBackward(two, 2, h, w, TraceAll, gt)
	if err != nil {
		t.Fatal(err)
	}
	gt.Recompute = true
	o2, g2, err := m.ForwardBackward(two, 2, h, w, TraceAll, gt)
	if err != nil {
		t.Fatal(err)
	}
	want := fwd.Tensors()
	for _, o := range []*Output{o1, o2} {
		got := o.Tensors()
		if len(got) != len(want) {
			t.Fatalf("%d forward tensors, want %d", len(got), len(want))
		}
		for i := range want {
			if !slices.Equal(got[i].Data, want[i].Data) {
				t.Errorf("%s differs from Forward's", want[i].Name)
			}
		}
	}
	if g1.Targets[0] != target || g1.Targets[1] != argmax(fwd.Logits[len(fwd.Logits)/2:]) {
		t.Errorf("targets %v", g1.Targets)
	}
	a, b := g1.Tensors(o1), g2.Tensors(o2)
	for i := range a {
		if !slices.Equal(a[i].Data, b[i].Data) {
			t.Errorf("%s: recomputing changes the gradient", a[i].Name)
		}
	}
}
