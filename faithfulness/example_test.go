package faithfulness_test

import (
	"fmt"
	"log"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/faithfulness"
)

// Score a map that ranks the image's left half first: positive perturbation removes the left
// half, negative the right half first.
func ExampleEvaluate() {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := m.Preprocessor.LoadImage("../testdata/tiny/chelsea.png", preprocess.Options{})
	if err != nil {
		log.Fatal(err)
	}
	base, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{})
	if err != nil {
		log.Fatal(err)
	}
	left := make([]float32, img.H*img.W)
	for p := range left {
		if p%img.W < img.W/2 {
			left[p] = 1
		}
	}
	im := faithfulness.Image{Pixels: img.Pixels, H: img.H, W: img.W, Logits: base.Logits}
	c, err := faithfulness.Evaluate(m, im, [][]float32{left}, faithfulness.Options{Steps: 4})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("target %d\nfractions %v\npositive prob %.3f\nnegative prob %.3f\n",
		im.Target(), c[0].Positive.Fractions, c[0].Positive.Prob, c[0].Negative.Prob)
	// Output:
	// target 1
	// fractions [0 0.25 0.5 0.75]
	// positive prob [0.576 0.577 0.589 0.596]
	// negative prob [0.576 0.583 0.607 0.608]
}
