package ablation

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/fixtures"
)

// reference computes one ablation independently of ForwardLatents: a plain Forward pass on the
// image whose hidden-state hook overwrites latent l of hidden state 0 in the live buffer before
// the latent stack reads it (replacement nil: zeros).
func reference(t *testing.T, m *core.Model, img fixtures.Image, l int, replacement []float32) []float32 {
	D := m.Config.DLatents
	tr := core.Trace{OnHiddenState: func(i int, h []float32) {
		if i != 0 {
			return
		}
		row := h[l*D : (l+1)*D]
		for k := range row {
			row[k] = 0
			if replacement != nil {
				row[k] = replacement[l*D+k]
			}
		}
	}}
	out, err := m.Forward(img.Pixels, 1, img.H, img.W, tr)
	if err != nil {
		t.Fatal(err)
	}
	return out.Logits
}

// TestLatentsMatchDirectForward checks Δℓ of every latent of the three fixtures, zero and mean
// mode, in batches of 3 (so that the last batch is partial), against y(x) − y_ℓ(x) from direct
// forward passes with the latent replaced (reference). Batched passes equal single ones bit for
// bit in core, so the tolerance is exact equality.
func TestLatentsMatchDirectForward(t *testing.T) {
	for _, kind := range fixtures.Kinds {
		t.Run(kind, func(t *testing.T) {
			m, img := fixtures.Load(t, kind)
			L, D := m.Config.NumLatents, m.Config.DLatents
			enc, err := m.Encode(img.Pixels, 1, img.H, img.W, core.Trace{})
			if err != nil {
				t.Fatal(err)
			}
			plain, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			repl := make([]float32, L*D)
			for i := range repl {
				repl[i] = float32(rng.NormFloat64())
			}
			all := make([]int, L)
			for i := range all {
				all[i] = L - 1 - i // any order
			}
			for _, mode := range []struct {
				name string
				repl []float32
			}{{"zero", nil}, {"mean", repl}} {
				r, err := Latents(m, enc.HiddenStates[0], -1, all, Options{Replacement: mode.repl, Batch: 3})
				if err != nil {
					t.Fatal(err)
				}
				want := core.Argmax(plain.Logits)
				if r.Target != want || r.Logit != float64(plain.Logits[want]) {
					t.Fatalf("%s: target %d logit %g, the plain forward pass predicts %d with %g", mode.name, r.Target, r.Logit, want, plain.Logits[want])
				}
				moved := 0
				for i, l := range all {
					ref := float64(plain.Logits[want]) - float64(reference(t, m, img, l, mode.repl)[want])
					if r.Delta[i] != ref {
						t.Errorf("%s: Δ of latent %d = %.9g, direct forward pass %.9g", mode.name, l, r.Delta[i], ref)
					}
					if ref != 0 {
						moved++
					}
				}
				given, err := Latents(m, enc.HiddenStates[0], -1, all, Options{Replacement: mode.repl, Batch: 5, Logits: plain.Logits})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(given.Delta, r.Delta) || given.Target != r.Target {
					t.Errorf("%s: with the logits given (and batches of 5) Δ differs", mode.name)
				}
				if moved == 0 {
					t.Errorf("%s: no ablation changed the logit: the reference is not ablating", mode.name)
				}
			}
		})
	}
}

func TestLatentsErrors(t *testing.T) {
	m, img := fixtures.Load(t, "fourier")
	enc, err := m.Encode(img.Pixels, 1, img.H, img.W, core.Trace{})
	if err != nil {
		t.Fatal(err)
	}
	h := enc.HiddenStates[0]
	if _, err := Latents(m, h, 0, []int{m.Config.NumLatents}, Options{}); err == nil {
		t.Error("latent out of range accepted")
	}
	if _, err := Latents(m, h, m.Config.NumLabels(), []int{0}, Options{}); err == nil {
		t.Error("target out of range accepted")
	}
	if _, err := Latents(m, h[1:], 0, []int{0}, Options{}); err == nil {
		t.Error("short hidden state accepted")
	}
	if _, err := Latents(m, h, 0, []int{0}, Options{Replacement: make([]float32, 3)}); err == nil {
		t.Error("short replacement accepted")
	}
}

func TestMean(t *testing.T) {
	var a Mean
	if _, err := a.Value(); err == nil {
		t.Error("mean of nothing gave no error")
	}
	if err := a.Add([]float32{1, 2, 3, 5, 6, 7}, 3); err != nil {
		t.Fatal(err)
	}
	if err := a.Add([]float32{0, 1, 2}, 3); err != nil {
		t.Fatal(err)
	}
	got, _ := a.Value()
	want := []float32{2, 3, 4} // (1+5+0)/3, (2+6+1)/3, (3+7+2)/3
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("mean = %v, want %v", got, want)
		}
	}
	if err := a.Add([]float32{1, 2}, 2); err == nil {
		t.Error("a different size was accepted")
	}
	if a.Count() != 3 {
		t.Errorf("count %d, want 3", a.Count())
	}
}
