package attention_test

import (
	"fmt"

	"github.com/perceiverkit/perceiver/attention"
)

// Two latents reading a 2×3 grid (6 positions); each row of the cross-attention sums to 1.
var exampleCross = []float32{
	0.5, 0.5, 0, 0, 0, 0, // latent 0 reads the top-left corner
	0, 0, 0, 0, 0.25, 0.75, // latent 1 reads the bottom-right corner
}

func ExampleLatentMap() {
	m := make([]float32, 6)
	attention.LatentMap(m, exampleCross, 1, 6)
	fmt.Println(m)
	// Output: [0 0 0 0 0.25 0.75]
}

func ExampleMeanMap() {
	m := make([]float32, 6)
	attention.MeanMap(m, exampleCross, 2, 6)
	fmt.Println(m)
	// Output: [0.25 0.25 0 0 0.125 0.375]
}

func ExampleWeightedMap() {
	decoder := []float32{0.75, 0.25} // the classifier's query reads latent 0 mostly
	m := make([]float32, 6)
	attention.WeightedMap(m, decoder, exampleCross, 2, 6)
	fmt.Println(m)
	// Output: [0.375 0.375 0 0 0.0625 0.1875]
}

func ExampleTopLatents() {
	fmt.Println(attention.TopLatents([]float32{0.1, 0.6, 0.05, 0.25}, 2))
	// Output: [1 3]
}

// The forward pass feeds each self-attention application as it is computed; only L×L
// products are kept. Here one application in which latent 1 copies latent 0 entirely.
func ExampleRollout() {
	ro := attention.NewRollout(1, 2) // one image, two latents
	ro.Add([]float32{
		1, 0,
		1, 0,
	}, 1) // one head
	fmt.Println(ro.Matrix(0)) // Â = renorm(½I + ½A)

	weights := make([]float32, 2)
	ro.LatentWeights(weights, 0, []float32{0, 1}) // the decoder reads latent 1 only
	m := make([]float32, 6)
	attention.WeightedMap(m, weights, exampleCross, 2, 6)
	fmt.Println(weights)
	fmt.Println(m)
	// Output:
	// [1 0 0.5 0.5]
	// [0.5 0.5]
	// [0.25 0.25 0 0 0.125 0.375]
}

func ExampleMeanHeads() {
	probs := []float32{
		1, 0, // head 0
		0, 1, // head 1
	}
	avg := make([]float32, 2)
	attention.MeanHeads(avg, probs, 2, 1, 2)
	fmt.Println(avg)
	// Output: [0.5 0.5]
}
