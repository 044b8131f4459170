package preprocess

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"path/filepath"
	"testing"
)

// photo500x375 returns coffee.png cut to 500×375 as PNG and as JPEG (quality
// 90, 4:2:0), the size of a typical dataset photo.
func photo500x375(b *testing.B) (pngData, jpegData []byte) {
	img, err := DecodeFile(filepath.Join("..", "..", "testdata", "preprocess", "coffee.png"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	m := image.NewRGBA(image.Rect(0, 0, 500, 375))
	for y := 0; y < 375; y++ {
		for x := 0; x < 500; x++ {
			r, g, bl := img.At(x, y)
			i := m.PixOffset(x, y)
			m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = r, g, bl, 255
		}
	}
	var p, j bytes.Buffer
	if err := png.Encode(&p, m); err != nil {
		b.Fatal(err)
	}
	if err := jpeg.Encode(&j, m, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return p.Bytes(), j.Bytes()
}

// BenchmarkProcess500x375 is crop + bicubic resize to 224² + normalise with
// reused buffers: the per-image cost on top of decoding.
func BenchmarkProcess500x375(b *testing.B) {
	_, j := photo500x375(b)
	img, err := Decode(bytes.NewReader(j), "bench.jpg", Options{})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := NewProcessor(DefaultConfig())
	var res Result
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ProcessInto(&res, img); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJPEG500x375(b *testing.B) {
	_, j := photo500x375(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(j), "bench.jpg", Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePNG500x375(b *testing.B) {
	p, _ := photo500x375(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(p), "bench.png", Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJPEGToPixels500x375 is the whole per-image path of an embedding
// run: decode a JPEG, crop, resize, normalise.
func BenchmarkJPEGToPixels500x375(b *testing.B) {
	_, j := photo500x375(b)
	p, _ := NewProcessor(DefaultConfig())
	var res Result
	b.ReportAllocs()
	for b.Loop() {
		img, err := Decode(bytes.NewReader(j), "bench.jpg", Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.ProcessInto(&res, img); err != nil {
			b.Fatal(err)
		}
	}
}
