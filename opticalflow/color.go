package opticalflow

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"github.com/perceiverkit/perceiver/viz"
)

// wheel is the Middlebury colour wheel: 55 hues in six ramps, each channel rising or falling by
// 255/len steps (floored) from one primary or secondary colour to the next.
var wheel = func() [][3]float64 {
	ramps := []struct {
		n        int
		from, to [3]float64 // start and end colour of the ramp
	}{
		{15, [3]float64{255, 0, 0}, [3]float64{255, 255, 0}}, // red → yellow
		{6, [3]float64{255, 255, 0}, [3]float64{0, 255, 0}},  // yellow → green
		{4, [3]float64{0, 255, 0}, [3]float64{0, 255, 255}},  // green → cyan
		{11, [3]float64{0, 255, 255}, [3]float64{0, 0, 255}}, // cyan → blue
		{13, [3]float64{0, 0, 255}, [3]float64{255, 0, 255}}, // blue → magenta
		{6, [3]float64{255, 0, 255}, [3]float64{255, 0, 0}},  // magenta → red
	}
	var out [][3]float64
	for _, r := range ramps {
		for i := 0; i < r.n; i++ {
			var c [3]float64
			for k := range c {
				step := math.Floor(255 * float64(i) / float64(r.n))
				switch {
				case r.to[k] > r.from[k]:
					c[k] = step
				case r.to[k] < r.from[k]:
					c[k] = 255 - step
				default:
					c[k] = r.from[k]
				}
			}
			out = append(out, c)
		}
	}
	return out
}()

// WheelSize is the number of hues of the Middlebury colour wheel.
const WheelSize = 55

// Color returns the Middlebury colour of the flow (u, v) given in units of the largest length
// shown: the hue from the direction, white at zero, fully saturated at length 1; lengths past 1
// are darkened (×0.75), as Middlebury's tool marks out-of-range flow. NaN or infinite flow is
// black.
func Color(u, v float64) color.RGBA {
	if math.IsNaN(u) || math.IsNaN(v) || math.IsInf(u, 0) || math.IsInf(v, 0) {
		return color.RGBA{0, 0, 0, 255}
	}
	n := float64(len(wheel))
	rad := math.Hypot(u, v)
	a := math.Atan2(-v, -u) / math.Pi // −1 … 1
	fk := (a + 1) / 2 * (n - 1)       // 0 … n−1
	k0 := int(math.Floor(fk))
	k1 := (k0 + 1) % len(wheel)
	f := fk - float64(k0)
	var out [3]uint8
	for c := 0; c < 3; c++ {
		col := ((1-f)*wheel[k0][c] + f*wheel[k1][c]) / 255
		if rad <= 1 {
			col = 1 - rad*(1-col)
		} else {
			col *= 0.75
		}
		out[c] = uint8(math.Floor(255 * col))
	}
	return color.RGBA{out[0], out[1], out[2], 255}
}

// MaxLength is the largest finite flow length of f, in pixels.
func MaxLength(f *Field) float64 {
	var m float64
	for i := 0; i < len(f.UV); i += 2 {
		r := math.Hypot(float64(f.UV[i]), float64(f.UV[i+1]))
		if !math.IsInf(r, 0) && !math.IsNaN(r) {
			m = max(m, r)
		}
	}
	return m
}

// Image colours f with the Middlebury wheel, lengths divided by maxLen (MaxLength(f) when
// maxLen ≤ 0; a field of zeros is white).
func Image(f *Field, maxLen float64) *image.RGBA {
	if maxLen <= 0 {
		maxLen = MaxLength(f)
	}
	if maxLen <= 0 {
		maxLen = 1
	}
	img := image.NewRGBA(image.Rect(0, 0, f.W, f.H))
	for y := 0; y < f.H; y++ {
		for x := 0; x < f.W; x++ {
			u, v := f.At(y, x)
			img.SetRGBA(x, y, Color(float64(u)/maxLen, float64(v)/maxLen))
		}
	}
	return img
}

// Wheel draws the colour key: a disc of the given diameter whose pixel at offset (dx, dy) from
// the centre shows the colour of the flow (dx, dy) scaled so that the rim is length 1; outside
// the disc is white.
func Wheel(size int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	r := float64(size) / 2
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			u, v := (float64(x)+0.5-r)/r, (float64(y)+0.5-r)/r
			if math.Hypot(u, v) > 1 {
				img.SetRGBA(x, y, color.RGBA{255, 255, 255, 255})
				continue
			}
			img.SetRGBA(x, y, Color(u, v))
		}
	}
	return img
}

// Picture is the flow picture with its legend: the coloured field under title (which may say that
// the weights are random), and the colour wheel titled with the length its rim stands for, in
// pixels. Fields narrower than 320 pixels are enlarged by a whole factor so that titles fit.
func Picture(f *Field, maxLen float64, title string) *image.RGBA {
	if maxLen <= 0 {
		maxLen = MaxLength(f)
	}
	img := Image(f, maxLen)
	if k := (320 + f.W - 1) / f.W; k > 1 {
		img = enlarge(img, k)
	}
	wheelSize := max(120, min(img.Bounds().Dy(), 200))
	// Two montages side by side, so that the legend's cell is the wheel's size, not the field's.
	left := viz.Montage([]viz.Tile{{Image: img, Title: title}}, 1)
	right := viz.Montage([]viz.Tile{{Image: Wheel(wheelSize), Title: fmt.Sprintf("rim = %.3g px", maxLen)}}, 1)
	lb, rb := left.Bounds(), right.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, lb.Dx()+rb.Dx(), max(lb.Dy(), rb.Dy())))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(out, lb, left, lb.Min, draw.Src)
	draw.Draw(out, rb.Add(image.Pt(lb.Dx(), 0)), right, rb.Min, draw.Src)
	return out
}

// enlarge scales img up k times, nearest neighbour.
func enlarge(img *image.RGBA, k int) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*k, b.Dy()*k))
	for y := 0; y < b.Dy()*k; y++ {
		for x := 0; x < b.Dx()*k; x++ {
			out.SetRGBA(x, y, img.RGBAAt(x/k, y/k))
		}
	}
	return out
}
