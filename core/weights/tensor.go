package weights

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Tensor is one named array, always float32 in memory, row-major and contiguous.
type Tensor struct {
	Name  string
	DType string    // dtype as stored in the file: "F32", "F16", "BF16", "F64" (safetensors spelling)
	Shape []int     // outermost dimension first; empty for a scalar
	Data  []float32 // may alias a read-only memory map: callers must not write into it
}

// Len returns the number of elements, the product of Shape (1 for a scalar).
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a set of tensors read from one file; Close releases the memory map
// (Data slices that alias it become invalid).
type File struct {
	Path     string
	Tensors  map[string]*Tensor
	Metadata map[string]string // safetensors __metadata__; nil for .bin

	mapping *mapping
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for name := range f.Tensors {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Get returns the named tensor and, when shape is given, checks that the
// tensor has exactly that shape. The error names the file and the tensor.
func (f *File) Get(name string, shape ...int) (*Tensor, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return nil, &Error{Path: f.Path, Tensor: name, Err: ErrMissingTensor}
	}
	if shape != nil && !slices.Equal(t.Shape, shape) {
		return nil, &Error{Path: f.Path, Tensor: name,
			Err: fmt.Errorf("%w: shape %v, want %v", ErrShapeMismatch, t.Shape, shape)}
	}
	return t, nil
}

// Close releases the memory map. It is safe to call more than once.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	m := f.mapping
	f.mapping = nil
	return m.close()
}

// Names of the files Open looks for in a model folder, in order of preference.
const (
	SafetensorsName = "model.safetensors"
	PyTorchName     = "pytorch_model.bin"
)

// Open reads the weights of a Hugging Face model folder: model.safetensors when
// present, else pytorch_model.bin. The error names dir when neither exists.
//
// For convenience dir may also name a weight file itself: names ending in
// .safetensors are read with OpenSafetensors, others with OpenPyTorch.
func Open(dir string) (*File, error) {
	if info, err := os.Stat(dir); err == nil && info.Mode().IsRegular() {
		if strings.HasSuffix(dir, ".safetensors") {
			return OpenSafetensors(dir)
		}
		return OpenPyTorch(dir)
	}
	st := filepath.Join(dir, SafetensorsName)
	if _, err := os.Stat(st); err == nil {
		return OpenSafetensors(st)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	pt := filepath.Join(dir, PyTorchName)
	if _, err := os.Stat(pt); err == nil {
		return OpenPyTorch(pt)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return nil, &Error{Path: dir, Err: fmt.Errorf("no %s or %s: %w", SafetensorsName, PyTorchName, fs.ErrNotExist)}
}

// Sentinel errors wrapped by the errors this package returns.
var (
	ErrMalformed        = errors.New("malformed")
	ErrUnsupportedDType = errors.New("unsupported dtype")
	ErrUnlistedGlobal   = errors.New("pickle calls unlisted global")
	ErrMissingTensor    = errors.New("not in file")
	ErrShapeMismatch    = errors.New("unexpected shape")
)

// Error is an error about one file, and possibly one tensor in it.
type Error struct {
	Path   string
	Tensor string // empty when the error is not about a single tensor
	Err    error
}

func (e *Error) Error() string {
	if e.Tensor != "" {
		return e.Path + ": tensor " + PrintableName(e.Tensor) + ": " + e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// PrintableName returns a name read from a file (a tensor, a storage, a pickle global) as it is
// when it is plain text, else quoted with Go escapes, so that an error naming it stays one
// readable line whatever the file holds.
func PrintableName(name string) string {
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return strconv.Quote(name)
		}
	}
	return name
}

func (e *Error) Unwrap() error { return e.Err }

// malformed builds an ErrMalformed error about path (and tensor, if not empty).
func malformed(path, tensor, format string, args ...any) error {
	return &Error{Path: path, Tensor: tensor, Err: fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)}
}
