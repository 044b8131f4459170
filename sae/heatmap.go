package sae

import (
	"fmt"

	"github.com/perceiverkit/perceiver/core"
)

// TokenHeatmap draws where a token feature sits on the image: value × latent l's encoder
// cross-attention over the input tokens (the mean over cross-attention heads), drawn on the pixel
// grid through grid (a conv token covers its 4×4 cell). attn is one image's encoder attention
// [heads, latents, N]; dst is [grid.Height·grid.Width], in the feature's units times attention
// probability.
func TokenHeatmap(dst, attn []float32, heads, latents, l int, value float32, grid core.TokenGrid) {
	n := grid.Tokens()
	if len(attn) != heads*latents*n || l < 0 || l >= latents || len(dst) != grid.Height*grid.Width {
		panic(ShapeError(fmt.Sprintf("TokenHeatmap: attention of %d values for %d heads × %d latents × %d tokens, latent %d, map of %d for %d×%d",
			len(attn), heads, latents, n, l, len(dst), grid.Height, grid.Width)))
	}
	m := make([]float32, n)
	inv := value / float32(heads)
	for h := 0; h < heads; h++ {
		row := attn[(h*latents+l)*n : (h*latents+l+1)*n]
		for i, a := range row {
			m[i] += a * inv
		}
	}
	grid.ToPixels(dst, m)
}
