package ablation_test

import (
	"fmt"
	"log"

	"github.com/perceiverkit/perceiver/ablation"
	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// Knock out each latent of the tiny test model in turn and find the one the prediction leans on
// most.
func ExampleLatents() {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := m.Preprocessor.LoadImage("../testdata/tiny/chelsea.png", preprocess.Options{})
	if err != nil {
		log.Fatal(err)
	}
	enc, err := m.Encode(img.Pixels, 1, img.H, img.W, core.Trace{})
	if err != nil {
		log.Fatal(err)
	}
	all := make([]int, m.Config.NumLatents)
	for i := range all {
		all[i] = i
	}
	r, err := ablation.Latents(m, enc.HiddenStates[0], -1, all, ablation.Options{})
	if err != nil {
		log.Fatal(err)
	}
	best := 0
	for i, d := range r.Delta {
		if d > r.Delta[best] {
			best = i
		}
	}
	fmt.Printf("class %d; %d ablations; latent %d matters most\n", r.Target, len(r.Delta), r.Latents[best])
	// Output: class 1; 8 ablations; latent 1 matters most
}
