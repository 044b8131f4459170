package preprocess

import (
	"fmt"
	"math"
)

// This file ports the 8-bit path of Pillow's src/libImaging/Resample.c. Every
// step keeps Pillow's arithmetic: coefficients in float64, normalised to sum 1,
// converted to fixed point with precisionBits fractional bits (rounding half away
// from zero), int32 accumulation starting at one half, an arithmetic shift and a
// clamp to [0, 255] after each pass, the horizontal pass first. Explicit
// float64() conversions stop the compiler from fusing multiply-adds, which
// Pillow's x86-64 build does not do either.

// precisionBits is Pillow's PRECISION_BITS: 32 bits minus 8 for the result and
// 2 for overshoot of filters with negative lobes.
const precisionBits = 32 - 8 - 2

type filterKind struct {
	fn      func(float64) float64
	support float64
}

func boxFilter(x float64) float64 {
	if x > -0.5 && x <= 0.5 {
		return 1
	}
	return 0
}

func bilinearFilter(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func hammingFilter(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x == 0 {
		return 1
	}
	if x >= 1 {
		return 0
	}
	x = float64(x * math.Pi)
	// Pillow writes the constants as C floats (0.54f, 0.46f).
	return float64(math.Sin(x)/x) * float64(float64(float32(0.54))+float64(float64(float32(0.46))*math.Cos(x)))
}

// bicubicFilter is the Keys cubic with a = -0.5, as Pillow evaluates it.
func bicubicFilter(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		t := float64((a+2)*x) - (a + 3)
		t = float64(t * x)
		t = float64(t * x)
		return t + 1
	}
	if x < 2 {
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return float64(t * a)
	}
	return 0
}

func sincFilter(x float64) float64 {
	if x == 0 {
		return 1
	}
	x = float64(x * math.Pi)
	return math.Sin(x) / x
}

func lanczosFilter(x float64) float64 {
	if -3 <= x && x < 3 {
		return float64(sincFilter(x) * sincFilter(x/3))
	}
	return 0
}

func (r Resample) filter() (filterKind, error) {
	switch r {
	case Box:
		return filterKind{boxFilter, 0.5}, nil
	case Bilinear:
		return filterKind{bilinearFilter, 1}, nil
	case Hamming:
		return filterKind{hammingFilter, 1}, nil
	case Bicubic:
		return filterKind{bicubicFilter, 2}, nil
	case Lanczos:
		return filterKind{lanczosFilter, 3}, nil
	case Nearest:
		return filterKind{}, fmt.Errorf("resample %d (nearest) is not supported; use 1-5", int(r))
	}
	return filterKind{}, fmt.Errorf("unknown resample filter %d (PIL codes: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)", int(r))
}

// coeffs holds fixed-point filter weights for one axis: output i reads
// n[i] input samples starting at first[i], with weights k[i*ksize : i*ksize+n[i]].
type coeffs struct {
	ksize int
	first []int
	n     []int
	k     []int32
	tmp   []float64
}

// compute is Pillow's precompute_coeffs followed by normalize_coeffs_8bpc for
// the box [in0, in1) of an axis of inSize samples resampled to outSize.
func (c *coeffs) compute(f filterKind, inSize int, in0, in1 float32, outSize int) {
	scale := float64(in1-in0) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := f.support * filterscale
	c.ksize = int(math.Ceil(support))*2 + 1
	c.first = growInts(c.first, outSize)
	c.n = growInts(c.n, outSize)
	c.k = growInt32s(c.k, outSize*c.ksize)
	c.tmp = growFloats(c.tmp, c.ksize)
	ss := 1 / filterscale
	for xx := 0; xx < outSize; xx++ {
		center := float64(in0) + float64((float64(xx)+0.5)*scale)
		// C's (int) cast truncates toward zero, as Go's conversion does.
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		w := c.tmp[:c.ksize]
		for x := 0; x < xmax; x++ {
			v := f.fn(float64((float64(x+xmin) - center + 0.5) * ss))
			w[x] = v
			ww += v
		}
		k := c.k[xx*c.ksize : (xx+1)*c.ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + float64(v*(1<<precisionBits)))
			} else {
				k[x] = int32(0.5 + float64(v*(1<<precisionBits)))
			}
		}
		for x := max(xmax, 0); x < c.ksize; x++ {
			k[x] = 0
		}
		c.first[xx] = xmin
		c.n[xx] = max(xmax, 0)
	}
}

// clip8 is Pillow's clip8: drop the fraction, clamp to a byte.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// Resampler resizes packed RGB images with Pillow's arithmetic. It keeps its
// coefficient tables and intermediate buffers between calls, so resizing many
// images allocates only when a larger buffer is needed. The zero value is ready
// to use; a Resampler is not safe for concurrent use.
type Resampler struct {
	horiz, vert coeffs
	temp        []uint8
	acc         []int32
}

// Resize resamples src into dst (whose W and H give the target size and whose
// Pix must hold W*H*3 bytes) with the given filter, exactly as Pillow's
// Image.resize((dst.W, dst.H), filter) does for an RGB image.
func (r *Resampler) Resize(dst, src *RGB, filter Resample) error {
	return r.resize(dst, view{pix: src.Pix, w: src.W, h: src.H, stride: src.W * 3}, filter)
}

// view is a window of a packed RGB buffer: w×h pixels, rows stride bytes apart.
type view struct {
	pix          []uint8
	w, h, stride int
}

func (r *Resampler) resize(dst *RGB, src view, filter Resample) error {
	f, err := filter.filter()
	if err != nil {
		return err
	}
	if dst.W <= 0 || dst.H <= 0 || src.w <= 0 || src.h <= 0 {
		return fmt.Errorf("resize %dx%d to %dx%d: empty image", src.w, src.h, dst.W, dst.H)
	}
	if len(dst.Pix) < dst.W*dst.H*3 {
		panic(fmt.Sprintf("preprocess: destination buffer holds %d bytes, need %d", len(dst.Pix), dst.W*dst.H*3))
	}
	// Pillow's ImagingResampleInner with box (0, 0, w, h).
	needH := dst.W != src.w
	needV := dst.H != src.h
	if !needH && !needV {
		for y := 0; y < src.h; y++ {
			copy(dst.Pix[y*dst.W*3:(y+1)*dst.W*3], src.pix[y*src.stride:y*src.stride+src.w*3])
		}
		return nil
	}
	r.vert.compute(f, src.h, 0, float32(src.h), dst.H)
	yFirst := r.vert.first[0]
	yLast := r.vert.first[dst.H-1] + r.vert.n[dst.H-1]

	in := src
	if needH {
		r.horiz.compute(f, src.w, 0, float32(src.w), dst.W)
		rows := yLast - yFirst
		out := view{w: dst.W, h: rows, stride: dst.W * 3}
		if !needV {
			out.pix = dst.Pix[:dst.W*dst.H*3]
		} else {
			r.temp = growBytes(r.temp, rows*dst.W*3)
			out.pix = r.temp
		}
		horizontalPass(out, src, yFirst, &r.horiz)
		in = out
		// The vertical pass reads the band the horizontal pass produced.
		for i := range r.vert.first[:dst.H] {
			r.vert.first[i] -= yFirst
		}
	}
	if needV {
		r.acc = growInt32s(r.acc, dst.W*3)
		verticalPass(dst, in, &r.vert, r.acc)
	}
	return nil
}

// horizontalPass resamples rows [offset, offset+out.h) of in along x.
func horizontalPass(out, in view, offset int, c *coeffs) {
	const half = 1 << (precisionBits - 1)
	for yy := 0; yy < out.h; yy++ {
		row := in.pix[(yy+offset)*in.stride : (yy+offset)*in.stride+in.w*3]
		o := out.pix[yy*out.stride : yy*out.stride+out.w*3]
		for xx := 0; xx < out.w; xx++ {
			n := c.n[xx]
			k := c.k[xx*c.ksize : xx*c.ksize+n]
			p := row[c.first[xx]*3 : (c.first[xx]+n)*3]
			s0, s1, s2 := int32(half), int32(half), int32(half)
			for x, kx := range k {
				q := p[x*3 : x*3+3]
				s0 += int32(q[0]) * kx
				s1 += int32(q[1]) * kx
				s2 += int32(q[2]) * kx
			}
			o[xx*3] = clip8(s0)
			o[xx*3+1] = clip8(s1)
			o[xx*3+2] = clip8(s2)
		}
	}
}

// verticalPass resamples in along y into dst. It accumulates whole rows in acc
// (integer sums are order-independent, so this equals Pillow's per-pixel loop).
func verticalPass(dst *RGB, in view, c *coeffs, acc []int32) {
	const half = 1 << (precisionBits - 1)
	width := dst.W * 3
	acc = acc[:width]
	for yy := 0; yy < dst.H; yy++ {
		for i := range acc {
			acc[i] = half
		}
		n := c.n[yy]
		k := c.k[yy*c.ksize : yy*c.ksize+n]
		for y, ky := range k {
			row := in.pix[(c.first[yy]+y)*in.stride : (c.first[yy]+y)*in.stride+width]
			for i, v := range row {
				acc[i] += int32(v) * ky
			}
		}
		o := dst.Pix[yy*width : (yy+1)*width]
		for i, v := range acc {
			o[i] = clip8(v)
		}
	}
}

func growInts(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}

func growInt32s(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

func growFloats(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func growBytes(s []uint8, n int) []uint8 {
	if cap(s) < n {
		return make([]uint8, n)
	}
	return s[:n]
}
