//go:build openblas

package sgemm

import "github.com/perceiverkit/perceiver/internal/sgemm/cblas"

// OpenBLAS is called through our own small cgo binding (package cblas) rather
// than gonum.org/v1/netlib: one function is needed, which avoids a new module
// dependency and a second layer of argument checks.

// Kernel names the implementation Gemm uses: "avx512", "avx2", "generic" or "openblas".
func Kernel() string { return "openblas" }

func setBackendThreads(n int) { cblas.SetThreads(n) }

func gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		// BLAS semantics, without handing OpenBLAS empty A or B slices.
		scaleC(c, ldc, 0, m, 0, n, beta)
		return
	}
	cblas.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SerialScales reports whether GemmSerial calls on several goroutines at once use the cores
// well: true for our kernels, false for OpenBLAS, whose own thread pool would be oversubscribed.
const SerialScales = false

// gemmSerial leaves threading to OpenBLAS, whose thread count is global.
func gemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// packB keeps B as given: OpenBLAS packs it on each call.
func packB(_ *microKernel, transB bool, k, n int, b []float32, ldb int) *PackedB {
	return &PackedB{k: k, n: n, transB: transB, b: b, ldb: ldb}
}

// gemmWithPacked rounds as the native kernels do, (alpha·AB + bias) + beta·C: with beta == 0 the
// bias is C's starting value; otherwise the biased product is formed aside, then added.
func gemmWithPacked(m int, alpha float32, a []float32, lda int, transA bool, pb *PackedB, bias []float32, beta float32, c []float32, ldc int) {
	n := pb.n
	if bias == nil || m == 0 || n == 0 {
		gemm(transA, pb.transB, m, n, pb.k, alpha, a, lda, pb.b, pb.ldb, beta, c, ldc)
		return
	}
	if beta == 0 {
		for i := 0; i < m; i++ {
			copy(c[i*ldc:i*ldc+n], bias)
		}
		gemm(transA, pb.transB, m, n, pb.k, alpha, a, lda, pb.b, pb.ldb, 1, c, ldc)
		return
	}
	w := wsPool.Get().(*workspace)
	tmp := aligned(&w.partRaw, m*n)
	for i := 0; i < m; i++ {
		copy(tmp[i*n:i*n+n], bias)
	}
	gemm(transA, pb.transB, m, n, pb.k, alpha, a, lda, pb.b, pb.ldb, 1, tmp, n)
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j, v := range tmp[i*n : i*n+n] {
			row[j] = beta*row[j] + v
		}
	}
	wsPool.Put(w)
}
