package viz

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
)

// HeatmapOptions say how a map becomes colours. The zero value draws one pixel per cell in
// Viridis over the map's own range.
type HeatmapOptions struct {
	// Min and Max are the values drawn as t = 0 and t = 1. When Max ≤ Min (as in the zero
	// value) the map's own finite min..max is used.
	Min, Max float64
	// Colormap defaults to Viridis. It is sampled at 256 levels, the resolution of 8-bit colour.
	Colormap Colormap
	// Width and Height are the output size of Heatmap in pixels; 0 means one pixel per cell.
	// DrawHeatmap and the overlays use their destination's size instead.
	Width, Height int
	// Smooth interpolates values bilinearly between cell centres instead of drawing blocks.
	Smooth bool
}

// Range returns the smallest and largest finite values of m; (0, 0) if there are none.
func Range(m []float32) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range m {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		lo, hi = min(lo, f), max(hi, f)
	}
	if lo > hi {
		return 0, 0
	}
	return lo, hi
}

// Limits returns the value range the options give m: Min..Max if set, else Range(m).
func (o HeatmapOptions) Limits(m []float32) (lo, hi float64) {
	if o.Max > o.Min {
		return o.Min, o.Max
	}
	return Range(m)
}

func (o HeatmapOptions) colormap() Colormap {
	if o.Colormap == nil {
		return Viridis
	}
	return o.Colormap
}

// HeatmapShapeError is the panic value when a map's length is not h·w or a size is not
// positive: a programmer error.
type HeatmapShapeError struct {
	Func   string
	Detail string
}

func (e *HeatmapShapeError) Error() string { return "viz." + e.Func + ": " + e.Detail }

func checkMap(fn string, m []float32, h, w int) {
	if h <= 0 || w <= 0 || len(m) != h*w {
		panic(&HeatmapShapeError{Func: fn, Detail: fmt.Sprintf("map of %d values for %d×%d", len(m), h, w)})
	}
}

// Heatmap draws the h×w map m in colour, opt.Width×opt.Height pixels (default w×h).
func Heatmap(m []float32, h, w int, opt HeatmapOptions) *image.RGBA {
	checkMap("Heatmap", m, h, w)
	width, height := opt.Width, opt.Height
	if width <= 0 {
		width = w
	}
	if height <= 0 {
		height = h
	}
	dst := image.NewRGBA(image.Rect(0, 0, width, height))
	DrawHeatmap(dst, m, h, w, opt)
	return dst
}

// DrawHeatmap draws the h×w map m in colour over all of dst's bounds. It does not allocate.
func DrawHeatmap(dst *image.RGBA, m []float32, h, w int, opt HeatmapOptions) {
	checkMap("DrawHeatmap", m, h, w)
	forEachPixel(dst, m, h, w, opt, func(px []uint8, c color.RGBA) {
		px[0], px[1], px[2], px[3] = c.R, c.G, c.B, c.A
	})
}

// Overlay draws base with the h×w map m blended over it at opacity alpha ∈ [0, 1]
// (0: base only, 1: heatmap only). The map is stretched to base's bounds.
func Overlay(base image.Image, m []float32, h, w int, alpha float64, opt HeatmapOptions) *image.RGBA {
	b := base.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	DrawOverlay(dst, base, m, h, w, alpha, opt)
	return dst
}

// DrawOverlay draws base into dst (aligning their minimum corners) and blends the h×w map m over
// all of dst's bounds at opacity alpha ∈ [0, 1]: out = (1−alpha)·base + alpha·colour. It does not
// allocate.
func DrawOverlay(dst *image.RGBA, base image.Image, m []float32, h, w int, alpha float64, opt HeatmapOptions) {
	checkMap("DrawOverlay", m, h, w)
	if !(alpha >= 0 && alpha <= 1) {
		panic(&HeatmapShapeError{Func: "DrawOverlay", Detail: fmt.Sprintf("alpha %v outside [0, 1]", alpha)})
	}
	draw.Draw(dst, dst.Bounds(), base, base.Bounds().Min, draw.Src)
	a := uint32(math.Round(alpha * 255))
	keep := 255 - a
	forEachPixel(dst, m, h, w, opt, func(px []uint8, c color.RGBA) {
		// Colours are premultiplied and the heatmap opaque, so one formula serves all four.
		px[0] = uint8((uint32(px[0])*keep + uint32(c.R)*a + 127) / 255)
		px[1] = uint8((uint32(px[1])*keep + uint32(c.G)*a + 127) / 255)
		px[2] = uint8((uint32(px[2])*keep + uint32(c.B)*a + 127) / 255)
		px[3] = uint8((uint32(px[3])*keep + 255*a + 127) / 255)
	})
}

// forEachPixel computes the colour of every pixel of dst's bounds from the map and hands it to
// set with the pixel's 4 bytes. set is a direct call in a loop the compiler keeps tight enough
// for 224² maps (see BenchmarkOverlay224).
func forEachPixel(dst *image.RGBA, m []float32, h, w int, opt HeatmapOptions, set func(px []uint8, c color.RGBA)) {
	bounds := dst.Bounds()
	width, height := bounds.Dx(), bounds.Dy()
	if width == 0 || height == 0 {
		return
	}
	lo, hi := opt.Limits(m)
	cm := opt.colormap()
	inv := 0.0
	if hi > lo {
		inv = 1 / (hi - lo)
	}
	// Sample the colour map once per 8-bit level rather than once per pixel; for Viridis, a
	// 256-entry table itself, this is exact.
	var levels [256]color.RGBA
	for i := range levels {
		levels[i] = cm((float64(i) + 0.5) / 256)
	}
	colorOf := func(v float64) color.RGBA {
		t := (v - lo) * inv
		switch {
		case t > 0 && t < 1:
			return levels[int(t*256)]
		case t >= 1:
			return levels[255]
		case math.IsNaN(t):
			return NaNColor
		}
		return levels[0]
	}
	for y := range height {
		row := dst.Pix[(y)*dst.Stride : (y)*dst.Stride+4*width]
		if !opt.Smooth {
			// Cell boundaries at multiples of width/w: the integer form is exact, so every
			// cell covers the same pixels whatever the scale.
			src := m[(y*h/height)*w:]
			for x := range width {
				set(row[4*x:4*x+4:4*x+4], colorOf(float64(src[x*w/width])))
			}
			continue
		}
		sy := clampCoord((float64(y)+0.5)*float64(h)/float64(height)-0.5, h)
		y0 := int(sy)
		y1 := min(y0+1, h-1)
		fy := sy - float64(y0)
		for x := range width {
			sx := clampCoord((float64(x)+0.5)*float64(w)/float64(width)-0.5, w)
			x0 := int(sx)
			x1 := min(x0+1, w-1)
			fx := sx - float64(x0)
			top := (1-fx)*float64(m[y0*w+x0]) + fx*float64(m[y0*w+x1])
			bottom := (1-fx)*float64(m[y1*w+x0]) + fx*float64(m[y1*w+x1])
			set(row[4*x:4*x+4:4*x+4], colorOf((1-fy)*top+fy*bottom))
		}
	}
}

func clampCoord(s float64, n int) float64 {
	return max(0, min(s, float64(n-1)))
}
