package preprocess_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"

	"github.com/perceiverkit/perceiver/core/preprocess"
)

func ExampleConfig_LoadImage() {
	cfg := preprocess.DefaultConfig() // deepmind/vision-perceiver-fourier settings
	res, err := cfg.LoadImage("../../testdata/preprocess/chelsea.png", preprocess.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("crop [top left h w]:", res.CropBox)
	fmt.Println("pixels [3, H, W]:", len(res.Pixels)/(res.H*res.W), res.H, res.W)
	fmt.Printf("first red value: %.4f\n", res.Pixels[0]) // HF: 0.7590547
	// Output:
	// crop [top left h w]: [19 94 262 262]
	// pixels [3, H, W]: 3 224 224
	// first red value: 0.7591
}

func ExampleLoadConfig() {
	cfg, err := preprocess.LoadConfig("../../testdata/preprocess/tiny/preprocessor_config.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("size %+v, crop %+v, %v\n", cfg.Size, cfg.CropSize, cfg.Resample)
	// Output:
	// size {Height:12 Width:16}, crop {Height:256 Width:256}, bicubic
}

func ExampleConfig_Validate() {
	cfg := preprocess.DefaultConfig()
	cfg.Resample = preprocess.Nearest
	fmt.Println(cfg.Validate())
	// Output:
	// resample 0 (nearest) is not supported; use 1-5
}

func ExampleConfig_CropBox() {
	// HF's crop for a 300×451 image with size 224 and crop_size 256.
	fmt.Println(preprocess.DefaultConfig().CropBox(300, 451))
	// Output:
	// [19 94 262 262]
}

func ExampleSize_UnmarshalJSON() {
	var s preprocess.Size
	for _, in := range []string{`224`, `[12, 16]`, `{"height": 12, "width": 16}`} {
		if err := json.Unmarshal([]byte(in), &s); err != nil {
			fmt.Println(err)
		}
		fmt.Printf("%s → %+v\n", in, s)
	}
	// Output:
	// 224 → {Height:224 Width:224}
	// [12, 16] → {Height:12 Width:16}
	// {"height": 12, "width": 16} → {Height:12 Width:16}
}

func ExampleDecodeFile() {
	img, err := preprocess.DecodeFile("../../testdata/preprocess/camera.png", preprocess.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	r, g, b := img.At(0, 0)
	fmt.Println(img.W, img.H, r == g && g == b) // grayscale expanded to RGB
	// Output:
	// 512 512 true
}

func ExampleDecode() {
	_, err := preprocess.Decode(bytes.NewReader([]byte("not an image")), "notes.txt", preprocess.Options{})
	fmt.Println(err)
	fmt.Println(errors.Is(err, preprocess.ErrInvalidImage))
	// Output:
	// notes.txt: not a PNG, JPEG, GIF, BMP, TIFF or WebP image: invalid image
	// true
}

func ExampleOptions() {
	var buf bytes.Buffer
	_ = png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4000, 3000)))
	_, err := preprocess.Decode(&buf, "scan.png", preprocess.Options{MaxPixels: 10_000_000})
	fmt.Println(err)
	// Output:
	// scan.png: png image is 4000x3000 = 12000000 pixels, over the limit of 10000000: image exceeds the pixel budget
}

func ExampleConfig_Process() {
	img, err := preprocess.DecodeFile("../../testdata/preprocess/coffee.png", preprocess.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := preprocess.DefaultConfig()
	// Any target size: the crop is int(96/256·400) × int(128/256·400).
	cfg.Size = preprocess.Size{Height: 96, Width: 128}
	res, err := cfg.Process(img)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.CropBox, res.Resized.W, res.Resized.H)
	// Output:
	// [125 200 150 200] 128 96
}

func ExampleProcessor_ProcessInto() {
	p, err := preprocess.NewProcessor(preprocess.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	var res preprocess.Result // reused: no per-image allocation once grown
	for _, name := range []string{"chelsea.png", "coffee.png"} {
		img, err := preprocess.DecodeFile("../../testdata/preprocess/"+name, preprocess.Options{})
		if err != nil {
			fmt.Println(err)
			continue
		}
		if err := p.ProcessInto(&res, img); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(name, res.CropBox)
	}
	// Output:
	// chelsea.png [19 94 262 262]
	// coffee.png [25 125 350 350]
}

func ExampleResampler_Resize() {
	src := preprocess.NewRGB(4, 1)
	copy(src.Pix, []uint8{0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255})
	dst := preprocess.NewRGB(2, 1)
	var rs preprocess.Resampler
	if err := rs.Resize(dst, src, preprocess.Bicubic); err != nil {
		fmt.Println(err)
		return
	}
	// By hand: weights ∝ f(±0.25), f(0.75), f(1.25) of the a=−0.5 cubic give
	// 255·0.15625/1.890625 = 21.07 for the first output.
	fmt.Println(dst.Pix)
	// Output:
	// [21 21 21 234 234 234]
}

func ExampleSkips() {
	skips := preprocess.NewSkips(os.Stdout)
	for _, path := range []string{"../../testdata/preprocess/chelsea.png", "missing.png"} {
		if _, err := preprocess.DefaultConfig().LoadImage(path, preprocess.Options{}); err != nil {
			skips.Add(path, err)
		}
	}
	fmt.Println("skipped:", skips.Count())
	// Output:
	// skip: read image: open missing.png: no such file or directory
	// skipped: 1
}

func ExampleConfig_String() {
	fmt.Println(preprocess.DefaultConfig())
	// Output: centre crop 256×256, resize 224×224 bicubic, rescale ×0.00392157, normalise mean [0.485 0.456 0.406] std [0.229 0.224 0.225]
}
