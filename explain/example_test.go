package explain_test

import (
	"fmt"
	"log"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/explain"
)

// Every method is registered by name; Compute explains one image for one class.
func ExampleLookup() {
	m, err := core.Load("../testdata/tiny-conv")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	in := explain.Input{Model: m, Pixels: make([]float32, 3*24*32), H: 24, W: 32, Target: 2}
	for _, name := range []string{"chefer", "saliency"} {
		meth, _ := explain.Lookup(name)
		mp, err := meth.Compute(in, explain.DefaultOptions())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d×%d map, signed %v\n", mp.Method, mp.Grid.Rows, mp.Grid.Cols, mp.Signed)
	}
	in.Target = 9
	meth, _ := explain.Lookup("chefer")
	_, err = meth.Compute(in, explain.DefaultOptions())
	fmt.Println(err)
	// Output:
	// chefer: 5×7 map, signed false
	// saliency: 24×32 map, signed false
	// explain: target 9 out of range: the model has 5 classes (0…4)
}
