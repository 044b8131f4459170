package explain_test

import (
	"fmt"
	"log"
	"math"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/explain"
)

// AttnLRP's map is on the pixel grid; its conservation record says where the logit went, and
// Latents holds each latent's relevance after the encoder cross-attention.
func ExampleRelevance() {
	m, err := core.Load("../testdata/tiny-conv")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	px := make([]float32, 3*24*32)
	for i := range px {
		px[i] = float32(math.Sin(float64(i)))
	}
	mp, err := explain.Relevance(explain.Input{Model: m, Pixels: px, H: 24, W: 32, Target: 2}, "attnlrp")
	if err != nil {
		log.Fatal(err)
	}
	c := mp.Conservation
	fmt.Printf("%s: %d×%d map, signed %v, %d latents\n", mp.Method, mp.Grid.Rows, mp.Grid.Cols, mp.Signed, len(mp.Latents))
	fmt.Printf("y %.3f: pixels %.3f, positions %.3f, latents %.3f, query %.3f, absorbed %.3f\n", c.Logit, c.Pixels, c.Positions, c.Latents, c.Query, c.Absorbed)
	fmt.Printf("most relevant latent: %d\n", mp.TopLatents[0].Index)
	// Output:
	// attnlrp: 24×32 map, signed true, 8 latents
	// y 1.761: pixels -0.024, positions 0.006, latents -0.116, query 1.792, absorbed 0.103
	// most relevant latent: 5
}
