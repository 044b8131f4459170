package weights

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// countingWriter tracks the offset inside the archive being written.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeTorchZip writes tensors (contiguous F32, one storage each) the way
// torch.save does: a protocol-2 pickle of an OrderedDict of
// _rebuild_tensor_v2 calls, and stored storages aligned to 64 bytes.
func writeTorchZip(path string, tensors []*Tensor) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	cw := &countingWriter{w: out}
	zw := zip.NewWriter(cw)
	add := func(name string, data []byte) error {
		if err := zw.Flush(); err != nil {
			return err
		}
		here := cw.n + 30 + int64(len(name)) + 4
		pad := int((64 - here%64) % 64)
		extra := binary.LittleEndian.AppendUint16(nil, 0x4246)
		extra = binary.LittleEndian.AppendUint16(extra, uint16(pad))
		extra = append(extra, make([]byte, pad)...)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Extra: extra})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	var p []byte
	str := func(s string) {
		p = append(p, 'X')
		p = binary.LittleEndian.AppendUint32(p, uint32(len(s)))
		p = append(p, s...)
	}
	integer := func(v int) {
		p = append(p, 'J')
		p = binary.LittleEndian.AppendUint32(p, uint32(v))
	}
	p = append(p, "\x80\x02ccollections\nOrderedDict\n)R("...)
	for i, t := range tensors {
		str(t.Name)
		p = append(p, "ctorch._utils\n_rebuild_tensor_v2\n(("...)
		str("storage")
		p = append(p, "ctorch\nFloatStorage\n"...)
		str(fmt.Sprint(i))
		str("cpu")
		integer(len(t.Data))
		p = append(p, "tQ"...)
		integer(0)
		p = append(p, '(')
		for _, d := range t.Shape {
			integer(d)
		}
		p = append(p, "t("...)
		stride := 1
		strides := make([]int, len(t.Shape))
		for j := len(t.Shape) - 1; j >= 0; j-- {
			strides[j] = stride
			stride *= t.Shape[j]
		}
		for _, s := range strides {
			integer(s)
		}
		p = append(p, "t\x89ccollections\nOrderedDict\n)RtR"...)
	}
	p = append(p, "u."...)
	if err := add("archive/data.pkl", p); err != nil {
		return err
	}
	if err := add("archive/byteorder", []byte("little")); err != nil {
		return err
	}
	for i, t := range tensors {
		if err := add(fmt.Sprintf("archive/data/%d", i), float32Bytes(t.Data)); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}

// syntheticTensors returns 25 tensors of 1024×1024 float32: 100 MiB.
func syntheticTensors() []*Tensor {
	var ts []*Tensor
	for i := range 25 {
		t := &Tensor{Name: fmt.Sprintf("layers.%d.weight", i), Shape: []int{1024, 1024}, Data: make([]float32, 1<<20)}
		for j := range t.Data {
			t.Data[j] = float32(math.Sin(float64(i*1000 + j)))
		}
		ts = append(ts, t)
	}
	return ts
}

func TestWriteTorchZipHelper(t *testing.T) {
	// The benchmark's writer must produce what OpenPyTorch reads back.
	path := filepath.Join(t.TempDir(), "pytorch_model.bin")
	in := []*Tensor{{Name: "a", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}}, {Name: "b", Shape: []int{3}, Data: []float32{5, 6, 7}}}
	if err := writeTorchZip(path, in); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, OpenPyTorch, path)
	for _, w := range in {
		g := f.Tensors[w.Name]
		if g == nil || !slices.Equal(g.Shape, w.Shape) || !slices.Equal(g.Data, w.Data) || !aliases(f, g.Data) {
			t.Errorf("%s read back as %+v", w.Name, g)
		}
	}
}

func benchmarkOpen(b *testing.B, write func(string, []*Tensor) error, open func(string) (*File, error), touch bool) {
	path := filepath.Join(b.TempDir(), "weights")
	ts := syntheticTensors()
	if err := write(path, ts); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(ts) * 4 << 20))
	var sum float32
	for b.Loop() {
		f, err := open(path)
		if err != nil {
			b.Fatal(err)
		}
		if touch { // read one value per 4 KiB page, as a forward pass would touch them all
			for _, t := range f.Tensors {
				for i := 0; i < len(t.Data); i += 1024 {
					sum += t.Data[i]
				}
			}
		}
		f.Close()
	}
	_ = sum
}

func writeST(path string, ts []*Tensor) error { return WriteSafetensors(path, ts, nil) }

func BenchmarkOpenSafetensors(b *testing.B) { benchmarkOpen(b, writeST, OpenSafetensors, false) }
func BenchmarkOpenSafetensorsReadAll(b *testing.B) {
	benchmarkOpen(b, writeST, OpenSafetensors, true)
}
func BenchmarkOpenPyTorch(b *testing.B)        { benchmarkOpen(b, writeTorchZip, OpenPyTorch, false) }
func BenchmarkOpenPyTorchReadAll(b *testing.B) { benchmarkOpen(b, writeTorchZip, OpenPyTorch, true) }

func BenchmarkWriteSafetensors(b *testing.B) {
	path := filepath.Join(b.TempDir(), "out.safetensors")
	ts := syntheticTensors()
	b.SetBytes(int64(len(ts) * 4 << 20))
	for b.Loop() {
		if err := WriteSafetensors(path, ts, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGatherTranspose measures the strided copy used for non-contiguous
// views: a 1024×1024 float32 transpose.
func BenchmarkGatherTranspose(b *testing.B) {
	raw := make([]byte, 4<<20)
	dst := make([]float32, 1<<20)
	b.SetBytes(4 << 20)
	for b.Loop() {
		gather(dst, raw, 0, []int64{1024, 1024}, []int64{1, 1024}, "F32", binary.LittleEndian)
	}
}

// BenchmarkDecodeF16 measures float16 → float32 conversion of 1M values.
func BenchmarkDecodeF16(b *testing.B) {
	raw := make([]byte, 2<<20)
	dst := make([]float32, 1<<20)
	b.SetBytes(2 << 20)
	for b.Loop() {
		decode(dst, raw, "F16", binary.LittleEndian)
	}
}
