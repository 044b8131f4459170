package probe_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/perceiverkit/perceiver/probe"
)

// Write two images' tokens (2 latents × 3 channels, float16) and read one token back through the
// memory map.
func ExampleCreateTokens() {
	dir, _ := os.MkdirTemp("", "tokens")
	defer os.RemoveAll(dir)
	base := filepath.Join(dir, "emb.tokens", "block1")
	w, err := probe.CreateTokens(base, probe.TokenMeta{Name: "block1", Layer: "block1", State: 2, DType: probe.TokensFloat16,
		Shape: [3]int{0, 2, 3}, Latents: []int{0, 4}, Identity: map[string]string{"weights.sha256": "…"}}, probe.TokenWriterOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	w.Write(1, "b.png", 3, []float32{1, 2, 3, 4, 5, 6})
	w.Write(0, "a.png", -1, []float32{0.5, 0.25, 0, -1, -2, -3})
	if err := w.Close(); err != nil {
		fmt.Println(err)
		return
	}
	t, err := probe.OpenTokens(base)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	tok := make([]float32, 3)
	t.Token(tok, 1, 1) // image 1 in index order (b.png), the second kept latent (latent 4)
	fmt.Println(t.Meta.Shape, t.Meta.IDs, t.Meta.Latents, tok)
	// Output:
	// [2 2 3] [a.png b.png] [0 4] [4 5 6]
}
