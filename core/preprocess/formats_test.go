package preprocess

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/preprocess/formats holds small images written by Pillow 9.4
// (generate.py) or by Go (gen16, for 16-bit colour PNGs), each with
// <name>.rgb.safetensors: Pillow's Image.open(name).convert("RGB") with
// libjpeg-turbo 2.1.5 and libwebp. Lossless formats must match exactly; JPEG
// goes through Go's IDCT, so it is measured (go test -v) and held to a bound
// that catches a wrong colour conversion or upsampling (Go's own conversion
// gives a mean |Δ| of 0.28 on rocket.jpg; nearest-neighbour chroma on these
// noisy images, several steps).
func TestFormatsMatchPillow(t *testing.T) {
	cases := []struct {
		name    string
		exact   bool
		maxMean float64 // mean |Δ| bound for inexact decoders
	}{
		{"gray.png", true, 0},
		{"gray16.png", true, 0},       // I;16 → RGB clamps at 255
		{"gray16_small.png", true, 0}, // values 0..600: clamping visible
		{"rgb16.png", true, 0},        // high byte
		{"rgba16.png", true, 0},       // high byte, alpha dropped
		{"rgba.png", true, 0},         // alpha dropped, not premultiplied
		{"la.png", true, 0},
		{"palette_trns.png", true, 0}, // palette colours even where transparent
		{"palette.gif", true, 0},
		{"trns.gif", true, 0}, // transparent entry keeps its stored colour
		{"rgb.bmp", true, 0},
		{"palette.bmp", true, 0},
		{"rgb.tiff", true, 0},
		{"lossless.webp", true, 0},
		{"cmyk.jpg", false, 0.5}, // Adobe-inverted CMYK, then cmyk2rgb
		{"gray.jpg", false, 0.5},
		{"q90_444.jpg", false, 0.5},
		{"q90_422.jpg", false, 0.5}, // libjpeg h2v1 fancy upsampling
		{"q90_420.jpg", false, 0.5}, // libjpeg h2v2 fancy upsampling
		{"lossy.webp", true, 0},     // libwebp's fancy upsampling and BT.601 tables
		{"orient6.jpg", false, 0.5}, // orientation ignored by default
		// Pillow applies a TIFF's Orientation tag when it loads the file (generate_tiff.py).
		{"orient2.tiff", true, 0},
		{"orient6.tiff", true, 0},
		{"orient8.tiff", true, 0},
		// 1-bit CCITT fax compression, both PhotometricInterpretation values.
		{"g3_black0.tiff", true, 0},
		{"g4_black0.tiff", true, 0},
		{"g3_white0.tiff", true, 0},
		{"g4_white0.tiff", true, 0},
	}
	dir := filepath.Join("..", "..", "testdata", "preprocess", "formats")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := readSafetensors(t, filepath.Join(dir, tc.name+".rgb.safetensors"))["rgb"].rgb(t)
			got, err := DecodeFile(filepath.Join(dir, tc.name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.W != want.W || got.H != want.H {
				t.Fatalf("size %dx%d, want %dx%d", got.W, got.H, want.W, want.H)
			}
			s := compareBytes(got.Pix, want.Pix)
			if tc.exact {
				if s.differ != 0 {
					t.Fatalf("%d/%d bytes differ from Pillow (max |Δ| %d)", s.differ, s.n, s.maxAbs)
				}
				return
			}
			t.Logf("%s vs Pillow: %d/%d bytes differ, max |Δ| %d, mean |Δ| %.4f", tc.name, s.differ, s.n, s.maxAbs, s.mean())
			if s.mean() >= tc.maxMean {
				t.Fatalf("mean |Δ| %.4f ≥ %.2f", s.mean(), tc.maxMean)
			}
		})
	}
}

// With ApplyEXIFOrientation the image must equal Pillow's
// ImageOps.exif_transpose (orientation 6: rotate 90° clockwise), up to the
// JPEG decoder difference measured above; without it, the stored layout.
func TestEXIFOrientation(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "preprocess", "formats")
	ref := readSafetensors(t, filepath.Join(dir, "orient6.jpg.rgb.safetensors"))
	plain, tr := ref["rgb"].rgb(t), ref["transposed"].rgb(t)
	got, err := DecodeFile(filepath.Join(dir, "orient6.jpg"), Options{ApplyEXIFOrientation: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.W != tr.W || got.H != tr.H || got.W != plain.H {
		t.Fatalf("oriented size %dx%d, want %dx%d", got.W, got.H, tr.W, tr.H)
	}
	if s := compareBytes(got.Pix, tr.Pix); s.mean() >= 0.5 || s.maxAbs > 8 {
		t.Fatalf("oriented image differs from exif_transpose: mean |Δ| %.3f, max %d", s.mean(), s.maxAbs)
	}
	data, err := os.ReadFile(filepath.Join(dir, "orient6.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if o := exifOrientation(data, "jpeg"); o != 6 {
		t.Fatalf("orientation %d, want 6", o)
	}
}

// Every orientation maps the stored image as the EXIF specification says:
// the stored top-left pixel ends up at the listed corner of the displayed image.
func TestOrientCorners(t *testing.T) {
	src := NewRGB(3, 2)
	for i := range src.Pix {
		src.Pix[i] = uint8(i)
	}
	// Stored pixel (0,0) has value 0; where must it land (x, y) in the output?
	corner := map[int][2]int{1: {0, 0}, 2: {2, 0}, 3: {2, 1}, 4: {0, 1}, 5: {0, 0}, 6: {1, 0}, 7: {1, 2}, 8: {0, 2}}
	for o := 1; o <= 8; o++ {
		dst := src
		if o > 1 {
			dst = orient(src, o)
		}
		c := corner[o]
		if r, _, _ := dst.At(c[0], c[1]); r != 0 {
			t.Errorf("orientation %d: pixel at %v is %d, want the stored top-left", o, c, r)
		}
	}
}

// A TIFF's orientation is applied once whether or not ApplyEXIFOrientation asks for it: Pillow
// applies it on load (issue 19 item 11). (Pillow 9.4's exif_transpose then applies it a second
// time, which is a Pillow bug we do not copy.)
func TestTIFFOrientationAppliedOnce(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "preprocess", "formats")
	for _, name := range []string{"orient2.tiff", "orient6.tiff", "orient8.tiff"} {
		want := readSafetensors(t, filepath.Join(dir, name+".rgb.safetensors"))["rgb"].rgb(t)
		got, err := DecodeFile(filepath.Join(dir, name), Options{ApplyEXIFOrientation: true})
		if err != nil {
			t.Fatal(err)
		}
		if got.W != want.W || got.H != want.H {
			t.Fatalf("%s: size %dx%d, want %dx%d", name, got.W, got.H, want.W, want.H)
		}
		if s := compareBytes(got.Pix, want.Pix); s.differ != 0 {
			t.Errorf("%s: %d/%d bytes differ from Pillow's loaded image", name, s.differ, s.n)
		}
	}
}

// Valid images in a variant the decoders do not handle are reported as unsupported, naming the
// variant and what is supported, not as corrupt (issue 19 item 20).
func TestUnsupportedImages(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "preprocess", "formats")
	for name, variant := range map[string]string{
		"cmyk.tiff":  "CMYK",
		"la.tiff":    "extra samples",
		"g3_2d.tiff": "2-D",
		"anim.webp":  "animated",
	} {
		path := filepath.Join(dir, name)
		_, err := DecodeFile(path, Options{})
		if !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrInvalidImage) {
			t.Errorf("%s: %v, want ErrUnsupported (and not ErrInvalidImage)", name, err)
			continue
		}
		msg := err.Error()
		for _, w := range []string{path, "unsupported", variant, "supported:"} {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q does not mention %q", name, msg, w)
			}
		}
		if strings.Contains(msg, "\n") || strings.Contains(msg, "corrupt") || strings.Contains(msg, "invalid") {
			t.Errorf("%s: error %q is not one line saying unsupported", name, msg)
		}
	}
}
