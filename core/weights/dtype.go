package weights

import (
	"encoding/binary"
	"math"
	"sync"
	"unsafe"
)

// hostLittleEndian reports whether float32 bytes in memory are little-endian,
// the only case in which file bytes can be aliased as []float32.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// dtypeSize returns the element size of the dtypes this package converts to
// float32, and 0 for every other dtype. Integers convert exactly up to 2²⁴ in
// magnitude; they are buffers (counters, ids), never weights.
func dtypeSize(dtype string) int {
	switch dtype {
	case "F32":
		return 4
	case "F16", "BF16":
		return 2
	case "F64", "I64":
		return 8
	case "I32":
		return 4
	case "I16":
		return 2
	case "I8", "U8", "BOOL":
		return 1
	}
	return 0
}

// aliasF32 returns b as []float32 without copying when that is sound: a
// little-endian host, little-endian data and a 4-byte aligned start.
func aliasF32(b []byte, order binary.ByteOrder) ([]float32, bool) {
	if !hostLittleEndian || order != binary.LittleEndian || len(b)%4 != 0 {
		return nil, false
	}
	if len(b) == 0 {
		return []float32{}, true
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(p), len(b)/4), true
}

// decode converts len(dst) elements of dtype from src into dst. src must hold
// at least len(dst)*dtypeSize(dtype) bytes.
func decode(dst []float32, src []byte, dtype string, order binary.ByteOrder) {
	if order != binary.LittleEndian {
		for i := range dst {
			dst[i] = decodeOne(src, i, dtype, order)
		}
		return
	}
	// Little-endian (every safetensors file, nearly every checkpoint): static
	// byte-order calls, so the loops compile to plain loads.
	le := binary.LittleEndian
	switch dtype {
	case "F32":
		src = src[:4*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case "F16":
		table := f16Table()
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = table[le.Uint16(src[2*i:])]
		}
	case "BF16":
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	case "F64":
		src = src[:8*len(dst)]
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	default:
		// Integer buffers (BatchNorm's num_batches_tracked, position ids) are small and rare.
		for i := range dst {
			dst[i] = decodeOne(src, i, dtype, le)
		}
	}
}

// decodeOne converts element i of src.
func decodeOne(src []byte, i int, dtype string, order binary.ByteOrder) float32 {
	switch dtype {
	case "F32":
		return math.Float32frombits(order.Uint32(src[4*i:]))
	case "F16":
		return f16Table()[order.Uint16(src[2*i:])]
	case "BF16":
		return math.Float32frombits(uint32(order.Uint16(src[2*i:])) << 16)
	case "F64":
		return float32(math.Float64frombits(order.Uint64(src[8*i:])))
	case "I64":
		return float32(int64(order.Uint64(src[8*i:])))
	case "I32":
		return float32(int32(order.Uint32(src[4*i:])))
	case "I16":
		return float32(int16(order.Uint16(src[2*i:])))
	case "I8":
		return float32(int8(src[i]))
	case "U8":
		return float32(src[i])
	case "BOOL":
		if src[i] != 0 {
			return 1
		}
		return 0
	}
	panic("weights: decode of unsupported dtype " + dtype)
}

// f16Table maps every IEEE half-precision bit pattern to its float32 value
// (built on first use: 256 KiB, faster than branching per element).
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range 1 << 16 {
		t[h] = HalfToFloat32(uint16(h))
	}
	return &t
})

// HalfToFloat32 converts IEEE 754 binary16 bits to float32 exactly, including
// subnormals, signed zeros, infinities and NaN (payload kept).
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant · 2⁻²⁴, exact in float32
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	default: // rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}

// BFloat16ToFloat32 converts bfloat16 bits to float32 (exact: bfloat16 is the
// top half of a float32).
func BFloat16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}
