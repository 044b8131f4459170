package preprocess

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeAndProcess feeds arbitrary bytes to the decode-and-preprocess entry
// point: it must return an error or a well-formed result, never panic. Seeds
// are the small format fixtures. Run with go test -fuzz=FuzzDecodeAndProcess.
func FuzzDecodeAndProcess(f *testing.F) {
	matches, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "preprocess", "formats", "*.*"))
	for _, m := range matches {
		if filepath.Ext(m) == ".safetensors" || filepath.Ext(m) == ".py" {
			continue
		}
		if data, err := os.ReadFile(m); err == nil && len(data) < 8<<10 {
			f.Add(data, true)
		}
	}
	f.Add(pngWithSize(3, 3), false)
	cfg := DefaultConfig()
	cfg.Size = Size{24, 20} // small output keeps each iteration fast
	f.Fuzz(func(t *testing.T, data []byte, exif bool) {
		// A small budget keeps hostile headers from allocating gigabytes.
		img, err := Decode(bytes.NewReader(data), "fuzz", Options{MaxPixels: 1 << 20, ApplyEXIFOrientation: exif})
		if err != nil {
			return
		}
		if img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
			t.Fatalf("malformed image %dx%d with %d bytes", img.W, img.H, len(img.Pix))
		}
		res, err := cfg.Process(img)
		if err != nil {
			return
		}
		if len(res.Pixels) != 3*24*20 {
			t.Fatalf("%d pixel values", len(res.Pixels))
		}
		for _, v := range res.Pixels {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("non-finite pixel value %v", v)
			}
		}
	})
}
