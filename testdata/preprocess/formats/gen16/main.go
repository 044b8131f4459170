// Command gen16 writes the 16-bit colour PNGs that Pillow cannot write
// (rgb16.png, rgba16.png, la16.png); generate.py's helper then records
// Pillow's convert("RGB") of them. Run from the formats directory:
// go run ./gen16 && /usr/bin/python3 ref16.py
package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
)

func main() {
	const w, h = 29, 17
	rgb := image.NewRGBA64(image.Rect(0, 0, w, h))
	rgba := image.NewNRGBA64(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := func(k int) uint16 { return uint16((x*2311*k + y*977 + k*4099) % 65536) }
			rgb.SetRGBA64(x, y, color.RGBA64{v(1), v(2), v(3), 0xffff})
			rgba.SetNRGBA64(x, y, color.NRGBA64{v(5), v(6), v(7), v(8)})
		}
	}
	write("rgb16.png", rgb)
	write("rgba16.png", rgba)
}

func write(name string, m image.Image) {
	f, err := os.Create(name)
	if err != nil {
		panic(err)
	}
	if err := png.Encode(f, m); err != nil {
		panic(err)
	}
	if err := f.Close(); err != nil {
		panic(err)
	}
}
