package train_test

import (
	"fmt"

	"github.com/perceiverkit/perceiver/train"
)

// The spec's test schedule: 12 updates, warmup 3, cosine from 3e-3.
func ExampleLR() {
	for k := range 12 {
		fmt.Printf("%.6f ", train.LR(3e-3, k, 3, 12, train.Cosine))
	}
	fmt.Println()
	// Output: 0.000000 0.001000 0.002000 0.003000 0.002910 0.002649 0.002250 0.001760 0.001240 0.000750 0.000351 0.000090
}

// 25 items in batches of 10, in source order: steps of 10, 10 and 5, then the next epoch.
func ExampleBatches() {
	b := train.NewBatches(25, 10, false, 0)
	for k := range 4 {
		items, epoch := b.Step(k)
		fmt.Printf("update %d: epoch %d, items %d…%d\n", k, epoch, items[0], items[len(items)-1])
	}
	// Output:
	// update 0: epoch 0, items 0…9
	// update 1: epoch 0, items 10…19
	// update 2: epoch 0, items 20…24
	// update 3: epoch 1, items 0…9
}

// One AdamW update on a single weight: decay first, then a step of lr·sign(g) (the first update
// of Adam, bias-corrected, moves each value by about lr).
func ExampleAdamW() {
	a := train.NewAdamW([]int{1}, 0.5)
	w := []float32{1}
	a.Step([][]float32{w}, [][]float32{{0.25}}, 0.01)
	fmt.Printf("t %d, w %.6f\n", a.T, w[0])
	// Output: t 1, w 0.985000
}
