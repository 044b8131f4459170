package preprocess

import "image"

// Lossy WebP stores limited-range BT.601 YUV 4:2:0. Go's x/image/webp returns
// the planes as an image.YCbCr, whose standard conversion assumes full-range
// JFIF YCbCr, so colours come out visibly wrong. Pillow decodes with libwebp,
// which upsamples chroma with a 9-3-3-1 filter (dsp/upsampling.c) and converts
// with 14-bit fixed-point BT.601 formulas (dsp/yuv.h); both are redone here.

func webpClip8(v int) uint8 {
	const fix, mask = 6, (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> fix)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func mulHi(v, c int) int { return (v * c) >> 8 }

// webpYUVToRGB is libwebp's VP8YuvToRgb.
func webpYUVToRGB(y, u, v uint8) (r, g, b uint8) {
	yy, uu, vv := int(y), int(u), int(v)
	r = webpClip8(mulHi(yy, 19077) + mulHi(vv, 26149) - 14234)
	g = webpClip8(mulHi(yy, 19077) - mulHi(uu, 6419) - mulHi(vv, 13320) + 8708)
	b = webpClip8(mulHi(yy, 19077) + mulHi(uu, 33050) - 17685)
	return
}

// ycbcrToRGBWebP converts a decoded lossy WebP (4:2:0) as libwebp's default
// RGB output does. Other subsampling ratios cannot come from VP8.
func ycbcrToRGBWebP(out *RGB, m *image.YCbCr) {
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		ycbcrToRGBGo(out, m.Y, m.Cb, m.Cr, m)
		return
	}
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	c0 := m.COffset(b.Min.X, b.Min.Y)
	u := make([]uint8, w)
	v := make([]uint8, w)
	for y := 0; y < h; y++ {
		// Output row y leans on chroma row y/2 (near) and its neighbour on
		// the side of y (far); libwebp mirrors at the top and bottom edges.
		near := y / 2
		far := near - 1
		if y%2 == 1 {
			far = near + 1
		}
		far = min(max(far, 0), ch-1)
		webpUpsampleRow(u, m.Cb[c0+near*m.CStride:][:cw], m.Cb[c0+far*m.CStride:][:cw])
		webpUpsampleRow(v, m.Cr[c0+near*m.CStride:][:cw], m.Cr[c0+far*m.CStride:][:cw])
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):][:w]
		o := out.Pix[y*w*3 : (y+1)*w*3]
		for x, yv := range yrow {
			o[x*3], o[x*3+1], o[x*3+2] = webpYUVToRGB(yv, u[x], v[x])
		}
	}
}

// webpUpsampleRow is one output row of libwebp's UPSAMPLE_FUNC for one chroma
// channel: near is the chroma row closer to the output row, far the other.
func webpUpsampleRow(out, near, far []uint8) {
	w := len(out)
	out[0] = uint8((3*int(near[0]) + int(far[0]) + 2) >> 2)
	last := (w - 1) >> 1
	for x := 1; x <= last; x++ {
		nl, nr := int(near[x-1]), int(near[x])
		fl, fr := int(far[x-1]), int(far[x])
		avg := nl + nr + fl + fr + 8
		out[2*x-1] = uint8((((avg + 2*(nr+fl)) >> 3) + nl) >> 1)
		out[2*x] = uint8((((avg + 2*(nl+fr)) >> 3) + nr) >> 1)
	}
	if w%2 == 0 {
		out[w-1] = uint8((3*int(near[last]) + int(far[last]) + 2) >> 2)
	}
}
