package sgemm

import "unsafe"

// A microKernel computes one mr×nr tile of C from a packed mr×kc panel of A
// (column after column, mr values each) and a packed kc×nr panel of B (row
// after row, nr values each): C = alpha·A·B + bias + beta·C, and when beta == 0
// it writes C without reading it. bias, nr values added to every row, may be
// nil. ldc is in elements.
type microKernel struct {
	name   string
	mr, nr int
	run    func(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)
	// runShort, if not nil, is run for only the first shortRows rows of the
	// panel (A still packed mr rows per k step), for a last panel that short.
	shortRows int
	runShort  func(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)
	// runStream, if not nil, is run with the same results as run on the
	// first pass over a pre-packed B, which comes from memory rather than
	// cache: it prefetches the B panel well ahead.
	runStream func(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)
	// bf16 kernels take panels of bfloat16 pairs (packPanelsBF16) and count kc in pairs.
	bf16 bool
}

// packedLen is how many 32-bit words a panel row of kc values of k takes for this kernel.
func (k *microKernel) packedLen(kc int) int {
	if k.bf16 {
		return (kc + 1) / 2
	}
	return kc
}

// kUnit is the granularity of k blocks: a bfloat16 pair never straddles two blocks.
func (k *microKernel) kUnit() int {
	if k.bf16 {
		return 2
	}
	return 1
}

// pack packs panels of X for this kernel (see packPanels); scratch is a reusable buffer for
// the bfloat16 conversion.
func (k *microKernel) pack(dst, x []float32, ld int, kContiguous bool, r0, rn, p0, kc, w int, scratch *[]float32) {
	if k.bf16 {
		packPanelsBF16(dst, x, ld, kContiguous, r0, rn, p0, kc, w, scratch)
		return
	}
	packPanels(dst, x, ld, kContiguous, r0, rn, p0, kc, w)
}

const genericMR, genericNR = 4, 4

var genericKernel = &microKernel{name: "generic", mr: genericMR, nr: genericNR, run: kernelGeneric}

// kernelGeneric is the portable micro-kernel: a 4×4 block held in sixteen
// scalar locals, which the compiler keeps in registers.
func kernelGeneric(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32) {
	ap := unsafe.Slice(a, kc*genericMR)
	bp := unsafe.Slice(b, kc*genericNR)
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < kc; p++ {
		av := (*[4]float32)(ap[p*4:])
		bv := (*[4]float32)(bp[p*4:])
		a0, a1, a2, a3 := av[0], av[1], av[2], av[3]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	acc := [4][4]float32{{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}}
	var bv [4]float32
	if bias != nil {
		bv = *(*[4]float32)(unsafe.Slice(bias, 4))
	}
	cs := unsafe.Slice(c, 3*ldc+4)
	for i := range acc {
		row := (*[4]float32)(cs[i*ldc:])
		for j := range row {
			// The assembly kernels' order: alpha·acc, then + bias, then + beta·C (which they
			// fuse into one rounding; here the float32 conversion forbids fusing).
			v := float32(alpha * acc[i][j])
			if bias != nil {
				v += bv[j]
			}
			if beta != 0 {
				v += float32(beta * row[j])
			}
			row[j] = v
		}
	}
}
