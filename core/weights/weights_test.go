package weights

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// Reference data:
//   - ../../testdata/tiny: model.safetensors and pytorch_model.bin written by
//     Hugging Face / torch.save from the same random state dict (copied from
//     the shared fixtures). Every tensor must match bit for bit.
//   - ../../testdata/weights: checkpoints made by gen.py with Python's own
//     pickle and zipfile (torch's opcodes and layout, stand-in classes), and
//     *.expected.safetensors holding the values gen.py gathered in Python from
//     each view's offset, size and stride. Compared bit for bit (NaN to NaN).

const (
	tinyDir = "../../testdata/tiny"
	genDir  = "../../testdata/weights"
)

func mustOpen(t testing.TB, open func(string) (*File, error), path string) *File {
	t.Helper()
	f, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sameValue is bit equality, except that any NaN matches any NaN (the payload
// after a float16/float64 → float32 cast is not something tests should pin).
func sameValue(a, b float32) bool {
	if a != a && b != b {
		return true
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

// compareFiles checks that got holds exactly want's names, shapes and values.
func compareFiles(t *testing.T, got, want *File) {
	t.Helper()
	if !slices.Equal(got.Names(), want.Names()) {
		t.Fatalf("%s names %v, want %v (from %s)", got.Path, got.Names(), want.Names(), want.Path)
	}
	for _, name := range want.Names() {
		g, w := got.Tensors[name], want.Tensors[name]
		if g.Name != name {
			t.Errorf("%s: tensor %s has Name %q", got.Path, name, g.Name)
		}
		if !slices.Equal(g.Shape, w.Shape) || len(g.Data) != len(w.Data) || g.Len() != len(g.Data) {
			t.Errorf("%s: tensor %s shape %v (%d values), want %v (%d values)", got.Path, name, g.Shape, len(g.Data), w.Shape, len(w.Data))
			continue
		}
		for i := range w.Data {
			if !sameValue(g.Data[i], w.Data[i]) {
				t.Errorf("%s: tensor %s[%d] = %v (%#08x), want %v (%#08x)", got.Path, name, i,
					g.Data[i], math.Float32bits(g.Data[i]), w.Data[i], math.Float32bits(w.Data[i]))
				break
			}
		}
	}
}

func TestTinyPyTorchMatchesSafetensors(t *testing.T) {
	st := mustOpen(t, OpenSafetensors, filepath.Join(tinyDir, SafetensorsName))
	pt := mustOpen(t, OpenPyTorch, filepath.Join(tinyDir, PyTorchName))
	if len(st.Tensors) != 72 {
		t.Errorf("safetensors has %d tensors, want 72 (the tiny fixture's state dict)", len(st.Tensors))
	}
	compareFiles(t, pt, st)
	for _, name := range pt.Names() {
		if pt.Tensors[name].DType != "F32" || st.Tensors[name].DType != "F32" {
			t.Errorf("tensor %s dtypes %s/%s, want F32", name, pt.Tensors[name].DType, st.Tensors[name].DType)
		}
	}
	if pt.Metadata != nil {
		t.Errorf(".bin Metadata = %v, want nil", pt.Metadata)
	}
	if st.Metadata["format"] != "pt" {
		t.Errorf("safetensors Metadata = %v, want format=pt", st.Metadata)
	}
	w, err := st.Get("perceiver.embeddings.latents", 8, 32)
	if err != nil || w.Len() != 256 {
		t.Errorf("Get latents: %v", err)
	}
}

// aliases reports whether d points into f's memory map.
func aliases(f *File, d []float32) bool {
	if f.mapping == nil || len(f.mapping.data) == 0 || len(d) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(f.mapping.data)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(d)))
	return p >= lo && p < lo+uintptr(len(f.mapping.data))
}

func TestAliasingAndCopying(t *testing.T) {
	for _, f := range []*File{
		mustOpen(t, OpenSafetensors, filepath.Join(tinyDir, SafetensorsName)),
		mustOpen(t, OpenPyTorch, filepath.Join(tinyDir, PyTorchName)),
	} {
		for _, name := range f.Names() {
			if !aliases(f, f.Tensors[name].Data) {
				t.Errorf("%s: aligned F32 tensor %s was copied, want aliased", f.Path, name)
			}
		}
	}
	// views.bin storages start 64-byte aligned, so contiguous F32 views are
	// aliased even at an offset (shared_tail starts at element 5); strided
	// views and other dtypes are gathered into new memory.
	views := mustOpen(t, OpenPyTorch, filepath.Join(genDir, "views.bin"))
	for name, want := range map[string]bool{"matrix": true, "shared_tail": true, "scalar": true,
		"matrix_t": false, "shared_block": false, "expanded": false, "half": false, "double": false} {
		if got := aliases(views, views.Tensors[name].Data); got != want {
			t.Errorf("views.bin %s aliased = %v, want %v", name, got, want)
		}
	}
	for _, file := range []string{"views_unaligned.bin", "views_bigendian.bin", "views_deflated.bin"} {
		f := mustOpen(t, OpenPyTorch, filepath.Join(genDir, file))
		if aliases(f, f.Tensors["matrix"].Data) {
			t.Errorf("%s matrix is aliased, want a copy", file)
		}
	}
}

func TestViewsMatchPythonGather(t *testing.T) {
	want := mustOpen(t, OpenSafetensors, filepath.Join(genDir, "views.expected.safetensors"))
	for _, file := range []string{"views.bin", "views_proto4.bin", "views_unaligned.bin",
		"views_deflated.bin", "views_nobyteorder.bin", "views_bigendian.bin"} {
		t.Run(file, func(t *testing.T) {
			got := mustOpen(t, OpenPyTorch, filepath.Join(genDir, file))
			compareFiles(t, got, want)
			for name, dtype := range map[string]string{"matrix": "F32", "half": "F16", "half_t": "F16", "bfloat16": "BF16", "double": "F64"} {
				if got.Tensors[name].DType != dtype {
					t.Errorf("%s DType %s, want %s", name, got.Tensors[name].DType, dtype)
				}
			}
			if s := got.Tensors["scalar"]; len(s.Shape) != 0 || s.Len() != 1 || s.Data[0] != 7 {
				t.Errorf("scalar = shape %v data %v, want [] [7] (element 2 of [0.5 -1.25 7])", s.Shape, s.Data)
			}
		})
	}
}

func TestNestedStateDict(t *testing.T) {
	f := mustOpen(t, OpenPyTorch, filepath.Join(genDir, "nested.bin"))
	if got := f.Names(); !slices.Equal(got, []string{"model.w"}) {
		t.Fatalf("names %v, want [model.w] (the int \"epoch\" is not a tensor)", got)
	}
	want := mustOpen(t, OpenSafetensors, filepath.Join(genDir, "views.expected.safetensors"))
	if !slices.Equal(f.Tensors["model.w"].Data, want.Tensors["matrix"].Data) {
		t.Errorf("model.w = %v, want %v", f.Tensors["model.w"].Data, want.Tensors["matrix"].Data)
	}
}

func TestSafetensorsDTypes(t *testing.T) {
	got := mustOpen(t, OpenSafetensors, filepath.Join(genDir, "dtypes.safetensors"))
	want := mustOpen(t, OpenSafetensors, filepath.Join(genDir, "dtypes.expected.safetensors"))
	compareFiles(t, got, want)
	for name, dtype := range map[string]string{"f32": "F32", "f16": "F16", "bf16": "BF16", "f64": "F64", "scalar": "F32"} {
		if got.Tensors[name].DType != dtype {
			t.Errorf("%s DType %s, want %s", name, got.Tensors[name].DType, dtype)
		}
	}
	if got.Metadata["note"] != "generated by gen.py" || len(got.Metadata) != 2 {
		t.Errorf("Metadata = %v", got.Metadata)
	}
	// F32 data starting at a byte offset that is 1 mod 4 must be copied, not
	// aliased through a misaligned pointer.
	u := mustOpen(t, OpenSafetensors, filepath.Join(genDir, "unaligned.safetensors"))
	if !slices.Equal(u.Tensors["x"].Data, want.Tensors["f32"].Data) {
		t.Errorf("unaligned x = %v, want %v", u.Tensors["x"].Data, want.Tensors["f32"].Data)
	}
	if aliases(u, u.Tensors["x"].Data) {
		t.Errorf("unaligned F32 data was aliased")
	}
}

// TestHalfToFloat32 checks every binary16 pattern against the IEEE 754
// definition evaluated in float64: (-1)^s · 2^(e-15) · (1 + m/1024) for normal
// numbers, (-1)^s · 2^-14 · m/1024 for subnormals, ±Inf and NaN for e = 31.
func TestHalfToFloat32(t *testing.T) {
	for h := range 1 << 16 {
		s, e, m := h>>15, (h>>10)&31, h&1023
		var want float64
		switch {
		case e == 31 && m == 0:
			want = math.Inf(1)
		case e == 31:
			want = math.NaN()
		case e == 0:
			want = math.Ldexp(float64(m)/1024, -14)
		default:
			want = math.Ldexp(1+float64(m)/1024, e-15)
		}
		if s == 1 {
			want = -want
		}
		got := HalfToFloat32(uint16(h))
		if !sameValue(got, float32(want)) || math.Signbit(float64(got)) != (s == 1) {
			t.Fatalf("HalfToFloat32(%#04x) = %v, want %v", h, got, want)
		}
		if f16Table()[h] != got && !(got != got) {
			t.Fatalf("table[%#04x] disagrees", h)
		}
	}
	if BFloat16ToFloat32(0x3f80) != 1 || BFloat16ToFloat32(0xc040) != -3 {
		t.Errorf("BFloat16ToFloat32 wrong on 1 and -3")
	}
}

func TestOpenFolder(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open(empty dir) = %v, want a not-exist error naming the folder", err)
	}
	bin, _ := os.ReadFile(filepath.Join(tinyDir, PyTorchName))
	os.WriteFile(filepath.Join(dir, PyTorchName), bin, 0o644)
	f := mustOpen(t, Open, dir)
	if f.Path != filepath.Join(dir, PyTorchName) || len(f.Tensors) != 72 {
		t.Errorf("Open picked %s with %d tensors, want the .bin with 72", f.Path, len(f.Tensors))
	}
	if h := mustOpen(t, Open, filepath.Join(dir, PyTorchName)); len(h.Tensors) != 72 {
		t.Errorf("Open(file) read %d tensors, want 72", len(h.Tensors))
	}
	st, _ := os.ReadFile(filepath.Join(tinyDir, SafetensorsName))
	os.WriteFile(filepath.Join(dir, SafetensorsName), st, 0o644)
	g := mustOpen(t, Open, dir)
	if g.Path != filepath.Join(dir, SafetensorsName) {
		t.Errorf("Open picked %s, want model.safetensors when both exist", g.Path)
	}
}

// checkError verifies err is a one-line error naming path, matching target
// and containing every fragment.
func checkError(t *testing.T, err error, path string, target error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", path, target)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
		t.Errorf("error %q is not one line naming %s", msg, path)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q does not wrap %v", msg, target)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not say %q", msg, f)
		}
	}
}

// TestIntegerBuffers reads the integer tensors gen.py writes (a LongStorage in a .bin, I64 in a
// safetensors file) as float32, exactly: such buffers (BatchNorm's num_batches_tracked) sit
// beside the weights in real checkpoints.
func TestIntegerBuffers(t *testing.T) {
	cases := []struct {
		file, name string
		want       []float32
	}{
		{"int64.bin", "position_ids", []float32{1, 2, 3}},
		{"int64.safetensors", "ids", []float32{1, 2}},
	}
	for _, c := range cases {
		path := filepath.Join(genDir, c.file)
		open := OpenPyTorch
		if strings.HasSuffix(c.file, ".safetensors") {
			open = OpenSafetensors
		}
		f, err := open(path)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		tt := f.Tensors[c.name]
		if tt == nil || tt.DType != "I64" {
			t.Fatalf("%s: tensor %s = %+v, want an I64 tensor", c.file, c.name, tt)
		}
		if c.want != nil && !slices.Equal(tt.Data, c.want) {
			t.Errorf("%s: %s = %v, want %v", c.file, c.name, tt.Data, c.want)
		}
		t.Logf("%s: %s %v = %v", c.file, c.name, tt.Shape, tt.Data)
		f.Close()
	}
}

func TestBadFiles(t *testing.T) {
	cases := []struct {
		file      string
		target    error
		fragments []string
	}{
		{"malicious.bin", ErrUnlistedGlobal, []string{"malicious.bin: pickle calls unlisted global os.system"}},
		{"malicious_proto4.bin", ErrUnlistedGlobal, []string{"pickle calls unlisted global builtins.eval"}},
		{"out_of_range.bin", ErrMalformed, []string{"tensor too_far:", "offset 1", "reaches past the 12 elements"}},
		{"float8.safetensors", ErrUnsupportedDType, []string{"tensor q: unsupported dtype F8_E4M3"}},
		{"gen.py", ErrMalformed, nil},
		{"no-such-file.bin", fs.ErrNotExist, nil},
	}
	for _, c := range cases {
		path := filepath.Join(genDir, c.file)
		open := OpenPyTorch
		if strings.HasSuffix(c.file, ".safetensors") {
			open = OpenSafetensors
		}
		f, err := open(path)
		if err == nil {
			f.Close()
		}
		checkError(t, err, path, c.target, c.fragments...)
	}
}

// cutPoints returns lengths at which to truncate an n-byte file: both ends,
// every 997th byte, and the given landmarks ±1.
func cutPoints(n int, landmarks ...int) []int {
	var cuts []int
	for i := 0; i < n; i += 997 {
		cuts = append(cuts, i)
	}
	cuts = append(cuts, 1, 7, 8, 9, n/2, n-22, n-1)
	for _, l := range landmarks {
		cuts = append(cuts, l-1, l, l+1)
	}
	return slices.DeleteFunc(cuts, func(c int) bool { return c < 0 || c >= n })
}

func TestTruncatedSafetensors(t *testing.T) {
	full, err := os.ReadFile(filepath.Join(tinyDir, SafetensorsName))
	if err != nil {
		t.Fatal(err)
	}
	headerEnd := 8 + int(full[0]) | int(full[1])<<8
	dir := t.TempDir()
	for _, n := range cutPoints(len(full), headerEnd) {
		path := filepath.Join(dir, "cut.safetensors")
		os.WriteFile(path, full[:n], 0o644)
		f, err := OpenSafetensors(path)
		if err == nil {
			f.Close()
		}
		checkError(t, err, path, ErrMalformed)
		if n > headerEnd && err != nil && !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d: %v does not say truncated", n, err)
		}
	}
}

func TestTruncatedOrCorruptPyTorch(t *testing.T) {
	full, err := os.ReadFile(filepath.Join(tinyDir, PyTorchName))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cut.bin")
	for _, n := range cutPoints(len(full)) {
		os.WriteFile(path, full[:n], 0o644)
		f, err := OpenPyTorch(path)
		if err == nil {
			f.Close()
		}
		checkError(t, err, path, ErrMalformed)
	}
	// Flip one byte inside data.pkl (offset 2000) and inside the first
	// storage (data/0 starts at 15487 + 30 + 20 + padding): both are caught by
	// the CRC, not loaded as wrong values.
	for _, at := range []int{2000, 15600} {
		bad := slices.Clone(full)
		bad[at] ^= 0x40
		os.WriteFile(path, bad, 0o644)
		f, err := OpenPyTorch(path)
		if err == nil {
			f.Close()
		}
		checkError(t, err, path, ErrMalformed)
	}
}

func TestWriteSafetensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "probe.safetensors")
	in := []*Tensor{
		{Name: "layer.0", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, float32(math.Inf(-1)), 0, 1e-42}},
		{Name: "scalar", Shape: []int{}, Data: []float32{0.25}},
		{Name: "empty", Shape: []int{0, 5}, Data: []float32{}},
		{Name: "a_first", Shape: []int{3}, Data: []float32{7, 8, 9}},
	}
	os.WriteFile(path, []byte("old contents are replaced"), 0o644)
	if err := WriteSafetensors(path, in, map[string]string{"layer": "3"}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries after the write, want just the file", len(entries))
	}
	raw, _ := os.ReadFile(path)
	headerLen := int(raw[0]) | int(raw[1])<<8
	// Python's safetensors reads the header as JSON and needs data offsets
	// that tile the data section; numpy wants 4-byte aligned F32 data.
	if headerLen%8 != 0 || !strings.HasPrefix(string(raw[8:]), "{") {
		t.Errorf("header of %d bytes: %q", headerLen, raw[8:8+headerLen])
	}
	for _, frag := range []string{`"__metadata__":{"layer":"3"}`, `"a_first":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}`,
		`"scalar":{"dtype":"F32","shape":[],"data_offsets":`} {
		if !strings.Contains(string(raw[8:8+headerLen]), frag) {
			t.Errorf("header %s lacks %s", raw[8:8+headerLen], frag)
		}
	}
	f := mustOpen(t, OpenSafetensors, path)
	for _, want := range in {
		got := f.Tensors[want.Name]
		if got == nil || !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Data, want.Data) || got.DType != "F32" {
			t.Errorf("%s read back as %+v, want %+v", want.Name, got, want)
		}
	}
	if f.Metadata["layer"] != "3" {
		t.Errorf("Metadata %v", f.Metadata)
	}

	bad := [][]*Tensor{
		{{Name: "x", Shape: []int{2}, Data: []float32{1}}},
		{{Name: "x", Data: []float32{1}}, {Name: "x", Data: []float32{2}}},
		{{Name: "__metadata__", Data: []float32{1}}},
		{nil},
	}
	for _, ts := range bad {
		err := WriteSafetensors(filepath.Join(dir, "bad.safetensors"), ts, nil)
		checkError(t, err, "bad.safetensors", nil)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.safetensors")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed write left a file behind")
	}
}

func TestLegacyPyTorchFormat(t *testing.T) {
	// Before torch 1.6, torch.save wrote bare pickles (starting with PROTO 2)
	// rather than zip archives; say so instead of "not a zip file".
	path := filepath.Join(t.TempDir(), "legacy.bin")
	os.WriteFile(path, []byte("\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19."), 0o644)
	_, err := OpenPyTorch(path)
	checkError(t, err, path, ErrMalformed, "legacy (pre-1.6) torch.save format")
}

func TestWriteSafetensorsMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "x.safetensors")
	err := WriteSafetensors(path, []*Tensor{{Name: "x", Data: []float32{1}}}, nil)
	checkError(t, err, path, fs.ErrNotExist)
}

// TestViewBounds checks views against the storage bounds directly: the last
// element a view touches is offset + Σ (size-1)·stride.
func TestViewBounds(t *testing.T) {
	storage := &storageRef{typeName: "FloatStorage", dtype: "F32", key: "0", numel: 3}
	raw := make([]byte, 12)
	cases := []struct {
		offset       int64
		size, stride []int64
		ok           bool
	}{
		{2, nil, nil, true},                      // scalar, last element
		{3, nil, nil, false},                     // scalar just past the end
		{0, []int64{3}, []int64{1}, true},        // whole storage
		{1, []int64{3}, []int64{1}, false},       // one too far
		{0, []int64{2, 2}, []int64{1, 1}, true},  // overlapping strides reach element 2
		{0, []int64{2, 2}, []int64{2, 1}, false}, // reaches element 3
		{5, []int64{0, 4}, []int64{4, 1}, true},  // empty view: nothing is read
		{0, []int64{1 << 40, 1 << 40}, []int64{0, 0}, false},
		{0, []int64{2}, []int64{1 << 62}, false}, // stride overflows
		{1 << 62, []int64{2}, []int64{1 << 62}, false},
	}
	for _, c := range cases {
		ref := &tensorRef{storage: storage, offset: c.offset, size: c.size, stride: c.stride}
		_, err := materialize(ref, raw, 4, binary.LittleEndian)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("offset %d size %v stride %v: err = %v, want ok = %v", c.offset, c.size, c.stride, err, c.ok)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	f, err := OpenSafetensors(filepath.Join(tinyDir, SafetensorsName))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
