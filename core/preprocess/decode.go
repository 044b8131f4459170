package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"

	// Formats Decode understands, registered with package image.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// ErrInvalidImage marks data that is not a decodable image: unknown format,
// truncated or corrupt file, zero size. Test with errors.Is.
var ErrInvalidImage = errors.New("invalid image")

// ErrTooLarge marks an image whose header declares more pixels than
// Options.MaxPixels allows. Test with errors.Is.
var ErrTooLarge = errors.New("image exceeds the pixel budget")

// DefaultMaxPixels is the pixel budget used when Options.MaxPixels is 0. It is
// Pillow's MAX_IMAGE_PIXELS (the DecompressionBombWarning threshold,
// 1024·1024·1024/4/3 pixels, about 9459×9459): a decoded RGBA image of this size
// takes 358 MB.
const DefaultMaxPixels = 89478485

// Options controls decoding. The zero value is the Hugging Face-compatible
// behaviour with the default pixel budget.
type Options struct {
	// MaxPixels refuses images whose declared width×height exceeds it, before
	// decoding. 0 means DefaultMaxPixels; a negative value disables the check.
	MaxPixels int64
	// ApplyEXIFOrientation rotates/flips a JPEG, PNG or WebP image as its EXIF
	// Orientation tag says (Pillow's ImageOps.exif_transpose). Off by default,
	// because Hugging Face's processor does not do it and predictions would
	// differ. TIFFs are always oriented, once, as Pillow does on load.
	ApplyEXIFOrientation bool
}

func (o Options) maxPixels() int64 {
	if o.MaxPixels == 0 {
		return DefaultMaxPixels
	}
	return o.MaxPixels
}

// RGB is a packed 8-bit RGB image, row-major [H, W, 3].
type RGB struct {
	W, H int
	Pix  []uint8
}

// NewRGB allocates a black w×h image.
func NewRGB(w, h int) *RGB {
	return &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
}

// At returns the pixel at column x, row y.
func (m *RGB) At(x, y int) (r, g, b uint8) {
	i := (y*m.W + x) * 3
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// DecodeFile reads and decodes the image at path (see Decode).
func DecodeFile(path string, opt Options) (*RGB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The os error already names the path.
		return nil, fmt.Errorf("read image: %w", err)
	}
	return decodeBytes(data, path, opt)
}

// Decode reads an image in PNG, JPEG, GIF (first frame), BMP, TIFF or WebP
// format and converts it as Pillow's Image.convert("RGB") does. name is used in
// error messages only.
func Decode(r io.Reader, name string, opt Options) (*RGB, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: read image: %w", name, err)
	}
	return decodeBytes(data, name, opt)
}

func decodeBytes(data []byte, name string, opt Options) (*RGB, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: empty file: %w", name, ErrInvalidImage)
	}
	var (
		cfg    image.Config
		format string
		err    error
	)
	guard(&err, func() { cfg, format, err = image.DecodeConfig(bytes.NewReader(data)) })
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return nil, fmt.Errorf("%s: not a PNG, JPEG, GIF, BMP, TIFF or WebP image: %w", name, ErrInvalidImage)
		}
		if v := unsupportedVariant(err, format, data); v != "" {
			return nil, unsupportedError(name, format, v)
		}
		return nil, fmt.Errorf("%s: bad image header (%v): %w", name, err, ErrInvalidImage)
	}
	if v := unsupportedBefore(data, format); v != "" {
		return nil, unsupportedError(name, format, v)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%s: %s image has zero size %dx%d: %w", name, format, cfg.Width, cfg.Height, ErrInvalidImage)
	}
	if limit := opt.maxPixels(); limit > 0 && int64(cfg.Width)*int64(cfg.Height) > limit {
		return nil, fmt.Errorf("%s: %s image is %dx%d = %d pixels, over the limit of %d: %w",
			name, format, cfg.Width, cfg.Height, int64(cfg.Width)*int64(cfg.Height), limit, ErrTooLarge)
	}
	var decoded image.Image
	guard(&err, func() { decoded, _, err = image.Decode(bytes.NewReader(data)) })
	if err != nil {
		if v := unsupportedVariant(err, format, data); v != "" {
			return nil, unsupportedError(name, format, v)
		}
		return nil, fmt.Errorf("%s: decode %s (%v): %w", name, format, err, ErrInvalidImage)
	}
	b := decoded.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("%s: %s image has zero size: %w", name, format, ErrInvalidImage)
	}
	var img *RGB
	if pm, ok := decoded.(*image.Paletted); ok && format == "gif" {
		img = gifToPillow(pm, data, cfg.Width, cfg.Height)
	}
	if img == nil {
		img = toRGB(decoded, sourceInfo{format: format, png: pngHeader(data, format)})
	}
	if format == "tiff" && tiffFaxInverted(data) {
		for i, v := range img.Pix {
			img.Pix[i] = 255 - v
		}
	}
	// Pillow applies a TIFF's orientation when it loads the file, and so sees Hugging Face; for
	// the other formats only exif_transpose (ApplyEXIFOrientation) does.
	if opt.ApplyEXIFOrientation || format == "tiff" {
		if o := exifOrientation(data, format); o > 1 {
			img = orient(img, o)
		}
	}
	return img, nil
}

// guard runs a third-party decoder call, turning a panic into an error:
// decoders have panicked on hostile input before, and one bad file must not
// end a batch run. Our own code runs outside it, so fuzzing still sees its bugs.
func guard(err *error, f func()) {
	defer func() {
		if p := recover(); p != nil {
			*err = fmt.Errorf("decoder panicked: %v", p)
		}
	}()
	f()
}

// pngInfo is what the PNG header says that Go's decoded image type hides.
type pngInfo struct {
	ok                  bool
	bitDepth, colorType uint8
}

func pngHeader(data []byte, format string) pngInfo {
	// Signature (8) + IHDR length and type (8) + width, height (8) + depth, type.
	if format != "png" || len(data) < 26 || string(data[12:16]) != "IHDR" {
		return pngInfo{}
	}
	return pngInfo{ok: true, bitDepth: data[24], colorType: data[25]}
}

// ErrUnsupported marks a valid image in a variant the decoders do not handle
// (CMYK or grey+alpha TIFF, animated WebP, …). Test with errors.Is.
var ErrUnsupported = errors.New("unsupported image")
