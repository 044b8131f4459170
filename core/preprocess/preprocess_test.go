package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every Pillow filter, downscaling and upscaling to non-square sizes, against
// Image.resize in Pillow 9.4 (testdata/preprocess/formats/generate.py): exact.
func TestResampleFiltersMatchPillow(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "preprocess", "formats")
	src, err := DecodeFile(filepath.Join(dir, "resample_src.png"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	refs := readSafetensors(t, filepath.Join(dir, "resample_src.png.rgb.safetensors"))
	if len(refs) != 15 {
		t.Fatalf("expected 15 reference resizes, found %d", len(refs))
	}
	var rs Resampler
	for name, ref := range refs {
		var f Resample
		var w, h int
		if _, err := fmt.Sscanf(name, "f%d_%dx%d", &f, &w, &h); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := ref.rgb(t)
		dst := NewRGB(w, h)
		if err := rs.Resize(dst, src, f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s := compareBytes(dst.Pix, want.Pix); s.differ != 0 {
			t.Errorf("%s (%v): %d/%d bytes differ from Pillow, max |Δ| %d", name, f, s.differ, s.n, s.maxAbs)
		}
	}
}

// HF's center_crop pads with zeros when the crop is larger than the image
// (size > crop_size). Worked by hand from transformers' center_crop: a 10×10
// image with size 300, crop_size 256 gives int(300/256·10) = 11, top = left =
// (10−11)//2 = −1, so the first row and column are zero padding.
func TestCenterCropPads(t *testing.T) {
	img := NewRGB(10, 10)
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	cfg := DefaultConfig()
	cfg.Size, cfg.CropSize = Size{300, 300}, Size{256, 256}
	cfg.DoResize, cfg.DoRescale, cfg.DoNormalize = false, false, false
	res, err := cfg.Process(img)
	if err != nil {
		t.Fatal(err)
	}
	if res.CropBox != [4]int{-1, -1, 11, 11} {
		t.Fatalf("crop box %v", res.CropBox)
	}
	for y := 0; y < 11; y++ {
		for x := 0; x < 11; x++ {
			want := uint8(200)
			if x == 0 || y == 0 {
				want = 0
			}
			if r, _, _ := res.Resized.At(x, y); r != want {
				t.Fatalf("pixel (%d,%d) = %d, want %d", x, y, r, want)
			}
			if got := res.Pixels[y*11+x]; got != float32(want) {
				t.Fatalf("pixel value (%d,%d) = %v, want %d (no rescale, no normalise)", x, y, got, want)
			}
		}
	}
}

func TestLoadConfigForms(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The hub file for deepmind/vision-perceiver-fourier spells sizes as integers.
	c, err := LoadConfig(write(`{"crop_size":256,"do_center_crop":true,"do_normalize":true,"do_resize":true,
		"feature_extractor_type":"PerceiverFeatureExtractor","image_mean":[0.485,0.456,0.406],
		"image_std":[0.229,0.224,0.225],"resample":3,"size":224}`))
	if err != nil {
		t.Fatal(err)
	}
	// Absent do_rescale / rescale_factor keep HF's defaults.
	want := DefaultConfig()
	want.FeatureExtractorType = "PerceiverFeatureExtractor"
	if c != want {
		t.Fatalf("hub config read as %+v", c)
	}
	c, err = LoadConfig(write(`{"size":[12,16],"image_mean":0.5,"image_std":0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != (Size{12, 16}) || c.ImageMean != (Channels{0.5, 0.5, 0.5}) {
		t.Fatalf("list size / scalar mean read as %+v %+v", c.Size, c.ImageMean)
	}
	for _, bad := range []string{
		`{"size":{"shortest_edge":224}}`,
		`{"resample":0}`,
		`{"resample":9}`,
		`{"image_std":[0.2,0,0.2]}`,
		`{"image_mean":[0.5,0.5]}`,
		`{"size":0}`,
		`not json`,
	} {
		_, err := LoadConfig(write(bad))
		if err == nil {
			t.Errorf("%s: accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "c.json") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q should be one line naming the file", bad, err)
		}
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

// pngWithSize returns a syntactically valid PNG header (signature and IHDR
// with a correct CRC) declaring w×h 8-bit RGB, followed by nothing.
func pngWithSize(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 17)
	copy(ihdr, "IHDR")
	binary.BigEndian.PutUint32(ihdr[4:], w)
	binary.BigEndian.PutUint32(ihdr[8:], h)
	ihdr[12], ihdr[13] = 8, 2
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(ihdr))
	return b.Bytes()
}

func encodePNG(t *testing.T, m image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Bad inputs give one-line errors that name the file and classify the cause.
func TestDecodeErrors(t *testing.T) {
	dir := t.TempDir()
	good := encodePNG(t, image.NewRGBA(image.Rect(0, 0, 8, 8)))
	cases := []struct {
		name string
		data []byte
		opt  Options
		is   error
	}{
		{"not-an-image.png", []byte("hello, this is text\n"), Options{}, ErrInvalidImage},
		{"empty.jpg", nil, Options{}, ErrInvalidImage},
		{"truncated.png", good[:len(good)/2], Options{}, ErrInvalidImage},
		{"truncated-header.png", good[:20], Options{}, ErrInvalidImage},
		{"zero-size.png", pngWithSize(0, 5), Options{}, ErrInvalidImage},
		{"bomb.png", pngWithSize(100000, 100000), Options{}, ErrTooLarge},
		{"budget.png", good, Options{MaxPixels: 63}, ErrTooLarge},
	}
	cmykTIFF, err := os.ReadFile(filepath.Join("..", "..", "testdata", "preprocess", "formats", "cmyk.tiff"))
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name string
		data []byte
		opt  Options
		is   error
	}{"cmyk.tiff", cmykTIFF, Options{}, ErrUnsupported})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := DecodeFile(path, tc.opt)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q should be one line naming %s", msg, path)
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %q is not %v", msg, tc.is)
			}
			if _, err := DefaultConfig().LoadImage(path, tc.opt); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadImage: %v", err)
			}
		})
	}
	// The bomb is refused from its header: the limit can be lifted, and then
	// the (absent) pixel data is what fails.
	if _, err := Decode(bytes.NewReader(pngWithSize(100000, 100000)), "bomb", Options{MaxPixels: -1}); errors.Is(err, ErrTooLarge) || err == nil {
		t.Fatalf("MaxPixels -1 should disable the budget, got %v", err)
	}
	missing := filepath.Join(dir, "no-such-file.png")
	_, err = DecodeFile(missing, Options{})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
	unreadable := filepath.Join(dir, "a-directory.png")
	if err := os.Mkdir(unreadable, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFile(unreadable, Options{}); err == nil || !strings.Contains(err.Error(), unreadable) {
		t.Fatalf("directory: %v", err)
	}
}

// Images too small to crop give an error, not a panic or an empty tensor:
// int(224/256·1) = 0.
func TestTooSmallToCrop(t *testing.T) {
	img := NewRGB(1, 1)
	if _, err := DefaultConfig().Process(img); err == nil {
		t.Fatal("1×1 image accepted")
	}
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 7))); err != nil {
		t.Fatal(err)
	}
	// 1×7: int(224/256·1) = 0 as well.
	path := filepath.Join(t.TempDir(), "thin.png")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DefaultConfig().LoadImage(path, Options{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("thin image: %v", err)
	}
}

// A batch keeps going past bad files: each is reported on one line with its
// path and counted.
func TestSkips(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.png")
	img := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	if err := os.WriteFile(good, encodePNG(t, img), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.jpg")
	if err := os.WriteFile(bad, []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	skips := NewSkips(&log)
	cfg := DefaultConfig()
	ok := 0
	for _, p := range []string{good, bad, filepath.Join(dir, "gone.png"), good} {
		if _, err := cfg.LoadImage(p, Options{}); err != nil {
			skips.Add(p, err)
			continue
		}
		ok++
	}
	if ok != 2 || skips.Count() != 2 {
		t.Fatalf("ok %d, skipped %d", ok, skips.Count())
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], bad) || !strings.Contains(lines[1], "gone.png") {
		t.Fatalf("log:\n%s", log.String())
	}
	if l := skips.List(); l[0].Path != bad || !errors.Is(l[0].Err, ErrInvalidImage) {
		t.Fatalf("list %+v", l)
	}
}

// A palette PNG whose palette is shorter than the indices used must not panic.
func TestShortPalette(t *testing.T) {
	m := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.RGBA{10, 20, 30, 255}, color.NRGBA{1, 2, 3, 0}})
	m.Pix[0] = 1
	got := toRGB(m, sourceInfo{format: "png"})
	if r, g, b := got.At(0, 0); r != 1 || g != 2 || b != 3 {
		t.Fatalf("transparent palette entry = %d,%d,%d, want its stored 1,2,3", r, g, b)
	}
	if r, g, b := got.At(1, 0); r != 10 || g != 20 || b != 30 {
		t.Fatalf("entry 0 = %d,%d,%d", r, g, b)
	}
}
