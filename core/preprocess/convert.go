package preprocess

import (
	"image"
	"image/color"
)

// Conversions to RGB follow Pillow's Convert.c for the mode Pillow would have
// opened the file in:
//   - alpha is dropped, never composited (RGBA→RGB, LA→RGB);
//   - gray is replicated (L→RGB), palette entries are looked up (P→RGB);
//   - 16-bit gray opens as mode "I;16" and I;16→RGB clamps the value to 255
//     (it does not scale); 16-bit colour opens as 8-bit keeping the high byte;
//   - premultiplied colour ("RGBa") is un-premultiplied as 255·c/a, truncated;
//   - CMYK→RGB is nk − nk·c/255 with nk = 255 − k, rounded as MULDIV255.

type sourceInfo struct {
	format string
	png    pngInfo
}

func toRGB(src image.Image, info sourceInfo) *RGB {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	out := NewRGB(w, h)
	p := out.Pix
	switch m := src.(type) {
	case *image.YCbCr:
		switch info.format {
		case "jpeg":
			ycbcrToRGBLibjpeg(out, m)
		case "webp":
			ycbcrToRGBWebP(out, m)
		default:
			ycbcrToRGBGo(out, m.Y, m.Cb, m.Cr, m)
		}
	case *image.NYCbCrA: // lossy WebP with alpha; the alpha is dropped
		ycbcrToRGBWebP(out, &m.YCbCr)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			o := p[y*w*3:]
			for x, v := range row {
				o[x*3], o[x*3+1], o[x*3+2] = v, v, v
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:2*w]
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				v := clampI16(row[2*x], row[2*x+1])
				o[x*3], o[x*3+1], o[x*3+2] = v, v, v
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				o[x*3], o[x*3+1], o[x*3+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.NRGBA64:
		// A 16-bit gray PNG with a tRNS chunk decodes to NRGBA64 in Go but stays
		// "I;16" in Pillow, which clamps instead of taking the high byte.
		grayClamp := info.png.ok && info.png.colorType == 0
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:8*w]
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				q := row[8*x:]
				if grayClamp {
					v := clampI16(q[0], q[1])
					o[x*3], o[x*3+1], o[x*3+2] = v, v, v
				} else {
					o[x*3], o[x*3+1], o[x*3+2] = q[0], q[2], q[4]
				}
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				q := row[4*x:]
				o[x*3], o[x*3+1], o[x*3+2] = unpremultiply(q[0], q[3]), unpremultiply(q[1], q[3]), unpremultiply(q[2], q[3])
			}
		}
	case *image.RGBA64:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:8*w]
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				q := row[8*x:]
				o[x*3], o[x*3+1], o[x*3+2] = unpremultiply(q[0], q[6]), unpremultiply(q[2], q[6]), unpremultiply(q[4], q[6])
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8
		for i, c := range m.Palette {
			if i == 256 {
				break
			}
			lut[i] = paletteRGB(c)
		}
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			o := p[y*w*3:]
			for x, idx := range row {
				c := lut[idx]
				o[x*3], o[x*3+1], o[x*3+2] = c[0], c[1], c[2]
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				q := row[4*x:]
				nk := 255 - int(q[3])
				o[x*3] = cmykChannel(q[0], nk)
				o[x*3+1] = cmykChannel(q[1], nk)
				o[x*3+2] = cmykChannel(q[2], nk)
			}
		}
	default:
		for y := 0; y < h; y++ {
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				c := color.NRGBAModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				o[x*3], o[x*3+1], o[x*3+2] = c.R, c.G, c.B
			}
		}
	}
	return out
}

// clampI16 is Pillow's I16_RGB for a big-endian sample: values above 255 become 255.
func clampI16(hi, lo uint8) uint8 {
	if hi != 0 {
		return 255
	}
	return lo
}

// unpremultiply is Pillow's rgba2rgb_ ("RGBa"→"RGB") for one channel.
func unpremultiply(c, a uint8) uint8 {
	if a == 255 || a == 0 {
		return c
	}
	v := 255 * int(c) / int(a)
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// cmykChannel is one channel of Pillow's cmyk2rgb: nk − MULDIV255(c, nk).
func cmykChannel(c uint8, nk int) uint8 {
	t := int(c)*nk + 128
	v := nk - ((t>>8)+t)>>8
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// paletteRGB returns the colour a Pillow palette holds for an entry: the
// straight (not premultiplied) red, green and blue.
func paletteRGB(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case nil:
		return [3]uint8{}
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.RGBA:
		return [3]uint8{unpremultiply(v.R, v.A), unpremultiply(v.G, v.A), unpremultiply(v.B, v.A)}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

// ycbcrToRGBGo converts with Go's color.YCbCrToRGB and nearest-neighbour
// chroma, for YCbCr images from neither JPEG nor WebP.
func ycbcrToRGBGo(out *RGB, yp, cbp, crp []uint8, m *image.YCbCr) {
	b := m.Rect
	w := b.Dx()
	for y := 0; y < b.Dy(); y++ {
		o := out.Pix[y*w*3:]
		for x := 0; x < w; x++ {
			yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
			ci := m.COffset(b.Min.X+x, b.Min.Y+y)
			o[x*3], o[x*3+1], o[x*3+2] = color.YCbCrToRGB(yp[yi], cbp[ci], crp[ci])
		}
	}
}

// FromImage converts an image already in memory (for example a data set's gray digit) to RGB with
// the same rules as decoded files: gray replicated, palette looked up, alpha dropped.
func FromImage(src image.Image) *RGB { return toRGB(src, sourceInfo{}) }
