package sgemm

import "fmt"

// PackedB is a right-hand operand op(B) packed once into the panel layout the
// native driver packs op(B) into on every call: for each kc block of k, all n
// columns as nr-column panels. A Linear layer's weights are multiplied by
// every input, so packing them once saves reading and rearranging k·n floats
// per product. A PackedB is read-only after PackB and safe for concurrent use.
//
// With the openblas build tag, PackedB keeps a reference to B and GemmPacked
// calls cblas_sgemm: OpenBLAS packs on its own.
type PackedB struct {
	k, n int
	// Native layout: block q of kc rows of op(B) (kc = blk except perhaps the
	// last) starts at data[q·blk·np], np = n rounded up to nr; within it the
	// panel of columns j…j+nr-1 starts at j·kc, as packPanels writes it.
	kern *microKernel
	blk  int
	data []float32
	// OpenBLAS: the operand as given.
	transB bool
	b      []float32
	ldb    int
}

// K and N are the dimensions of op(B): k×n.
func (p *PackedB) K() int { return p.k }
func (p *PackedB) N() int { return p.n }

// PackB packs op(B), k×n, for GemmPacked; transB and ldb mean what they mean
// for Gemm. It panics with a DimensionError on bad dimensions or a short slice.
func PackB(transB bool, k, n int, b []float32, ldb int) *PackedB {
	if k < 0 || n < 0 {
		panic(DimensionError(fmt.Sprintf("negative dimension k=%d n=%d", k, n)))
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("B", br, bc, b, ldb)
	return packB(bestKernel, transB, k, n, b, ldb)
}

// packNative packs op(B) for kern with the current kcTarget.
func packNative(kern *microKernel, transB bool, k, n int, b []float32, ldb int) *PackedB {
	p := &PackedB{k: k, n: n, kern: kern}
	if k == 0 || n == 0 {
		return p
	}
	// The same kc blocks as the driver uses for the whole k range, so that
	// sums run in the same order as Gemm's.
	p.blk = blockSize(k, kcTarget, kern.kUnit())
	np := roundUp(n, kern.nr)
	p.data = make([]float32, np*kern.packedLen(k))
	var scratch []float32
	for pc := 0; pc < k; pc += p.blk {
		kc := min(p.blk, k-pc)
		off := np * kern.packedLen(pc) // blocks before pc are whole pairs
		kern.pack(p.data[off:off+np*kern.packedLen(kc)], b, ldb, transB, 0, n, pc, kc, kern.nr, &scratch)
	}
	return p
}

// block returns the packed panels of columns jc… (a multiple of nr) for the
// kc-row block starting at row pc of op(B).
func (p *PackedB) block(jc, pc, kc int) []float32 {
	np := roundUp(p.n, p.kern.nr)
	off, kw := np*p.kern.packedLen(pc), p.kern.packedLen(kc)
	return p.data[off+jc*kw : off+np*kw]
}

// GemmPacked computes C = alpha·op(A)·B + bias + beta·C where B was packed by
// PackB: op(A) is m×k, C is m×n, and bias, if not nil, holds n values added to
// every row (a Linear layer's bias, applied in the kernel's epilogue rather
// than by a pass over C). Each element rounds as (alpha·AB + bias) + beta·C
// whatever the k blocking (with several k blocks, bias and beta·C join after
// the last one), so a layer's output plus a residual already in C (beta = 1)
// rounds as PyTorch's (x·Wᵀ + b) + residual. Without a bias and with the same operands
// it returns bit for bit what Gemm returns, except when Gemm would split the k
// range over goroutines (k ≥ 2·kc and a thin product), where the sums are
// grouped differently. It panics with a DimensionError on bad dimensions,
// strides or slices.
func GemmPacked(m int, alpha float32, a []float32, lda int, transA bool, pb *PackedB, bias []float32, beta float32, c []float32, ldc int) {
	if m < 0 {
		panic(DimensionError(fmt.Sprintf("negative dimension m=%d", m)))
	}
	ar, ac := m, pb.k
	if transA {
		ar, ac = pb.k, m
	}
	checkMatrix("A", ar, ac, a, lda)
	checkMatrix("C", m, pb.n, c, ldc)
	if bias != nil && len(bias) != pb.n {
		panic(DimensionError(fmt.Sprintf("bias has %d values, want n=%d", len(bias), pb.n)))
	}
	if pb.Precision() == BFloat16 {
		// Native kernels under every build tag: OpenBLAS has no bfloat16 product.
		gemmPrepacked(Threads(), m, alpha, a, lda, transA, pb, bias, beta, c, ldc)
		return
	}
	gemmWithPacked(m, alpha, a, lda, transA, pb, bias, beta, c, ldc)
}
