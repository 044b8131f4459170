package preprocess

import "image"

// Pillow decodes JPEG with libjpeg-turbo, whose defaults differ from Go's
// image/jpeg after the IDCT: subsampled chroma is upsampled with a triangle
// filter ("fancy upsampling", jdsample.c) rather than replicated, and YCbCr→RGB
// uses 16-bit fixed-point tables (jdcolor.c) rather than Go's formula. Go gives us
// the raw chroma planes, so both steps are redone here the libjpeg way; only the
// IDCT remains Go's.

const (
	yccScaleBits = 16
	yccHalf      = 1 << (yccScaleBits - 1)
)

func fix16(x float64) int { return int(x*(1<<yccScaleBits) + 0.5) }

var (
	fixCrR = fix16(1.40200)
	fixCbB = fix16(1.77200)
	fixCrG = fix16(0.71414)
	fixCbG = fix16(0.34414)
)

func clampByte(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// yccToRGB is libjpeg's ycc_rgb_convert for one pixel.
func yccToRGB(y, cb, cr uint8) (r, g, b uint8) {
	yy := int(y)
	cbv := int(cb) - 128
	crv := int(cr) - 128
	r = clampByte(yy + (fixCrR*crv+yccHalf)>>yccScaleBits)
	g = clampByte(yy + (-fixCbG*cbv+yccHalf-fixCrG*crv)>>yccScaleBits)
	b = clampByte(yy + (fixCbB*cbv+yccHalf)>>yccScaleBits)
	return
}

// ycbcrToRGBLibjpeg converts a decoded JPEG as libjpeg-turbo's default
// decompressor would after its IDCT.
func ycbcrToRGBLibjpeg(out *RGB, m *image.YCbCr) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	cb := upsampleChroma(m, m.Cb, w, h)
	cr := upsampleChroma(m, m.Cr, w, h)
	for y := 0; y < h; y++ {
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):][:w]
		cbrow := cb[y*w : (y+1)*w]
		crrow := cr[y*w : (y+1)*w]
		o := out.Pix[y*w*3 : (y+1)*w*3]
		for x, yv := range yrow {
			o[x*3], o[x*3+1], o[x*3+2] = yccToRGB(yv, cbrow[x], crrow[x])
		}
	}
}

// upsampleChroma returns plane at full resolution (w×h, packed) using
// libjpeg-turbo's h2v1, h2v2 or h1v2 fancy upsampling, or replication for the
// other ratios (libjpeg's int_upsample).
func upsampleChroma(m *image.YCbCr, plane []uint8, w, h int) []uint8 {
	out := make([]uint8, w*h)
	b := m.Rect
	// Chroma plane geometry as libjpeg sees it: downsampled_width/height are
	// ceil(image size / factor); rows or columns past them are never read.
	c0 := m.COffset(b.Min.X, b.Min.Y)
	stride := m.CStride
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422: // h2v1
		cw := (w + 1) / 2
		tmp := make([]uint8, 2*cw)
		for y := 0; y < h; y++ {
			in := plane[c0+y*stride:][:cw]
			fancyH2(tmp, in)
			copy(out[y*w:(y+1)*w], tmp)
		}
		return out
	case image.YCbCrSubsampleRatio420: // h2v2
		cw, ch := (w+1)/2, (h+1)/2
		sums := make([]int, cw)
		tmp := make([]uint8, 2*cw)
		for y := 0; y < h; y++ {
			cy := y / 2
			ny := cy - 1 // even output rows lean on the chroma row above
			if y%2 == 1 {
				ny = cy + 1
			}
			ny = min(max(ny, 0), ch-1) // libjpeg replicates the edge rows
			in0 := plane[c0+cy*stride:][:cw]
			in1 := plane[c0+ny*stride:][:cw]
			for i := range sums {
				sums[i] = int(in0[i])*3 + int(in1[i])
			}
			fancyH2V2(tmp, sums)
			copy(out[y*w:(y+1)*w], tmp)
		}
		return out
	case image.YCbCrSubsampleRatio440: // h1v2
		ch := (h + 1) / 2
		for y := 0; y < h; y++ {
			cy := y / 2
			ny, bias := cy-1, 1
			if y%2 == 1 {
				ny, bias = cy+1, 2
			}
			ny = min(max(ny, 0), ch-1)
			in0 := plane[c0+cy*stride:][:w]
			in1 := plane[c0+ny*stride:][:w]
			o := out[y*w : (y+1)*w]
			for i := range o {
				o[i] = uint8((int(in0[i])*3 + int(in1[i]) + bias) >> 2)
			}
		}
		return out
	}
	for y := 0; y < h; y++ {
		o := out[y*w : (y+1)*w]
		for x := range o {
			o[x] = plane[m.COffset(b.Min.X+x, b.Min.Y+y)]
		}
	}
	return out
}

// fancyH2 is libjpeg-turbo's h2v1_fancy_upsample for one row: each output
// sample is ¾ of the nearer input plus ¼ of the farther, with alternating
// rounding bias.
func fancyH2(out, in []uint8) {
	n := len(in)
	if n == 1 {
		out[0], out[1] = in[0], in[0]
		return
	}
	out[0] = in[0]
	out[1] = uint8((int(in[0])*3 + int(in[1]) + 2) >> 2)
	for i := 1; i < n-1; i++ {
		v := int(in[i]) * 3
		out[2*i] = uint8((v + int(in[i-1]) + 1) >> 2)
		out[2*i+1] = uint8((v + int(in[i+1]) + 2) >> 2)
	}
	v := int(in[n-1])
	out[2*n-2] = uint8((v*3 + int(in[n-2]) + 1) >> 2)
	out[2*n-1] = in[n-1]
}

// fancyH2V2 is the horizontal half of libjpeg-turbo's h2v2_fancy_upsample,
// applied to column sums 3·near + far of two chroma rows.
func fancyH2V2(out []uint8, s []int) {
	n := len(s)
	if n == 1 {
		out[0] = uint8((s[0]*4 + 8) >> 4)
		out[1] = uint8((s[0]*4 + 7) >> 4)
		return
	}
	out[0] = uint8((s[0]*4 + 8) >> 4)
	out[1] = uint8((s[0]*3 + s[1] + 7) >> 4)
	for i := 1; i < n-1; i++ {
		out[2*i] = uint8((s[i]*3 + s[i-1] + 8) >> 4)
		out[2*i+1] = uint8((s[i]*3 + s[i+1] + 7) >> 4)
	}
	out[2*n-2] = uint8((s[n-1]*3 + s[n-2] + 8) >> 4)
	out[2*n-1] = uint8((s[n-1]*4 + 7) >> 4)
}
