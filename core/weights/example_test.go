package weights_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/perceiverkit/perceiver/core/weights"
)

func ExampleOpen() {
	// A Hugging Face model folder: model.safetensors is preferred, else
	// pytorch_model.bin.
	f, err := weights.Open("../../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	latents := f.Tensors["perceiver.embeddings.latents"]
	fmt.Println(filepath.Base(f.Path), len(f.Tensors), latents.DType, latents.Shape)
	// Output: model.safetensors 72 F32 [8 32]
}

func ExampleOpenPyTorch() {
	f, err := weights.OpenPyTorch("../../testdata/tiny/pytorch_model.bin")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	names := f.Names()
	w := f.Tensors[names[0]]
	fmt.Println(len(names), names[0], w.Shape)
	// Output: 72 perceiver.decoder.decoder.decoding_cross_attention.attention.output.dense.bias [32]
}

func ExampleOpenPyTorch_views() {
	// views.bin (made by testdata/weights/gen.py) holds a 3×4 matrix and its
	// transpose, a view of the same storage; both load as contiguous arrays.
	f, err := weights.OpenPyTorch("../../testdata/weights/views.bin")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	m, mt := f.Tensors["matrix"], f.Tensors["matrix_t"]
	fmt.Println(m.Shape, mt.Shape, m.Data[1] == mt.Data[3], m.Data[4] == mt.Data[1])
	fmt.Println(f.Tensors["half"].DType, f.Tensors["half"].Data[:4])
	// Output:
	// [3 4] [4 3] true true
	// F16 [0 -0 1 -2.5]
}

func ExampleOpenSafetensors() {
	f, err := weights.OpenSafetensors("../../testdata/weights/dtypes.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	for _, name := range f.Names() {
		t := f.Tensors[name]
		fmt.Println(name, t.DType, t.Shape, t.Len())
	}
	fmt.Println(f.Metadata["format"])
	// Output:
	// bf16 BF16 [3 4] 12
	// f16 F16 [4 4] 16
	// f32 F32 [2 3] 6
	// f64 F64 [6] 6
	// scalar F32 [] 1
	// pt
}

func ExampleWriteSafetensors() {
	dir, err := os.MkdirTemp("", "weights-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "embeddings.safetensors")
	emb := &weights.Tensor{Name: "latents.6", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}
	if err := weights.WriteSafetensors(path, []*weights.Tensor{emb}, map[string]string{"layer": "6"}); err != nil {
		log.Fatal(err)
	}
	f, err := weights.OpenSafetensors(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	back := f.Tensors["latents.6"]
	fmt.Println(back.DType, back.Shape, back.Data, f.Metadata)
	// Output: F32 [2 3] [1 2 3 4 5 6] map[layer:6]
}

func ExampleFile_Get() {
	f, err := weights.Open("../../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Get("perceiver.embeddings.latents", 8, 32); err == nil {
		fmt.Println("latents: ok")
	}
	_, err = f.Get("perceiver.embeddings.latents", 8, 64)
	fmt.Println(err)
	// Output:
	// latents: ok
	// ../../testdata/tiny/model.safetensors: tensor perceiver.embeddings.latents: unexpected shape: shape [8 32], want [8 64]
}

func ExampleTensor_Len() {
	scalar := weights.Tensor{Name: "temperature", Shape: []int{}, Data: []float32{0.5}}
	matrix := weights.Tensor{Name: "w", Shape: []int{2, 3}, Data: make([]float32, 6)}
	fmt.Println(scalar.Len(), matrix.Len())
	// Output: 1 6
}

func ExampleFile_Names() {
	f, err := weights.OpenPyTorch("../../testdata/weights/nested.bin")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	fmt.Println(f.Names())
	// Output: [model.w]
}

func ExampleHalfToFloat32() {
	fmt.Println(weights.HalfToFloat32(0x3c00), weights.HalfToFloat32(0x0001), weights.HalfToFloat32(0x7bff), weights.HalfToFloat32(0xfc00))
	// Output: 1 5.9604645e-08 65504 -Inf
}

func ExampleBFloat16ToFloat32() {
	fmt.Println(weights.BFloat16ToFloat32(0x3f80), weights.BFloat16ToFloat32(0xc040))
	// Output: 1 -3
}

func ExampleError() {
	_, err := weights.OpenPyTorch("../../testdata/weights/malicious.bin")
	fmt.Println(err)
	// Output: ../../testdata/weights/malicious.bin: pickle calls unlisted global os.system
}

// Names read from a file are quoted only when they would break an error message's line.
func ExamplePrintableName() {
	fmt.Println(weights.PrintableName("perceiver.embeddings.latents"))
	fmt.Println(weights.PrintableName("evil\nname"))
	// Output:
	// perceiver.embeddings.latents
	// "evil\nname"
}
