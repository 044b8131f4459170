package core_test

import (
	"fmt"
	"log"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// Load a model folder (here the tiny random-weight fixture), preprocess an image as Hugging Face's
// PerceiverImageProcessor does, and read the logits and the latents after the cross-attention.
func ExampleLoad() {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := m.Preprocessor.LoadImage("../testdata/tiny/chelsea.png", preprocess.Options{})
	if err != nil {
		log.Fatal(err)
	}
	out, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{HiddenStates: true})
	if err != nil {
		log.Fatal(err)
	}
	best := 0
	for i, v := range out.Logits {
		if v > out.Logits[best] {
			best = i
		}
	}
	fmt.Println("input:", img.H, "×", img.W)
	fmt.Println("top label:", m.Config.Labels()[best])
	fmt.Println("hidden states:", len(out.HiddenStates), "of", out.Latents, "×", out.Channels)
	// Output:
	// input: 12 × 16
	// top label: class_1
	// hidden states: 5 of 8 × 32
}

// A model with deterministic random weights: for tests and benchmarks, not predictions.
func ExampleNewRandom() {
	cfg := core.FullSizeConfig()
	m, err := core.NewRandom(cfg, preprocess.DefaultConfig(), 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d tensors, %d parameters, %.0f GFLOPs per 224² image\n",
		len(m.Weights.Params()), m.Weights.NumParams(), m.FLOPs(224, 224)/1e9)
	// Output:
	// 136 tensors, 48440627 parameters, 406 GFLOPs per 224² image
}
