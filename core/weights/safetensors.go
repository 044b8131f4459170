package weights

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/nlpodyssey/safetensors"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// maxDim bounds one dimension of a declared shape, so that shapes with a zero
// dimension cannot smuggle absurd sizes past the byte-count checks.
const maxDim = 1 << 40

// OpenSafetensors memory-maps a safetensors file and returns its tensors.
func OpenSafetensors(path string) (*File, error) {
	m, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := parseSafetensors(path, m.data)
	if err != nil {
		m.close()
		return nil, err
	}
	f.mapping = m
	return f, nil
}

// parseSafetensors decodes a whole safetensors file held in buf. Tensors may
// alias buf.
func parseSafetensors(path string, buf []byte) (*File, error) {
	if len(buf) < 8 {
		return nil, malformed(path, "", "file of %d bytes is too short for a safetensors header (truncated?)", len(buf))
	}
	headerLen := binary.LittleEndian.Uint64(buf)
	if headerLen > uint64(len(buf)-8) {
		return nil, malformed(path, "", "safetensors header of %d bytes runs past the end of the %d-byte file (truncated?)", headerLen, len(buf))
	}
	n, md, err := safetensors.ReadMetadata(buf)
	if err != nil {
		return nil, diagnoseSafetensors(path, buf, err)
	}
	data := buf[8+n:]
	f := &File{Path: path, Tensors: make(map[string]*Tensor), Metadata: md.Metadata()}
	for name, info := range md.Tensors() {
		dtype := info.DType.String()
		size := dtypeSize(dtype)
		if size == 0 {
			return nil, &Error{Path: path, Tensor: name, Err: fmt.Errorf("%w %s", ErrUnsupportedDType, dtype)}
		}
		shape := make([]int, len(info.Shape))
		for i, d := range info.Shape {
			if d > maxDim {
				return nil, malformed(path, name, "dimension %d of %d is too large", i, d)
			}
			shape[i] = int(d)
		}
		raw := data[info.DataOffsets[0]:info.DataOffsets[1]]
		t := &Tensor{Name: name, DType: dtype, Shape: shape}
		if dtype == "F32" {
			t.Data, _ = aliasF32(raw, binary.LittleEndian)
		}
		if t.Data == nil {
			t.Data = make([]float32, len(raw)/size)
			decode(t.Data, raw, dtype, binary.LittleEndian)
		}
		f.Tensors[name] = t
	}
	return f, nil
}

// headerEntry is the part of a safetensors header entry needed to explain why
// the header failed validation.
type headerEntry struct {
	DType       string    `json:"dtype"`
	Shape       []uint64  `json:"shape"`
	DataOffsets [2]uint64 `json:"data_offsets"`
}

// diagnoseSafetensors turns a validation failure of the safetensors library
// into a message that says what is wrong: an unknown dtype, or a data section
// shorter or longer than the header describes.
func diagnoseSafetensors(path string, buf []byte, libErr error) error {
	n := binary.LittleEndian.Uint64(buf)
	var entries map[string]json.RawMessage
	if json.Unmarshal(buf[8:8+n], &entries) == nil {
		names := make([]string, 0, len(entries))
		for name := range entries {
			names = append(names, name)
		}
		slices.Sort(names)
		end := uint64(0)
		decoded := true
		for _, name := range names {
			if name == "__metadata__" {
				continue
			}
			var e headerEntry
			if json.Unmarshal(entries[name], &e) != nil {
				decoded = false
				continue
			}
			if _, err := safetensors.ParseDType(e.DType); err != nil {
				return &Error{Path: path, Tensor: name, Err: fmt.Errorf("%w %s", ErrUnsupportedDType, e.DType)}
			}
			end = max(end, e.DataOffsets[1])
		}
		if have := uint64(len(buf)) - 8 - n; decoded && end != have {
			return malformed(path, "", "header describes %d bytes of tensor data, file holds %d (truncated?)", end, have)
		}
	}
	return malformed(path, "", "safetensors header: %v", libErr)
}

// WriteSafetensors writes tensors as F32 to path, with optional __metadata__;
// a tensor whose DType is "I64" (an integer buffer such as BatchNorm's
// num_batches_tracked, read as float32) is written back as I64. It writes a temporary file in the same directory and renames it over path,
// so readers never see a half-written file.
func WriteSafetensors(path string, tensors []*Tensor, metadata map[string]string) error {
	views := make(map[string]tensorView, len(tensors))
	for i, t := range tensors {
		if t == nil {
			return &Error{Path: path, Err: fmt.Errorf("tensor %d is nil", i)}
		}
		if t.Name == "" || t.Name == "__metadata__" {
			return &Error{Path: path, Err: fmt.Errorf("tensor %d has the reserved name %q", i, t.Name)}
		}
		if _, dup := views[t.Name]; dup {
			return &Error{Path: path, Tensor: t.Name, Err: fmt.Errorf("name given twice")}
		}
		shape := make([]uint64, len(t.Shape))
		for j, d := range t.Shape {
			if d < 0 {
				return &Error{Path: path, Tensor: t.Name, Err: fmt.Errorf("negative dimension in shape %v", t.Shape)}
			}
			shape[j] = uint64(d)
		}
		if t.Len() != len(t.Data) {
			return &Error{Path: path, Tensor: t.Name, Err: fmt.Errorf("shape %v holds %d values, Data has %d", t.Shape, t.Len(), len(t.Data))}
		}
		switch t.DType {
		case "I64":
			b := make([]byte, 8*len(t.Data))
			for j, v := range t.Data {
				if v != float32(int64(v)) {
					return &Error{Path: path, Tensor: t.Name, Err: fmt.Errorf("I64 tensor holds the non-integer %v", v)}
				}
				binary.LittleEndian.PutUint64(b[8*j:], uint64(int64(v)))
			}
			views[t.Name] = i64View{f32View{shape: shape, data: b}}
		default:
			views[t.Name] = f32View{shape: shape, data: float32Bytes(t.Data)}
		}
	}
	if len(metadata) == 0 {
		metadata = nil
	}

	if err := writeAtomically(path, views, metadata); err != nil {
		return &Error{Path: path, Err: err}
	}
	return nil
}

// writeAtomically serializes into a temporary file next to path, syncs it and
// renames it over path; on failure the temporary file is removed.
func writeAtomically(path string, views map[string]tensorView, metadata map[string]string) (err error) {
	// A rename would replace a device node, FIFO or symlink with a plain file.
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return outfile.MissingFolder(path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := safetensors.SerializeToWriter(views, metadata, w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := outfile.CheckTarget(path); err != nil { // it may have appeared meanwhile
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// tensorView is what the safetensors serializer takes.
type tensorView interface {
	DType() safetensors.DType
	Shape() []uint64
	Data() []byte
	DataLen() uint64
}

// i64View presents little-endian int64 data to the serializer.
type i64View struct{ f32View }

func (v i64View) DType() safetensors.DType { return safetensors.I64 }

// f32View presents float32 data to the safetensors serializer.
type f32View struct {
	shape []uint64
	data  []byte
}

func (v f32View) DType() safetensors.DType { return safetensors.F32 }
func (v f32View) Shape() []uint64          { return v.shape }
func (v f32View) Data() []byte             { return v.data }
func (v f32View) DataLen() uint64          { return uint64(len(v.data)) }

// float32Bytes returns the little-endian bytes of d, aliasing d on
// little-endian hosts.
func float32Bytes(d []float32) []byte {
	if len(d) == 0 {
		return nil
	}
	if hostLittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 4*len(d))
	}
	b := make([]byte, 4*len(d))
	for i, v := range d {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
