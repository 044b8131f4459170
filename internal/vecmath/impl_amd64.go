//go:build amd64 && !purego

package vecmath

import (
	"math"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// vconst holds the kernels' constants, each repeated over a 256-bit lane so that AVX2 can use it
// as a memory operand and AVX-512 can broadcast it. It is filled from the same Go constants as the
// fallback, so both evaluate identical coefficients. Indices are the C_* defines of the .s file.
var vconst [36][8]float32

func init() {
	vals := []float32{
		expLo, expHi, log2e, ln2Hi, ln2Lo, expP5, expP4, expP3, expP2, expP1, expP0,
		1, 0.5, -0.5, sqrtHalf, geluSplit, geluClamp, -geluClamp, math.Float32frombits(0x7fffffff),
	}
	vals = append(vals, erfA[:]...)
	vals = append(vals, erfcF[:]...)
	vals = append(vals, math.Float32frombits(127))
	if len(vals) != len(vconst) {
		panic("vecmath: constant table size")
	}
	for i, v := range vals {
		for j := range vconst[i] {
			vconst[i][j] = v
		}
	}
}

//go:noescape
func expShiftSumAVX512(dst, src *float32, n int, shift float32, acc *[8]float64)

//go:noescape
func maxAVX512(x *float32, n int, acc *[16]float32)

//go:noescape
func scaleAVX512(x *float32, n int, s float32)

//go:noescape
func geluAVX512(dst, src *float32, n int)

//go:noescape
func sumAVX512(x *float32, n int, acc *[8]float64)

//go:noescape
func sumSqDevAVX512(x *float32, n int, mean float64, acc *[8]float64)

//go:noescape
func normalizeAVX512(dst, src, w, b *float32, n int, mean, inv float64)

//go:noescape
func gridCombineAVX512(dst, s, x0, x1, x2, x3, rowTerm, colTerm *float32, rows, w int, c *[4]float32)

//go:noescape
func gridMarginalsAVX512(e, r, x0, x1, x2, x3 *float32, rows, w int, rowSum, col *float64, lanes *[32]float64)

var avx512Kernels = &kernels{name: "avx512", width: 16}

//go:noescape
func expShiftSumAVX2(dst, src *float32, n int, shift float32, acc *[8]float64)

//go:noescape
func maxAVX2(x *float32, n int, acc *[16]float32)

//go:noescape
func scaleAVX2(x *float32, n int, s float32)

//go:noescape
func geluAVX2(dst, src *float32, n int)

//go:noescape
func sumAVX2(x *float32, n int, acc *[8]float64)

//go:noescape
func sumSqDevAVX2(x *float32, n int, mean float64, acc *[8]float64)

//go:noescape
func normalizeAVX2(dst, src, w, b *float32, n int, mean, inv float64)

//go:noescape
func gridCombineAVX2(dst, s, x0, x1, x2, x3, rowTerm, colTerm *float32, rows, w int, c *[4]float32)

//go:noescape
func gridMarginalsAVX2(e, r, x0, x1, x2, x3 *float32, rows, w int, rowSum, col *float64, lanes *[32]float64)

var avx2Kernels = &kernels{name: "avx2", width: 8}

// available lists the implementations this CPU can run, best first.
func available() []*kernels {
	var ks []*kernels
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernels)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernels)
	}
	return append(ks, goKernels)
}

func (k *kernels) expShiftSum(dst, src []float32, shift float32, acc *[8]float64) {
	switch k {
	case avx512Kernels:
		expShiftSumAVX512(unsafe.SliceData(dst), unsafe.SliceData(src), len(src), shift, acc)
	case avx2Kernels:
		expShiftSumAVX2(unsafe.SliceData(dst), unsafe.SliceData(src), len(src), shift, acc)
	default:
		expShiftSumGo(dst, src, shift, acc)
	}
}

func (k *kernels) max(x []float32, acc *[16]float32) {
	switch k {
	case avx512Kernels:
		maxAVX512(unsafe.SliceData(x), len(x), acc)
	case avx2Kernels:
		maxAVX2(unsafe.SliceData(x), len(x), acc)
	default:
		maxGo(x, acc)
	}
}

func (k *kernels) scale(x []float32, s float32) {
	switch k {
	case avx512Kernels:
		scaleAVX512(unsafe.SliceData(x), len(x), s)
	case avx2Kernels:
		scaleAVX2(unsafe.SliceData(x), len(x), s)
	default:
		scaleGo(x, s)
	}
}

func (k *kernels) gelu(dst, src []float32) {
	switch k {
	case avx512Kernels:
		geluAVX512(unsafe.SliceData(dst), unsafe.SliceData(src), len(src))
	case avx2Kernels:
		geluAVX2(unsafe.SliceData(dst), unsafe.SliceData(src), len(src))
	default:
		geluGo(dst, src)
	}
}

func (k *kernels) sum(x []float32, acc *[8]float64) {
	switch k {
	case avx512Kernels:
		sumAVX512(unsafe.SliceData(x), len(x), acc)
	case avx2Kernels:
		sumAVX2(unsafe.SliceData(x), len(x), acc)
	default:
		sumGo(x, acc)
	}
}

func (k *kernels) sumSqDev(x []float32, mean float64, acc *[8]float64) {
	switch k {
	case avx512Kernels:
		sumSqDevAVX512(unsafe.SliceData(x), len(x), mean, acc)
	case avx2Kernels:
		sumSqDevAVX2(unsafe.SliceData(x), len(x), mean, acc)
	default:
		sumSqDevGo(x, mean, acc)
	}
}

func (k *kernels) normalize(dst, src, w, b []float32, mean, inv float64) {
	switch k {
	case avx512Kernels:
		normalizeAVX512(unsafe.SliceData(dst), unsafe.SliceData(src), unsafe.SliceData(w), unsafe.SliceData(b), len(src), mean, inv)
	case avx2Kernels:
		normalizeAVX2(unsafe.SliceData(dst), unsafe.SliceData(src), unsafe.SliceData(w), unsafe.SliceData(b), len(src), mean, inv)
	default:
		normalizeGo(dst, src, w, b, mean, inv)
	}
}

// gridCombine and gridMarginals report false when they did not run: the Go implementation, or
// rows that are not a whole number of vectors. A switch, not a function value, keeps c and lanes
// on the caller's stack.
func (k *kernels) gridCombine(dst, s []float32, x *[4][]float32, rowTerm, colTerm []float32, c *[4]float32) bool {
	w, rows := len(colTerm), len(rowTerm)
	if k == goKernels || w%k.width != 0 || rows == 0 || w == 0 {
		return false
	}
	d, sp, x0, x1, x2, x3 := unsafe.SliceData(dst), unsafe.SliceData(s), unsafe.SliceData(x[0]), unsafe.SliceData(x[1]), unsafe.SliceData(x[2]), unsafe.SliceData(x[3])
	if k == avx512Kernels {
		gridCombineAVX512(d, sp, x0, x1, x2, x3, unsafe.SliceData(rowTerm), unsafe.SliceData(colTerm), rows, w, c)
	} else {
		gridCombineAVX2(d, sp, x0, x1, x2, x3, unsafe.SliceData(rowTerm), unsafe.SliceData(colTerm), rows, w, c)
	}
	return true
}

func (k *kernels) gridMarginals(e, r []float32, x *[4][]float32, rowSum, col []float64, lanes *[32]float64) bool {
	w, rows := len(col), len(rowSum)
	if k == goKernels || w%k.width != 0 || rows == 0 || w == 0 {
		return false
	}
	ep, rp, x0, x1, x2, x3 := unsafe.SliceData(e), unsafe.SliceData(r), unsafe.SliceData(x[0]), unsafe.SliceData(x[1]), unsafe.SliceData(x[2]), unsafe.SliceData(x[3])
	if k == avx512Kernels {
		gridMarginalsAVX512(ep, rp, x0, x1, x2, x3, rows, w, unsafe.SliceData(rowSum), unsafe.SliceData(col), lanes)
	} else {
		gridMarginalsAVX2(ep, rp, x0, x1, x2, x3, rows, w, unsafe.SliceData(rowSum), unsafe.SliceData(col), lanes)
	}
	return true
}
