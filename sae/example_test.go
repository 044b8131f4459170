package sae_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/perceiverkit/perceiver/sae"
)

// Train a TopK autoencoder on in-memory rows, then encode one row: its code lists k entries in
// descending order of value.
func ExampleTrain() {
	rng := rand.New(rand.NewPCG(1, 1))
	n, d := 400, 8
	x := make([]float32, n*d)
	ids := make([]string, n)
	for i := 0; i < n; i++ {
		ids[i] = fmt.Sprint("row", i)
		x[i*d+rng.IntN(d)] = 1 + rng.Float32() // one active direction per row
	}
	data := &sae.Matrix{X: x, D: d, IDs: ids}
	cfg := sae.Config{Dict: 16, K: 2, Epochs: 30, Batch: 32, LR: 1e-2, Seed: 1, Holdout: 0.1}
	split := sae.MakeSplit(n, cfg.Holdout, cfg.Seed)
	st, err := sae.Train(data, split.Train, cfg, sae.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	m := sae.Evaluate(st.Model, data, split.Holdout)
	fmt.Printf("holdout rows %d, l0 %.0f, fvu below 0.1: %v\n", m.Rows, m.L0, m.FVU < 0.1)
	idx, val := make([]int32, 2), make([]float32, 2)
	st.Model.Encode(idx, val, x[:d], 1)
	fmt.Println("descending:", val[0] >= val[1])
	// Output:
	// holdout rows 40, l0 2, fvu below 0.1: true
	// descending: true
}
