package core

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// TestLinearUsesPackedWeights: NewRandom packs every linear layer once, linear() with the packed
// weights gives exactly the bits of an unpacked sgemm.Gemm (the reference here; accuracy against
// Hugging Face is TestForwardMatchesHuggingFace's), and replacing Weight.Data drops the stale pack.
func TestLinearUsesPackedWeights(t *testing.T) {
	m, err := NewRandom(FullSizeConfig(), preprocess.DefaultConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	walkTagged(reflect.ValueOf(&m.Weights).Elem(), "", func(name string, v reflect.Value) bool {
		if v.Type() != linearType {
			return false
		}
		count++
		if v.Addr().Interface().(*Linear).packedWeight() == nil {
			t.Errorf("%s has no packed weights", name)
		}
		return true
	})
	if count == 0 {
		t.Fatal("no linear layers found")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, l := range []*Linear{&m.Weights.SelfAttends[0].MLP.Dense1, &m.Weights.Classifier().FinalLayer} {
		const rows = 37
		x := make([]float32, rows*l.In())
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		got := make([]float32, rows*l.Out())
		linear(got, x, rows, l)
		want := make([]float32, rows*l.Out())
		for r := 0; r < rows; r++ {
			copy(want[r*l.Out():], l.Bias.Data)
		}
		sgemm.Gemm(false, true, rows, l.Out(), l.In(), 1, x, l.In(), l.Weight.Data, l.In(), 1, want, l.Out())
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%d×%d layer: element %d = %g, unpacked Gemm gives %g", l.Out(), l.In(), i, got[i], want[i])
			}
		}
	}
	// linearAdd adds the residual in the kernel's epilogue; PyTorch rounds (x·Wᵀ + b) + residual.
	l := &m.Weights.SelfAttends[0].MLP.Dense2
	const rows = 19
	x, residual := make([]float32, rows*l.In()), make([]float32, rows*l.Out())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range residual {
		residual[i] = float32(rng.NormFloat64())
	}
	got := append([]float32(nil), residual...)
	linearAdd(got, x, rows, l)
	want := make([]float32, rows*l.Out())
	linear(want, x, rows, l)
	for i := range want {
		if w := want[i] + residual[i]; math.Float32bits(got[i]) != math.Float32bits(w) {
			t.Fatalf("linearAdd: element %d = %g, want (x·Wᵀ + b) + residual = %g", i, got[i], w)
		}
	}
	l = &m.Weights.Classifier().FinalLayer
	l.Weight.Data = append([]float32(nil), l.Weight.Data...)
	if l.packedWeight() != nil {
		t.Error("packed weights kept after Weight.Data was replaced")
	}
}
