package serve

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"strconv"

	"golang.org/x/image/draw"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/viz"
)

// colormaps are the colour scales the page offers, by name, first the default.
var colormaps = []struct {
	name string
	cm   viz.Colormap
}{
	{"viridis", viz.Viridis},
	{"hot", hot},
	{"gray", viz.Gray},
	{divergingName, viz.Diverging},
}

// divergingName is the colour map signed maps get by default: blue, white at zero, red.
const divergingName = "diverging"

func colormapNames() []string {
	names := make([]string, len(colormaps))
	for i, c := range colormaps {
		names[i] = c.name
	}
	return names
}

func colormapByName(name string) (viz.Colormap, bool) {
	if name == "" {
		return colormaps[0].cm, true
	}
	for _, c := range colormaps {
		if c.name == name {
			return c.cm, true
		}
	}
	return nil, false
}

// hot goes black → red → yellow → white, each channel rising linearly in turn (red over the
// first 3/8 of t, green over the next 3/8, blue over the last quarter): hot spots read as light
// on a dark image.
func hot(t float64) color.RGBA {
	ramp := func(lo, hi float64) uint8 {
		v := (t - lo) / (hi - lo)
		return uint8(math.Round(255 * min(1, max(0, v))))
	}
	return color.RGBA{ramp(0, 0.375), ramp(0.375, 0.75), ramp(0.75, 1), 255}
}

// encodePNG encodes img with the fastest compression: maps are small and go over loopback.
func encodePNG(img image.Image) []byte {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		panic(err) // encoding to memory fails only for invalid images, which we never build
	}
	return buf.Bytes()
}

// heatmapPNG draws the h×w map m, one pixel per cell, over its own finite range (signed: the
// range symmetric about zero that holds it), and returns the PNG with that range.
func heatmapPNG(m []float32, h, w int, cm viz.Colormap, signed bool) (data []byte, lo, hi float64) {
	if signed {
		lo, hi = viz.SymmetricRange(m)
	} else {
		lo, hi = viz.Range(m)
	}
	img := viz.Heatmap(m, h, w, viz.HeatmapOptions{Min: lo, Max: hi, Colormap: cm})
	return encodePNG(img), lo, hi
}

// colorbarPNG is a 256×1 strip of the colour map from t = 0 (left) to 1; the page stretches it.
func colorbarPNG(cm viz.Colormap) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 256, 1))
	for x := range 256 {
		img.SetRGBA(x, 0, cm((float64(x)+0.5)/256))
	}
	return encodePNG(img)
}

// rgbImage converts a packed RGB image to an image.RGBA.
func rgbImage(src *preprocess.RGB) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, src.W, src.H))
	for i := range src.W * src.H {
		copy(dst.Pix[4*i:4*i+3], src.Pix[3*i:3*i+3])
		dst.Pix[4*i+3] = 255
	}
	return dst
}

// thumbnailPNG scales src to fit side×side (never up), with a filter that averages over the
// source pixels each output pixel covers, so large photos do not alias.
func thumbnailPNG(src *preprocess.RGB, side int) []byte {
	scale := min(1, float64(side)/float64(max(src.W, src.H)))
	w, h := max(1, int(math.Round(float64(src.W)*scale))), max(1, int(math.Round(float64(src.H)*scale)))
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.BiLinear.Scale(dst, dst.Bounds(), rgbImage(src), image.Rect(0, 0, src.W, src.H), draw.Src, nil)
	return encodePNG(dst)
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
