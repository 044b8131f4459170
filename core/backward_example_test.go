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

// One training step's gradients: the mean cross-entropy of a batch of two images with labels 3
// and 0, and the gradient of every parameter, keyed by its Hugging Face name and summed over the
// batch (∂L/∂θ). An optimiser updates each Param in place, then calls WeightsChanged.
func ExampleModel_ForwardBackward_parameters() {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	pixels := make([]float32, 2*3*12*16)
	for i := range pixels {
		pixels[i] = float32(i%7) / 7
	}
	_, g, err := m.ForwardBackward(pixels, 2, 12, 16, core.Trace{}, core.GradTrace{Labels: []int{3, 0}, Params: core.AllParams})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("loss %.3f, %d parameter gradients\n", g.Loss, len(g.Params))
	fmt.Println(g.Params[0].Name, g.Params[0].Shape)
	fin := g.Param("perceiver.decoder.decoder.final_layer.bias")
	fmt.Println(fin.Name, fin.Shape)
	// Output:
	// loss 2.796, 72 parameter gradients
	// perceiver.embeddings.latents [8 32]
	// perceiver.decoder.decoder.final_layer.bias [5]
}
