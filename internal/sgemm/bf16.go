package sgemm

import (
	"fmt"
	"math"
	"unsafe"
)

// Precision is the precision of a product's operands. Accumulation, the epilogue (alpha,
// bias, beta·C) and C are float32 in both.
type Precision uint8

const (
	// Float32 operands: the default.
	Float32 Precision = iota
	// BFloat16 operands: A and B rounded to bfloat16 (round to nearest even) when packed,
	// multiplied in pairs into float32 accumulators as VDPBF16PS does (see DotBF16).
	BFloat16
)

func (p Precision) String() string {
	switch p {
	case Float32:
		return "float32"
	case BFloat16:
		return "bf16"
	}
	return fmt.Sprintf("Precision(%d)", uint8(p))
}

// ToBF16 rounds x to bfloat16 (the high 16 bits of a float32), to nearest with ties to even,
// as VCVTNEPS2BF16 does: subnormal inputs count as zeros of their sign (DAZ), NaNs stay NaNs
// (made quiet). A normal float32 never rounds to a subnormal bfloat16 (same exponent range).
func ToBF16(x float32) uint16 {
	u := math.Float32bits(x)
	switch {
	case u&0x7fffffff > 0x7f800000: // NaN
		return uint16(u>>16) | 0x40
	case u&0x7f800000 == 0: // zero or subnormal
		return uint16(u>>16) & 0x8000
	}
	u += 0x7fff + (u >> 16 & 1)
	return uint16(u >> 16)
}

// FromBF16 widens a bfloat16 to the float32 it denotes.
func FromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// bf16Pair is one 32-bit word of a bfloat16 panel: the value for even k in the low half and
// for odd k in the high half (VDPBF16PS's element order), stored in a float32 slot.
func bf16Pair(even, odd float32) float32 {
	return math.Float32frombits(uint32(ToBF16(odd))<<16 | uint32(ToBF16(even)))
}

// DotBF16 is one VDPBF16PS lane: acc plus the products of the two bfloat16 pairs a and b (as
// bf16Pair lays them out), the odd elements first, each step a fused multiply-add rounded to
// nearest even with subnormal results flushed to zero (Intel SDM, VDPBF16PS: "DAZ, FTZ, RNE";
// MXCSR is not consulted). This is the arithmetic every bfloat16 kernel must reproduce bit for
// bit; the tests compare the assembly kernels with it.
func DotBF16(acc, a, b float32) float32 {
	ua, ub := math.Float32bits(a), math.Float32bits(b)
	acc = fmaFTZ(FromBF16(uint16(ua>>16)), FromBF16(uint16(ub>>16)), acc)
	return fmaFTZ(FromBF16(uint16(ua)), FromBF16(uint16(ub)), acc)
}

// fmaFTZ is float32 x·y + z with one rounding, the result flushed to zero if subnormal. For
// bfloat16 x and y the product is exact in float64 and so is its sum with z unless their
// exponents differ by more than 29, when z+xy rounds to the larger term in either
// precision: float32(float64 sum) is the correctly rounded float32 result.
func fmaFTZ(x, y, z float32) float32 {
	r := float32(float64(x)*float64(y) + float64(z))
	if math.Float32bits(r)&0x7f800000 == 0 {
		return math.Float32frombits(math.Float32bits(r) & 0x80000000)
	}
	return r
}

// fma32 is float32 x·y + z with one rounding (VFMADD231PS under the default MXCSR). The
// product of two float32 values is exact in float64; the sum is rounded to odd in float64
// (set the last bit when inexact) and then to float32, which gives the correctly rounded
// result since float64 carries more than 24+2 bits.
func fma32(x, y, z float32) float32 {
	p := float64(x) * float64(y)
	s := p + float64(z)
	// TwoSum: the exact rounding error of s.
	bv := s - p
	err := (p - (s - bv)) + (float64(z) - bv)
	if err != 0 && !math.IsInf(s, 0) {
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			if (err > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// packPanelsBF16 is packPanels for a bfloat16 kernel: the same panels of w rows, but each
// column word holds a pair of k values (k = p0+2q in the low half, p0+2q+1 in the high half,
// zero past p0+kc), so a panel of kc values takes (kc+1)/2 words per row.
//
// When k runs along the rows of X (kContiguous), a row converted to bfloat16 in place order is
// already its sequence of pair words, so each row is converted into scratch (grown as needed)
// and the words are moved into panels by packPanels, as float32 panels are.
func packPanelsBF16(dst, x []float32, ld int, kContiguous bool, r0, rn, p0, kc, w int, scratch *[]float32) {
	kp := (kc + 1) / 2
	if kContiguous {
		if cap(*scratch) < rn*kp {
			*scratch = make([]float32, rn*kp)
		}
		buf := (*scratch)[:rn*kp]
		if len(buf) == 0 {
			return
		}
		half := unsafe.Slice((*uint16)(unsafe.Pointer(&buf[0])), 2*len(buf))
		for i := 0; i < rn; i++ {
			row := half[2*i*kp : 2*(i+1)*kp]
			toBF16Row(row, x[(r0+i)*ld+p0:][:kc])
			if kc%2 == 1 {
				row[kc] = 0
			}
		}
		packPanels(dst, buf, kp, true, 0, rn, 0, kp, w)
		return
	}
	at := func(i, p int) float32 {
		if kContiguous {
			return x[i*ld+p]
		}
		return x[p*ld+i]
	}
	for q := 0; q < rn; q += w {
		rows := min(w, rn-q)
		d := dst[q*kp : q*kp+w*kp]
		for i := 0; i < rows; i++ {
			r := r0 + q + i
			for pp := 0; pp < kp; pp++ {
				p := p0 + 2*pp
				var odd float32
				if 2*pp+1 < kc {
					odd = at(r, p+1)
				}
				d[pp*w+i] = bf16Pair(at(r, p), odd)
			}
		}
		if rows < w {
			for pp := 0; pp < kp; pp++ {
				clear(d[pp*w+rows : pp*w+w])
			}
		}
	}
}

const bf16GenericMR, bf16GenericNR = 4, 4

// bf16GenericKernel is the portable bfloat16 kernel: DotBF16 per pair and the AVX-512
// kernels' epilogue, so that it defines their results bit for bit.
var bf16GenericKernel = &microKernel{name: "bf16-generic", mr: bf16GenericMR, nr: bf16GenericNR, run: kernelBF16Generic, bf16: true}

// kernelBF16Generic: kc counts pairs.
func kernelBF16Generic(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32) {
	ap := unsafe.Slice(a, kc*bf16GenericMR)
	bp := unsafe.Slice(b, kc*bf16GenericNR)
	var acc [bf16GenericMR][bf16GenericNR]float32
	for p := 0; p < kc; p++ {
		av := (*[4]float32)(ap[p*4:])
		bv := (*[4]float32)(bp[p*4:])
		for i := range acc {
			for j := range acc[i] {
				acc[i][j] = DotBF16(acc[i][j], av[i], bv[j])
			}
		}
	}
	epilogue(&acc, c, ldc, alpha, beta, bias)
}

// epilogue stores C = alpha·acc + bias + beta·C in the AVX-512 kernels' order and roundings:
// a multiply, an add, then a fused multiply-add with C (C is not read when beta == 0).
func epilogue(acc *[4][4]float32, c *float32, ldc int, alpha, beta float32, bias *float32) {
	var bv [4]float32
	if bias != nil {
		bv = *(*[4]float32)(unsafe.Slice(bias, 4))
	}
	cs := unsafe.Slice(c, 3*ldc+4)
	for i := range acc {
		row := (*[4]float32)(cs[i*ldc:])
		for j := range row {
			v := float32(alpha * acc[i][j])
			if bias != nil {
				v = float32(v + bv[j])
			}
			if beta != 0 {
				v = fma32(beta, row[j], v)
			}
			row[j] = v
		}
	}
}

// BF16Kernel names the bfloat16 kernel this CPU runs ("avx512bf16", or "bf16-generic", the
// slow portable definition) and, for the portable one, the CPU features it lacks.
func BF16Kernel() (name string, missing []string) {
	k := bestBF16Kernel
	if k == bf16GenericKernel {
		return k.name, missingBF16Features()
	}
	return k.name, nil
}

// PackBWith packs op(B) for GemmPacked in the given precision: PackB for Float32; for
// BFloat16 the values are rounded to bfloat16 once, here, and GemmPacked rounds op(A) when it
// packs it.
func PackBWith(prec Precision, transB bool, k, n int, b []float32, ldb int) *PackedB {
	if prec == Float32 {
		return PackB(transB, k, n, b, ldb)
	}
	if k < 0 || n < 0 {
		panic(DimensionError(fmt.Sprintf("negative dimension k=%d n=%d", k, n)))
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("B", br, bc, b, ldb)
	return packNative(bestBF16Kernel, transB, k, n, b, ldb)
}

// Precision reports the precision of the packed operand.
func (p *PackedB) Precision() Precision {
	if p.kern != nil && p.kern.bf16 {
		return BFloat16
	}
	return Float32
}

// GemmBF16 is Gemm with both operands rounded to bfloat16 as they are packed.
func GemmBF16(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	gemmPacked(bestBF16Kernel, Threads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// GemmSerialBF16 is GemmBF16 on the calling goroutine only.
func GemmSerialBF16(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	gemmPacked(bestBF16Kernel, 1, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// UsePortableBF16 makes bfloat16 products run on the portable definition (on = true) or on the
// CPU's best kernel, and returns a function that restores the previous choice: for tests that
// compare the two on whole models. Products already packed keep the kernel they were packed
// for; not safe to call during products.
func UsePortableBF16(on bool) (restore func()) {
	prev := bestBF16Kernel
	if on {
		bestBF16Kernel = bf16GenericKernel
	} else {
		bestBF16Kernel = chooseBF16Kernel()
	}
	return func() { bestBF16Kernel = prev }
}
