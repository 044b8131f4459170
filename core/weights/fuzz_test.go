package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fuzz targets check that no input panics, that every error is one line
// naming the file, and that whatever loads is self-consistent.

func addFileSeeds(f *testing.F, paths ...string) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
}

func checkLoaded(t *testing.T, file *File, err error, name string) {
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, name+": ") {
			t.Fatalf("error %q is not one line starting with %s", msg, name)
		}
		return
	}
	for n, tensor := range file.Tensors {
		if tensor.Name != n || tensor.Len() != len(tensor.Data) {
			t.Fatalf("tensor %q: Name %q, shape %v, %d values", n, tensor.Name, tensor.Shape, len(tensor.Data))
		}
	}
}

func FuzzOpenSafetensors(f *testing.F) {
	addFileSeeds(f, filepath.Join(tinyDir, SafetensorsName), filepath.Join(genDir, "dtypes.safetensors"),
		filepath.Join(genDir, "unaligned.safetensors"), filepath.Join(genDir, "float8.safetensors"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := parseSafetensors("fuzz.safetensors", b)
		checkLoaded(t, file, err, "fuzz.safetensors")
	})
}

func FuzzOpenPyTorch(f *testing.F) {
	addFileSeeds(f, filepath.Join(tinyDir, PyTorchName), filepath.Join(genDir, "views.bin"),
		filepath.Join(genDir, "views_deflated.bin"), filepath.Join(genDir, "out_of_range.bin"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := parsePyTorch("fuzz.bin", b)
		checkLoaded(t, file, err, "fuzz.bin")
	})
}

// FuzzUnpickle runs the interpreter on arbitrary bytes and, when a state dict
// comes out, materializes its tensors from zero-filled storages of the
// declared sizes, exercising the view bounds checks.
func FuzzUnpickle(f *testing.F) {
	for _, p := range []string{filepath.Join(tinyDir, PyTorchName), filepath.Join(genDir, "views.bin"),
		filepath.Join(genDir, "views_proto4.bin"), filepath.Join(genDir, "malicious.bin"),
		filepath.Join(genDir, "malicious_proto4.bin"), filepath.Join(genDir, "out_of_range.bin")} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			f.Fatal(err)
		}
		for _, zf := range zr.File {
			if strings.HasSuffix(zf.Name, "/data.pkl") {
				pkl, err := readEntry(zf, maxPickleBytes)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(pkl)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := unpickle(b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		d, ok := root.(*pickleDict)
		if !ok {
			return
		}
		refs := make(map[string]*tensorRef)
		if collectTensors("fuzz.bin", d, "", 0, refs) != nil {
			return
		}
		for _, ref := range refs {
			size := dtypeSize(ref.storage.dtype)
			if size == 0 || ref.storage.numel > 1<<20 {
				continue
			}
			tensor, err := materialize(ref, make([]byte, int(ref.storage.numel)*size), size, binary.LittleEndian)
			if err == nil && tensor.Len() != len(tensor.Data) {
				t.Fatalf("shape %v with %d values", tensor.Shape, len(tensor.Data))
			}
		}
	})
}
