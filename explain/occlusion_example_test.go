package explain_test

import (
	"fmt"
	"log"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/explain"
)

// Occlusion of the tiny test model's 12×16 input with 4×4 windows every 4 pixels: 3×4 windows
// tile the image, 12 forward passes (plus one) in batches.
func ExampleOcclusion() {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := m.Preprocessor.LoadImage("../testdata/tiny/chelsea.png", preprocess.Options{})
	if err != nil {
		log.Fatal(err)
	}
	att, err := explain.Occlusion(m, img.Pixels, img.H, img.W, 1, 4, 4)
	if err != nil {
		log.Fatal(err)
	}
	best := 0
	for p, v := range att {
		if v > att[best] {
			best = p
		}
	}
	fmt.Printf("%d×%d map; the window that lowers class 1 most covers pixel (%d, %d)\n", img.H, img.W, best/img.W, best%img.W)
	// Output: 12×16 map; the window that lowers class 1 most covers pixel (0, 12)
}
