package core

import "fmt"

// InputStage turns normalised pixels into the tokens the encoder's latents attend to: Hugging
// Face's input_preprocessor. The three image classifiers differ only here (FourierStage,
// LearnedStage, ConvStage); their weights are hf-tagged fields under perceiver.input_preprocessor.
//
// A stage is safe for concurrent use: what it derives from its weights (position features, the
// projected learned positions) is cached behind a lock and rebuilt when a weight's Data is
// reassigned.
type InputStage interface {
	// Kind is the short name of the model family: "fourier", "learned" or "conv".
	Kind() string
	// Channels is the width C of a token, config d_model.
	Channels() int
	// Grid places the tokens of an h×w image, or says why the stage cannot take that size.
	Grid(h, w int) (TokenGrid, error)
	// Tokens writes the tokens [N, C] of one image img [3, h, w] into dst, N = Grid(h, w).Tokens().
	Tokens(dst, img []float32, h, w int)
}

// TokenGrid says where an input stage's tokens sit on the image: token (i, j) of the Rows×Cols
// grid (row-major, N = Rows·Cols) stands for the Stride×Stride cell of pixels whose centre pixel
// is (Stride·i + Offset, Stride·j + Offset). For pixels and learned positions Stride is 1 and
// Offset 0: a token is a pixel. For the conv stage (7×7 convolution of stride 2, then a 3×3 max
// pool of stride 2) Stride is 4 and Offset 2: the centre of the receptive field.
type TokenGrid struct {
	Rows, Cols    int // tokens per column and per row
	Height, Width int // the image, in pixels
	Stride        int // pixels from one token to the next, along either axis
	Offset        int // the centre pixel of token (0, 0), along either axis
}

// Tokens is N, the number of tokens.
func (g TokenGrid) Tokens() int { return g.Rows * g.Cols }

// Pixel reports whether a token is one pixel, so that maps over tokens are maps over pixels.
func (g TokenGrid) Pixel() bool { return g.Stride == 1 && g.Rows == g.Height && g.Cols == g.Width }

// tokenAt returns the token row (or column) whose cell holds pixel p: the nearest centre, ties to
// the later token, clamped to the grid (a margin past the last cell takes the last token).
func tokenAt(p, stride, offset, n int) int {
	i := (p - offset + stride/2)
	if i < 0 {
		return 0
	}
	return min(i/stride, n-1)
}

// ToPixels draws the map m over tokens [Rows·Cols] on the pixel grid dst [Height·Width]: each pixel
// takes the value of the token whose cell holds it.
func (g TokenGrid) ToPixels(dst, m []float32) {
	if len(m) != g.Tokens() || len(dst) != g.Height*g.Width {
		panic(ShapeError(fmt.Sprintf("TokenGrid.ToPixels: map of %d values, image of %d, want %d and %d",
			len(m), len(dst), g.Tokens(), g.Height*g.Width)))
	}
	cols := make([]int, g.Width)
	for x := range cols {
		cols[x] = tokenAt(x, g.Stride, g.Offset, g.Cols)
	}
	for y := 0; y < g.Height; y++ {
		row := m[tokenAt(y, g.Stride, g.Offset, g.Rows)*g.Cols:]
		out := dst[y*g.Width : (y+1)*g.Width]
		for x, j := range cols {
			out[x] = row[j]
		}
	}
}

// String describes the grid and its geometry, for reports and file metadata.
func (g TokenGrid) String() string {
	if g.Pixel() {
		return fmt.Sprintf("%d×%d tokens, one per pixel", g.Rows, g.Cols)
	}
	return fmt.Sprintf("%d×%d tokens over a %d×%d image; token (i, j) is the %d×%d cell centred at pixel (%d·i+%d, %d·j+%d)",
		g.Rows, g.Cols, g.Height, g.Width, g.Stride, g.Stride, g.Stride, g.Offset, g.Stride, g.Offset)
}

// ShapeError is the panic value of a function called with buffers that do not match its
// dimensions: a programming error, never a data error.
type ShapeError string

func (e ShapeError) Error() string { return string(e) }
