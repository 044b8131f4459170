package linear

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The golden files in testdata/npy were written by numpy 1.24.2's np.save (Debian python3-numpy):
//
//	np.save('f4_2x3.npy', np.array([[1.5,-2,0],[3.25,1e-3,-0.0]], dtype='<f4'))
//	np.save('i8_4.npy', np.array([0,-1,7,1<<40], dtype='<i8'))
//	np.save('f4_empty.npy', np.zeros((0,5), dtype='<f4'))
//	np.save('f4_3d.npy', np.arange(24, dtype='<f4').reshape(2,3,4))
//
// Our writer must reproduce them byte for byte.
func TestWriteNPYMatchesNumpy(t *testing.T) {
	f4 := func(v ...float32) []float32 { return v }
	arange := make([]float32, 24)
	for i := range arange {
		arange[i] = float32(i)
	}
	cases := []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"f4_2x3.npy", func(b *bytes.Buffer) error {
			return WriteNPY(b, f4(1.5, -2, 0, 3.25, 1e-3, float32(math.Copysign(0, -1))), 2, 3)
		}},
		{"i8_4.npy", func(b *bytes.Buffer) error { return WriteNPYInt64(b, []int64{0, -1, 7, 1 << 40}, 4) }},
		{"f4_empty.npy", func(b *bytes.Buffer) error { return WriteNPY(b, nil, 0, 5) }},
		{"f4_3d.npy", func(b *bytes.Buffer) error { return WriteNPY(b, arange, 2, 3, 4) }},
	}
	for _, c := range cases {
		want, err := os.ReadFile("testdata/npy/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := c.write(&got); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: bytes differ from numpy's\n got %q\nwant %q", c.file, got.Bytes(), want)
		}
	}
}

func TestWriteNPYShapeMismatch(t *testing.T) {
	var b bytes.Buffer
	if err := WriteNPY(&b, make([]float32, 5), 2, 3); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Fatalf("want a shape error, got %v", err)
	}
}

// readNPY is a minimal reader for the test fixtures ('<f4' or '<i8', C order), returning values as
// float64 and the shape.
func readNPY(t *testing.T, path string) ([]float64, []int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:6]) != "\x93NUMPY" || b[6] != 1 {
		t.Fatalf("%s: not an npy v1 file", path)
	}
	hl := int(binary.LittleEndian.Uint16(b[8:10]))
	header := string(b[10 : 10+hl])
	data := b[10+hl:]
	descr := regexp.MustCompile(`'descr': '([^']+)'`).FindStringSubmatch(header)[1]
	var shape []int
	for _, s := range regexp.MustCompile(`\d+`).FindAllString(regexp.MustCompile(`'shape': \(([^)]*)\)`).FindStringSubmatch(header)[1], -1) {
		v, _ := strconv.Atoi(s)
		shape = append(shape, v)
	}
	var out []float64
	switch descr {
	case "<f4":
		for i := 0; i+4 <= len(data); i += 4 {
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(data[i:]))))
		}
	case "<i8":
		for i := 0; i+8 <= len(data); i += 8 {
			out = append(out, float64(int64(binary.LittleEndian.Uint64(data[i:]))))
		}
	default:
		t.Fatalf("%s: dtype %s", path, descr)
	}
	return out, shape
}
