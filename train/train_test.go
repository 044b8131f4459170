package train

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"testing"
)

// TestBatchesShuffle: each epoch of a shuffled run is a permutation of all items, drawn from
// (seed, epoch): the same seed repeats it, another epoch or seed changes it.
func TestBatchesShuffle(t *testing.T) {
	epoch := func(seed uint64, e int) []int {
		b := NewBatches(23, 5, true, seed)
		var all []int
		for k := e * b.PerEpoch(); k < (e+1)*b.PerEpoch(); k++ {
			items, got := b.Step(k)
			if got != e {
				t.Fatalf("update %d in epoch %d, want %d", k, got, e)
			}
			all = append(all, items...)
		}
		return all
	}
	a := epoch(1, 0)
	sorted := slices.Sorted(slices.Values(a))
	for i, v := range sorted {
		if v != i {
			t.Fatalf("epoch 0 is not a permutation of 0…22: %v", a)
		}
	}
	if !slices.Equal(a, epoch(1, 0)) || slices.Equal(a, epoch(1, 1)) || slices.Equal(a, epoch(2, 0)) {
		t.Errorf("the order must repeat for (seed, epoch) and change with either")
	}
}

// TestAdamWMatchesFormula: three updates of torch.optim.AdamW's algorithm written out in float64
// for one value (lr 0 on the first, as after warmup's start: t still advances).
func TestAdamWMatchesFormula(t *testing.T) {
	a := NewAdamW([]int{1}, 0.1)
	w := []float32{0.5}
	theta, m, v := 0.5, 0.0, 0.0
	for k, c := range []struct{ lr, g float64 }{{0, 0.3}, {0.01, -0.2}, {0.02, 0.05}} {
		a.Step([][]float32{w}, [][]float32{{float32(c.g)}}, c.lr)
		tt := float64(k + 1)
		theta *= 1 - c.lr*0.1
		m = 0.9*m + 0.1*c.g
		v = 0.999*v + 0.001*c.g*c.g
		theta -= c.lr / (1 - math.Pow(0.9, tt)) * m / (math.Sqrt(v)/math.Sqrt(1-math.Pow(0.999, tt)) + 1e-8)
		if math.Abs(float64(w[0])-theta) > 1e-7 {
			t.Fatalf("update %d: %v, formula %v", k, w[0], theta)
		}
	}
}

// TestCheckpointRoundTrip: what Save writes LoadCheckpoint reads back, and an identity that
// differs is refused naming the keys.
func TestCheckpointRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.safetensors")
	c := &Checkpoint{
		Identity: map[string]string{"options": "a", "source.digest": "x"},
		State:    State{Step: 2, Loss: []float64{2.3, 2.1}, LR: []float64{0, 1e-3}},
		AdamT:    2,
		Tensors:  map[string][]float32{"w": {1, 2, 3}, "frozen": {4}},
		Shapes:   map[string][]int{"w": {3}, "frozen": {1}},
		M:        map[string][]float32{"w": {0.1, 0.2, 0.3}},
		V:        map[string][]float32{"w": {0.01, 0.02, 0.03}},
	}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	r, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.State.Step != 2 || !slices.Equal(r.State.Loss, c.State.Loss) || !slices.Equal(r.Tensors["w"], c.Tensors["w"]) ||
		!slices.Equal(r.V["w"], c.V["w"]) || r.M["frozen"] != nil || r.AdamT != 2 {
		t.Errorf("read back %+v", r)
	}
	if err := r.CheckIdentity(path, c.Identity); err != nil {
		t.Errorf("same identity refused: %v", err)
	}
	err = r.CheckIdentity(path, map[string]string{"options": "b", "source.digest": "x"})
	var mm *MismatchError
	if !errors.As(err, &mm) || !slices.Equal(mm.Keys, []string{"options"}) {
		t.Errorf("another run's options: %v", err)
	}
	if _, err := LoadCheckpoint(filepath.Join(t.TempDir(), "none")); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("missing checkpoint: %v", err)
	}
}
