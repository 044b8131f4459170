package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Limits that keep hostile archives from making us allocate without bound.
const (
	maxPickleBytes = 1 << 30 // data.pkl of a state dict is kilobytes to megabytes
	maxElements    = 1 << 40 // elements in one tensor view
	maxNesting     = 8       // nested dicts flattened into dotted names
)

// OpenPyTorch memory-maps a checkpoint written by torch.save (the zip format of
// PyTorch ≥ 1.6, as in pytorch_model.bin) and returns its tensors. The pickle
// must hold a state dict: a dict of tensors, possibly nested (names are then
// joined with dots). Non-tensor entries are skipped.
func OpenPyTorch(path string) (*File, error) {
	m, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := parsePyTorch(path, m.data)
	if err != nil {
		m.close()
		return nil, err
	}
	f.mapping = m
	return f, nil
}

// parsePyTorch decodes a whole torch.save zip archive held in buf. Tensors may
// alias buf.
func parsePyTorch(path string, buf []byte) (*File, error) {
	zr, err := zip.NewReader(bytes.NewReader(buf), int64(len(buf)))
	if err != nil {
		if len(buf) > 1 && buf[0] == 0x80 && buf[1] <= 5 {
			return nil, malformed(path, "", "legacy (pre-1.6) torch.save format is not supported; re-save it with a newer torch or convert it to safetensors")
		}
		return nil, malformed(path, "", "not a PyTorch zip archive (truncated?): %v", err)
	}
	entries := make(map[string]*zip.File, len(zr.File))
	var pkl *zip.File
	for _, zf := range zr.File {
		entries[zf.Name] = zf
		if strings.HasSuffix(zf.Name, "/data.pkl") && strings.Count(zf.Name, "/") == 1 {
			if pkl != nil {
				return nil, malformed(path, "", "archive holds both %s and %s", PrintableName(pkl.Name), PrintableName(zf.Name))
			}
			pkl = zf
		}
	}
	if pkl == nil {
		return nil, malformed(path, "", "archive has no <folder>/data.pkl: not written by torch.save")
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")

	var order binary.ByteOrder = binary.LittleEndian
	if bo := entries[prefix+"byteorder"]; bo != nil {
		b, err := readEntry(bo, 16)
		if err != nil {
			return nil, malformed(path, "", "%s: %v", bo.Name, err)
		}
		switch strings.TrimSpace(string(b)) {
		case "little":
		case "big":
			order = binary.BigEndian
		default:
			return nil, malformed(path, "", "%s says %q, want little or big", bo.Name, b)
		}
	}

	pickled, err := readEntry(pkl, maxPickleBytes)
	if err != nil {
		return nil, malformed(path, "", "%s: %v", PrintableName(pkl.Name), err)
	}
	root, err := unpickle(pickled)
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	dict, ok := root.(*pickleDict)
	if !ok {
		return nil, malformed(path, "", "pickle holds %s, not a state dict", describe(root))
	}
	refs := make(map[string]*tensorRef)
	if err := collectTensors(path, dict, "", 0, refs); err != nil {
		return nil, err
	}

	f := &File{Path: path, Tensors: make(map[string]*Tensor, len(refs))}
	storages := make(map[string][]byte)
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic: the first bad tensor is always the same
	for _, name := range names {
		ref := refs[name]
		s := ref.storage
		size := dtypeSize(s.dtype)
		if size == 0 {
			dtype := s.dtype
			if dtype == "" {
				dtype = s.typeName
			}
			return nil, &Error{Path: path, Tensor: name, Err: fmt.Errorf("%w %s", ErrUnsupportedDType, dtype)}
		}
		raw, ok := storages[s.key]
		if !ok {
			zf := entries[prefix+"data/"+s.key]
			if zf == nil {
				return nil, malformed(path, name, "storage %s is missing from the archive", PrintableName(prefix+"data/"+s.key))
			}
			if raw, err = entryBytes(buf, zf); err != nil {
				return nil, malformed(path, name, "storage %s: %v", PrintableName(zf.Name), err)
			}
			storages[s.key] = raw
		}
		if hi, need := bits.Mul64(uint64(s.numel), uint64(size)); hi != 0 || need > uint64(len(raw)) {
			return nil, malformed(path, name, "storage %s declares %d elements of %s but holds %d bytes", PrintableName(s.key), s.numel, s.dtype, len(raw))
		}
		t, err := materialize(ref, raw, size, order)
		if err != nil {
			return nil, &Error{Path: path, Tensor: name, Err: err}
		}
		t.Name = name
		f.Tensors[name] = t
	}
	return f, nil
}

// collectTensors flattens a state dict into dotted names.
func collectTensors(path string, d *pickleDict, prefix string, depth int, out map[string]*tensorRef) error {
	if depth > maxNesting {
		return malformed(path, "", "state dict nested deeper than %d levels", maxNesting)
	}
	for i, k := range d.keys {
		key, ok := k.(string)
		if !ok {
			continue
		}
		name := prefix + key
		switch v := d.values[i].(type) {
		case *tensorRef:
			if _, dup := out[name]; dup {
				return malformed(path, name, "name appears twice")
			}
			out[name] = v
		case *pickleDict:
			if err := collectTensors(path, v, name+".", depth+1, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// readEntry reads a small archive entry in full, checking its CRC.
func readEntry(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("entry of %d bytes exceeds the %d-byte limit", zf.UncompressedSize64, limit)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("entry exceeds the %d-byte limit", limit)
	}
	return b, nil
}

// entryBytes returns the contents of a storage entry: a sub-slice of buf when
// it is stored uncompressed (as torch.save does), else a decompressed copy.
func entryBytes(buf []byte, zf *zip.File) ([]byte, error) {
	if zf.Method == zip.Store && zf.CompressedSize64 == zf.UncompressedSize64 {
		off, err := zf.DataOffset()
		if err != nil {
			return nil, err
		}
		if off < 0 || uint64(off) > uint64(len(buf)) || zf.UncompressedSize64 > uint64(len(buf))-uint64(off) {
			return nil, fmt.Errorf("%d bytes at offset %d run past the end of the %d-byte file (truncated?)", zf.UncompressedSize64, off, len(buf))
		}
		b := buf[off : uint64(off)+zf.UncompressedSize64]
		// One pass at memory speed; it catches corrupted downloads that would
		// otherwise load as silently wrong weights.
		if got := crc32.ChecksumIEEE(b); got != zf.CRC32 {
			return nil, fmt.Errorf("checksum %08x, archive says %08x (corrupt file)", got, zf.CRC32)
		}
		return b, nil
	}
	// Deflate expands at most ~1032:1; refuse entries that claim more.
	if zf.UncompressedSize64/1032 > zf.CompressedSize64+1 {
		return nil, fmt.Errorf("compressed entry claims an impossible %d bytes", zf.UncompressedSize64)
	}
	return readEntry(zf, int64(zf.UncompressedSize64))
}

// materialize builds the contiguous float32 tensor for a view of a storage
// holding elements of the given size. It aliases raw when the view is
// contiguous little-endian float32 and aligned, and gathers otherwise.
func materialize(ref *tensorRef, raw []byte, elemSize int, order binary.ByteOrder) (*Tensor, error) {
	s := ref.storage
	shape := make([]int, len(ref.size))
	n := uint64(1)
	for i, d := range ref.size {
		if d > maxElements {
			return nil, fmt.Errorf("%w: view of size %v is too large", ErrMalformed, ref.size)
		}
		shape[i] = int(d)
		var hi uint64
		hi, n = bits.Mul64(n, uint64(d))
		if hi != 0 || n > maxElements {
			return nil, fmt.Errorf("%w: view of size %v is too large", ErrMalformed, ref.size)
		}
	}
	t := &Tensor{DType: s.dtype, Shape: shape}
	if n == 0 {
		t.Data = []float32{}
		return t, nil
	}
	// The last element the view touches must lie inside the storage.
	last := uint64(ref.offset)
	for i, d := range ref.size {
		hi, lo := bits.Mul64(uint64(d-1), uint64(ref.stride[i]))
		var carry uint64
		last, carry = bits.Add64(last, lo, 0)
		if hi != 0 || carry != 0 {
			last = math.MaxUint64
			break
		}
	}
	if last >= uint64(s.numel) {
		return nil, fmt.Errorf("%w: view (offset %d, size %v, stride %v) reaches past the %d elements of storage %s",
			ErrMalformed, ref.offset, ref.size, ref.stride, s.numel, PrintableName(s.key))
	}
	if n > uint64(s.numel) && n > 1<<28 { // broadcast (stride 0) views could otherwise ask for anything
		return nil, fmt.Errorf("%w: view of %d elements expands a %d-element storage", ErrMalformed, n, s.numel)
	}
	if isContiguous(ref.size, ref.stride) {
		span := raw[uint64(ref.offset)*uint64(elemSize) : (uint64(ref.offset)+n)*uint64(elemSize)]
		if s.dtype == "F32" {
			if d, ok := aliasF32(span, order); ok {
				t.Data = d
				return t, nil
			}
		}
		t.Data = make([]float32, n)
		decode(t.Data, span, s.dtype, order)
		return t, nil
	}
	t.Data = make([]float32, n)
	gather(t.Data, raw, ref.offset, ref.size, ref.stride, s.dtype, order)
	return t, nil
}

// isContiguous reports whether strides are the row-major strides of size
// (dimensions of extent 1 may have any stride).
func isContiguous(size, stride []int64) bool {
	want := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}

// gather copies a strided view of raw into dst in row-major order. dst must
// hold the product of size elements, and every index must be in range.
func gather(dst []float32, raw []byte, offset int64, size, stride []int64, dtype string, order binary.ByteOrder) {
	nd := len(size)
	inner, innerStride := size[nd-1], stride[nd-1]
	idx := make([]int64, nd-1)
	base := offset
	var src32 []float32 // the storage itself, when float32 can be read in place
	if dtype == "F32" {
		src32, _ = aliasF32(raw[:len(raw)/4*4], order)
	}
	for o := 0; o < len(dst); o += int(inner) {
		p := base
		row := dst[o : o+int(inner)]
		if src32 != nil {
			for j := range row {
				row[j] = src32[p]
				p += innerStride
			}
		} else {
			for j := range row {
				row[j] = decodeOne(raw, int(p), dtype, order)
				p += innerStride
			}
		}
		for d := nd - 2; d >= 0; d-- { // advance the odometer over outer dims
			idx[d]++
			base += stride[d]
			if idx[d] < size[d] {
				break
			}
			base -= stride[d] * size[d]
			idx[d] = 0
		}
	}
}
