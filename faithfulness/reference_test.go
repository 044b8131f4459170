package faithfulness

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// f64File is a safetensors file of float64 tensors, as tools/roadsanity/make_references.py writes
// them (core/weights would round them to float32).
type f64File struct {
	Tensors  map[string][]float64
	Shapes   map[string][]int
	Metadata map[string]string
}

func readF64(t *testing.T, name string) f64File {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "roadsanity", name))
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	data := raw[8+n:]
	f := f64File{Tensors: map[string][]float64{}, Shapes: map[string][]int{}}
	for k, v := range header {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &f.Metadata); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var ti struct {
			DType   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(v, &ti); err != nil || ti.DType != "F64" {
			t.Fatalf("%s: tensor %s: %v %s", name, k, err, ti.DType)
		}
		vals := make([]float64, (ti.Offsets[1]-ti.Offsets[0])/8)
		for i := range vals {
			vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[ti.Offsets[0]+8*i:]))
		}
		f.Tensors[k], f.Shapes[k] = vals, ti.Shape
	}
	return f
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
