package opticalflow_test

import (
	"fmt"
	"log"
	"math"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/opticalflow"
)

// The tiles DeepMind's colab cuts a 436×1024 Sintel frame into for the 368×496 model.
func ExampleTileOrigins() {
	origins, err := opticalflow.TileOrigins(436, 1024, [2]int{368, 496}, opticalflow.MinOverlap)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(origins)
	// Output: [[0 0] [0 476] [0 528] [68 0] [68 476] [68 528]]
}

// Compute the flow of 30×40 frames with the tiny model (training size 12×16, so tiled), in pixels.
func ExampleCompute() {
	m, err := core.Load("../testdata/tiny-flow")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	const h, w = 30, 40
	frames := make([]float32, 2*3*h*w) // [2, 3, H, W], values in [−1, 1]
	for i := range frames {
		frames[i] = float32(math.Sin(float64(i) * 0.1))
	}
	raw, err := opticalflow.Compute(m, frames, h, w, 4, func(done, total int) {
		if done == total {
			fmt.Println(total, "tiles")
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	field := opticalflow.Pixels(raw, h, w)
	fmt.Printf("%d×%d field\n", field.H, field.W)
	// Output:
	// 12 tiles
	// 30×40 field
}
