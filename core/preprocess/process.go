package preprocess

import (
	"errors"
	"fmt"
)

// Result is the processor's output for one image.
type Result struct {
	// CropBox is [top, left, height, width] of the centre crop in source
	// pixels (top/left negative where HF zero-pads a crop larger than the image).
	// Without centre cropping it is the whole image.
	CropBox [4]int
	// Resized is the uint8 image after crop and resize (before rescaling).
	Resized *RGB
	// Pixels are the model inputs, float32 [3, H, W].
	Pixels []float32
	H, W   int
}

// Process runs crop, resize, rescale and normalise on a decoded image, as
// PerceiverImageProcessor.preprocess does. It allocates a fresh Result; use a
// Processor to reuse buffers across many images.
func (c Config) Process(img *RGB) (*Result, error) {
	p := Processor{Config: c}
	res := new(Result)
	if err := p.ProcessInto(res, img); err != nil {
		return nil, err
	}
	return res, nil
}

// LoadImage decodes the file at path and processes it.
func (c Config) LoadImage(path string, opt Options) (*Result, error) {
	img, err := DecodeFile(path, opt)
	if err != nil {
		return nil, err
	}
	res, err := c.Process(img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}

// maxCropPixels bounds the crop window, which can exceed the image when
// size > crop_size (HF pads); it keeps a bad config from allocating gigabytes.
const maxCropPixels = 1 << 28

// Processor runs a Config's chain and keeps its scratch buffers between
// images. Not safe for concurrent use: give each goroutine its own.
type Processor struct {
	Config
	rs   Resampler
	crop []uint8
}

// NewProcessor validates c and returns a Processor for it.
func NewProcessor(c Config) (*Processor, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Processor{Config: c}, nil
}

// CropBox returns HF's centre-crop box [top, left, height, width] for an image
// of h×w pixels: a window of int(size/crop_size·min(h, w)) per axis, placed at
// ((h−ch)//2, (w−cw)//2) with Python's floor division.
func (c Config) CropBox(h, w int) [4]int {
	if !c.DoCenterCrop {
		return [4]int{0, 0, h, w}
	}
	minDim := float64(min(h, w))
	// Same operation order as PerceiverImageProcessor.center_crop, in float64.
	ch := int(float64(c.Size.Height) / float64(c.CropSize.Height) * minDim)
	cw := int(float64(c.Size.Width) / float64(c.CropSize.Width) * minDim)
	return [4]int{floorDiv(h-ch, 2), floorDiv(w-cw, 2), ch, cw}
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// ProcessInto processes img into res, reusing res's buffers when large enough.
func (p *Processor) ProcessInto(res *Result, img *RGB) error {
	if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) < img.W*img.H*3 {
		return errors.New("empty or malformed RGB image")
	}
	if err := p.Validate(); err != nil {
		return err
	}
	box := p.CropBox(img.H, img.W)
	res.CropBox = box
	top, left, ch, cw := box[0], box[1], box[2], box[3]
	if ch <= 0 || cw <= 0 {
		return fmt.Errorf("image %dx%d is too small: centre crop would be %dx%d pixels", img.W, img.H, cw, ch)
	}
	if int64(ch)*int64(cw) > maxCropPixels {
		return fmt.Errorf("centre crop of %dx%d pixels is too large (size/crop_size ratio %d/%d)", cw, ch, p.Size.Width, p.CropSize.Width)
	}
	src := p.cropView(img, top, left, ch, cw)

	outH, outW := ch, cw
	if p.DoResize {
		outH, outW = p.Size.Height, p.Size.Width
	}
	if res.Resized == nil {
		res.Resized = &RGB{}
	}
	r := res.Resized
	r.W, r.H = outW, outH
	r.Pix = growBytes(r.Pix, outW*outH*3)
	if p.DoResize {
		if err := p.rs.resize(r, src, p.Resample); err != nil {
			return err
		}
	} else {
		for y := 0; y < ch; y++ {
			copy(r.Pix[y*cw*3:(y+1)*cw*3], src.pix[y*src.stride:y*src.stride+cw*3])
		}
	}
	res.H, res.W = outH, outW
	res.Pixels = growFloat32s(res.Pixels, 3*outH*outW)
	p.toPixels(res.Pixels, r)
	return nil
}

// cropView returns the centre crop as a window into img, or, when the crop
// reaches outside the image, a zero-padded copy (HF's center_crop pads).
func (p *Processor) cropView(img *RGB, top, left, ch, cw int) view {
	if top >= 0 && left >= 0 && top+ch <= img.H && left+cw <= img.W {
		off := (top*img.W + left) * 3
		return view{pix: img.Pix[off:], w: cw, h: ch, stride: img.W * 3}
	}
	p.crop = growBytes(p.crop, ch*cw*3)
	clear(p.crop)
	for y := 0; y < ch; y++ {
		sy := top + y
		if sy < 0 || sy >= img.H {
			continue
		}
		x0, x1 := max(left, 0), min(left+cw, img.W)
		if x0 >= x1 {
			continue
		}
		copy(p.crop[(y*cw+x0-left)*3:(y*cw+x1-left)*3], img.Pix[(sy*img.W+x0)*3:(sy*img.W+x1)*3])
	}
	return view{pix: p.crop, w: cw, h: ch, stride: cw * 3}
}

// toPixels rescales and normalises r into dst [3, H, W] with HF's dtypes:
// rescale multiplies in float64 and stores float32; normalise subtracts and
// divides in float32 with mean and std cast to float32.
func (p *Processor) toPixels(dst []float32, r *RGB) {
	n := r.W * r.H
	var table [3][256]float32
	for c := 0; c < 3; c++ {
		mean, std := float32(p.ImageMean[c]), float32(p.ImageStd[c])
		for v := 0; v < 256; v++ {
			x := float32(v)
			if p.DoRescale {
				x = float32(float64(v) * p.RescaleFactor)
			}
			if p.DoNormalize {
				x = (x - mean) / std
			}
			table[c][v] = x
		}
	}
	// Every step maps a byte to a float independently, so a lookup table per
	// channel is exact.
	r0, r1, r2 := dst[:n], dst[n:2*n], dst[2*n:3*n]
	t0, t1, t2 := &table[0], &table[1], &table[2]
	pix := r.Pix[:3*n]
	for i := 0; i < n; i++ {
		r0[i] = t0[pix[3*i]]
		r1[i] = t1[pix[3*i+1]]
		r2[i] = t2[pix[3*i+2]]
	}
}

func growFloat32s(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
