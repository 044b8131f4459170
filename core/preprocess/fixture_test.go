package preprocess

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Reference values in testdata/preprocess come from ../shared/fixtures, made
// with Pillow and transformers' PerceiverImageProcessor (hub settings:
// crop_size 256, size 224, bicubic, ImageNet mean/std):
//   decoded      PIL Image.open(...).convert("RGB"), uint8 [H, W, 3]
//   crop_box     [top, left, h, w], int64
//   resized      Pillow's bicubic 224×224 of the crop, uint8 [224, 224, 3]
//   pixel_values the processor's output, float32 [1, 3, 224, 224]
// tiny/expected_pixel_values.safetensors is pixel_values of the tiny model's
// fixture (size 12×16, crop_size 256) cut out of tiny/expected.safetensors.

type tensor struct {
	dtype string
	shape []int
	data  []byte
}

func readSafetensors(t testing.TB, path string) map[string]tensor {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	out := map[string]tensor{}
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &info); err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		base := 8 + int(n)
		out[name] = tensor{info.Dtype, info.Shape, b[base+info.Offsets[0] : base+info.Offsets[1]]}
	}
	return out
}

func (x tensor) float32s() []float32 {
	f := make([]float32, len(x.data)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(x.data[4*i:]))
	}
	return f
}

func (x tensor) int64s() []int64 {
	v := make([]int64, len(x.data)/8)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(x.data[8*i:]))
	}
	return v
}

func (x tensor) rgb(t testing.TB) *RGB {
	if x.dtype != "U8" || len(x.shape) != 3 || x.shape[2] != 3 {
		t.Fatalf("want U8 [H,W,3], got %s %v", x.dtype, x.shape)
	}
	return &RGB{W: x.shape[1], H: x.shape[0], Pix: x.data}
}

var fixtureImages = []string{"camera.png", "chelsea.png", "coffee.png", "rocket.jpg"}

func fixture(t testing.TB, img string) map[string]tensor {
	base := img[:len(img)-len(filepath.Ext(img))]
	return readSafetensors(t, filepath.Join("..", "..", "testdata", "preprocess", base+".prep.safetensors"))
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// From the reference decoded pixels, the crop box, the resized image and the
// pixel values must match Pillow/HF: resized exactly, pixels within 1e-6.
func TestFixturesFromDecodedPixels(t *testing.T) {
	cfg := DefaultConfig()
	for _, name := range fixtureImages {
		t.Run(name, func(t *testing.T) {
			ref := fixture(t, name)
			dec := ref["decoded"].rgb(t)
			res, err := cfg.Process(dec)
			if err != nil {
				t.Fatal(err)
			}
			box := ref["crop_box"].int64s()
			for i := range 4 {
				if int64(res.CropBox[i]) != box[i] {
					t.Fatalf("crop box %v, want %v", res.CropBox, box)
				}
			}
			want := ref["resized"].rgb(t)
			if res.Resized.W != want.W || res.Resized.H != want.H {
				t.Fatalf("resized %dx%d, want %dx%d", res.Resized.W, res.Resized.H, want.W, want.H)
			}
			diff := 0
			for i := range want.Pix {
				if res.Resized.Pix[i] != want.Pix[i] {
					diff++
				}
			}
			if diff != 0 {
				t.Fatalf("%d of %d resized bytes differ from Pillow's", diff, len(want.Pix))
			}
			pv := ref["pixel_values"]
			if len(pv.shape) != 4 || pv.shape[1] != 3 || pv.shape[2] != res.H || pv.shape[3] != res.W {
				t.Fatalf("reference pixel_values shape %v vs ours [1 3 %d %d]", pv.shape, res.H, res.W)
			}
			if d := maxAbsDiff(res.Pixels, pv.float32s()); d > 1e-6 {
				t.Fatalf("pixel_values max |Δ| = %g > 1e-6", d)
			}
		})
	}
}

// Decoding the PNGs must give exactly PIL's convert("RGB") pixels; the whole
// chain from the file must then give the reference pixel values.
func TestFixturesFromFile(t *testing.T) {
	cfg := DefaultConfig()
	for _, name := range fixtureImages[:3] {
		t.Run(name, func(t *testing.T) {
			ref := fixture(t, name)
			res, err := cfg.LoadImage(filepath.Join("..", "..", "testdata", "preprocess", name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			img, err := DecodeFile(filepath.Join("..", "..", "testdata", "preprocess", name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			dec := ref["decoded"].rgb(t)
			if img.W != dec.W || img.H != dec.H || string(img.Pix) != string(dec.Pix) {
				t.Fatalf("decoded pixels differ from PIL's")
			}
			if d := maxAbsDiff(res.Pixels, ref["pixel_values"].float32s()); d > 1e-6 {
				t.Fatalf("pixel_values max |Δ| = %g > 1e-6", d)
			}
		})
	}
}

type byteStats struct {
	n, differ, maxAbs int
	sumAbs            float64
}

func compareBytes(a, b []uint8) byteStats {
	s := byteStats{n: len(a)}
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		if d != 0 {
			s.differ++
		}
		s.maxAbs = max(s.maxAbs, d)
		s.sumAbs += float64(d)
	}
	return s
}

func (s byteStats) mean() float64 { return s.sumAbs / float64(s.n) }

// The JPEG goes through Go's IDCT instead of libjpeg-turbo's, so pixels may
// differ slightly. The test measures the difference (go test -v prints it) and
// requires the mean |Δ| after resizing to stay under half a uint8 step.
func TestFixtureJPEGDecoderDifference(t *testing.T) {
	ref := fixture(t, "rocket.jpg")
	path := filepath.Join("..", "..", "testdata", "preprocess", "rocket.jpg")
	img, err := DecodeFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dec := ref["decoded"].rgb(t)
	if img.W != dec.W || img.H != dec.H {
		t.Fatalf("decoded %dx%d, want %dx%d", img.W, img.H, dec.W, dec.H)
	}
	ds := compareBytes(img.Pix, dec.Pix)
	res, err := DefaultConfig().Process(img)
	if err != nil {
		t.Fatal(err)
	}
	rs := compareBytes(res.Resized.Pix, ref["resized"].data)
	pd := maxAbsDiff(res.Pixels, ref["pixel_values"].float32s())
	t.Logf("rocket.jpg decoded vs libjpeg-turbo: %d/%d bytes differ, max |Δ| %d, mean |Δ| %.4f",
		ds.differ, ds.n, ds.maxAbs, ds.mean())
	t.Logf("rocket.jpg resized vs Pillow: %d/%d bytes differ, max |Δ| %d, mean |Δ| %.4f; pixel_values max |Δ| %.3g",
		rs.differ, rs.n, rs.maxAbs, rs.mean(), pd)
	if rs.mean() >= 0.5 {
		t.Fatalf("mean |Δ| after resize %.4f ≥ 0.5", rs.mean())
	}
}

// The tiny fixture uses a non-square target (12×16) with crop_size 256, which
// exercises HF's per-axis crop size; its pixel_values came from the same HF
// processor run that produced the tiny model's expected outputs.
func TestTinyNonSquare(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "preprocess", "tiny")
	cfg, err := LoadConfig(filepath.Join(dir, "preprocessor_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Size != (Size{12, 16}) || cfg.CropSize != (Size{256, 256}) {
		t.Fatalf("config sizes %+v %+v", cfg.Size, cfg.CropSize)
	}
	// The tiny fixture's chelsea.png is the same file as the preprocess one.
	res, err := cfg.LoadImage(filepath.Join(dir, "..", "chelsea.png"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// chelsea is 451×300: int(12/256·300)=14, int(16/256·300)=18.
	if want := [4]int{143, 216, 14, 18}; res.CropBox != want {
		t.Fatalf("crop box %v, want %v", res.CropBox, want)
	}
	ref := readSafetensors(t, filepath.Join(dir, "expected_pixel_values.safetensors"))["pixel_values"]
	if res.H != 12 || res.W != 16 || len(ref.float32s()) != len(res.Pixels) {
		t.Fatalf("got %dx%d (%d values), reference shape %v", res.H, res.W, len(res.Pixels), ref.shape)
	}
	if d := maxAbsDiff(res.Pixels, ref.float32s()); d > 1e-6 {
		t.Fatalf("pixel_values max |Δ| = %g > 1e-6", d)
	}
}
