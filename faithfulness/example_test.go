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

// ROAD on the tiny model without noise: the left-half map again, MoRF imputing the left half
// first, LeRF the right half first, at p = 0.25, 0.5, 0.75.
func ExampleEvaluateROAD() {
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
	r, err := faithfulness.EvaluateROAD(m, im, [][]float32{left}, faithfulness.RoadOptions{Steps: 4, Noise: 0})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("fractions %v\nmorf %.3f (AUC %.3f)\nlerf %.3f (AUC %.3f)\n",
		r[0].MoRF.Fractions, r[0].MoRF.Prob, r[0].MoRF.AUCProb, r[0].LeRF.Prob, r[0].LeRF.AUCProb)
	// Output:
	// fractions [0.25 0.5 0.75]
	// morf [0.576 0.573 0.571] (AUC 0.287)
	// lerf [0.576 0.581 0.581] (AUC 0.290)
}

// Compare two 8×8 maps: the second is the first plus a constant, so the ranks agree exactly.
func ExampleCompare() {
	a := make([]float32, 64)
	b := make([]float32, 64)
	for i := range a {
		a[i] = float32(i%9) + 1
		b[i] = a[i] + 10
	}
	s, err := faithfulness.Compare(a, b, 8, 8)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("spearman_abs %.3f spearman %.3f ssim %.3f\n", *s.SpearmanAbs, *s.Spearman, *s.SSIM)
	// Output:
	// spearman_abs 1.000 spearman 1.000 ssim 0.727
}

// The cascade of the tiny model: its groups, randomised one at a time from the output end.
func ExampleNewCascade() {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := faithfulness.NewCascade(m, 1)
	if err != nil {
		log.Fatal(err)
	}
	for range c.Groups {
		fmt.Println(c.Next())
	}
	// Output:
	// decoder
	// self_attends.1
	// self_attends.0
	// cross_attention
	// input
}
