package core_test

import (
	"fmt"
	"log"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// Run the optical flow model (here the tiny random-weight fixture, training size 12×16) on a pair
// of frames and read the flow at one pixel, in pixels (20 × the model's output).
func ExampleModel_ForwardFrames() {
	m, err := core.Load("../testdata/tiny-flow")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	a, err := preprocess.DecodeFile("../testdata/tiny-flow/frame1.png", preprocess.Options{})
	if err != nil {
		log.Fatal(err)
	}
	b, err := preprocess.DecodeFile("../testdata/tiny-flow/frame2.png", preprocess.Options{})
	if err != nil {
		log.Fatal(err)
	}
	frames, err := preprocess.FlowFrames(a, b)
	if err != nil {
		log.Fatal(err)
	}
	out, err := m.ForwardFrames(frames, 1, a.H, a.W, core.Trace{})
	if err != nil {
		log.Fatal(err)
	}
	y, x := 5, 7
	u, v := out.Flow[2*(y*a.W+x)]*core.FlowScale, out.Flow[2*(y*a.W+x)+1]*core.FlowScale
	fmt.Printf("%d×%d frames, flow at (%d, %d): (%.2f, %.2f) px\n", a.H, a.W, y, x, u, v)
	// Output: 12×16 frames, flow at (5, 7): (-0.04, -0.05) px
}
