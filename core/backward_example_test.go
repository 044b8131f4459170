package core_test

import (
	"fmt"
	"log"

	"github.com/perceiverkit/perceiver/core"
)

// ForwardBackward differentiates a logit: here class 1's on a grey 12×16 image, keeping only the
// gradient with respect to the pixels and to the decoder's attention.
func ExampleModel_ForwardBackward() {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	pixels := make([]float32, 3*12*16)
	out, g, err := m.ForwardBackward(pixels, 1, 12, 16, core.Trace{}, core.GradTrace{Pixels: true, DecoderAttention: true, Targets: []int{1}})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range g.Tensors(out) {
		fmt.Println(t.Name, t.Shape)
	}
	fmt.Println("target", g.Targets[0], "hidden-state gradients kept:", g.HiddenStates != nil)
	// Output:
	// grad.pixel_values [1 3 12 16]
	// grad.cross_attentions.decoder [1 1 1 8]
	// target 1 hidden-state gradients kept: false
}
