package explain

import (
	"fmt"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/weights"
)

// The class-agnostic maps against Hugging Face's attention tensors for the tiny Fourier model on
// chelsea.png (../testdata/tiny/expected.safetensors), reduced here in float64 by the formulas of
// package attention: mean = (1/L) Σ_l C[l,·], decoder = d·C, rollout = (d·Â_J⋯Â_1)·C with
// Â = rownorm(½I + ½ mean_heads A). Tolerance: 1e-4 of the largest value, the bar.
func TestAttentionMapsMatchHuggingFace(t *testing.T) {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ref, err := weights.OpenSafetensors("../testdata/tiny/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	px := ref.Tensors["pixel_values"]
	in := Input{Model: m, Pixels: px.Data, H: px.Shape[2], W: px.Shape[3]}
	L, N, heads, J := 8, px.Shape[2]*px.Shape[3], 4, 4
	C, d := ref.Tensors["cross_attentions.encoder"].Data, ref.Tensors["cross_attentions.decoder"].Data

	// w = d·Â_J⋯Â_1, applied from the left one application at a time.
	roll := make([]float64, L)
	for i := range roll {
		roll[i] = float64(d[i])
	}
	for j := J - 1; j >= 0; j-- {
		A := ref.Tensors[fmt.Sprintf("attentions.%d", j)].Data
		next := make([]float64, L)
		for r := 0; r < L; r++ {
			row := make([]float64, L)
			var sum float64
			for k := 0; k < L; k++ {
				var v float64
				for h := 0; h < heads; h++ {
					v += float64(A[(h*L+r)*L+k])
				}
				row[k] = 0.5 * v / float64(heads)
				if k == r {
					row[k] += 0.5
				}
				sum += row[k]
			}
			for k := range row {
				next[k] += roll[r] * row[k] / sum
			}
		}
		roll = next
	}
	want := map[string][]float32{}
	for name, wts := range map[string]func(l int) float64{
		"mean":    func(int) float64 { return 1 / float64(L) },
		"decoder": func(l int) float64 { return float64(d[l]) },
		"rollout": func(l int) float64 { return roll[l] },
	} {
		mp := make([]float32, N)
		for p := range mp {
			var s float64
			for l := 0; l < L; l++ {
				s += wts(l) * float64(C[l*N+p])
			}
			mp[p] = float32(s)
		}
		want[name] = mp
	}
	for name, w := range want {
		meth, _ := Lookup(name)
		got, err := meth.Compute(in, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if got.Grid.Tokens() != N || got.Signed {
			t.Fatalf("%s: grid %v, signed %v", name, got.Grid, got.Signed)
		}
		if e := relErr(got.Values, w); !(e <= mapTol) {
			t.Errorf("%s: relative error %.3g > %g", name, e, mapTol)
		} else {
			t.Logf("%-8s relative error %.2g", name, e)
		}
	}
}
