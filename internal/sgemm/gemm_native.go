//go:build !openblas

package sgemm

// Kernel names the implementation Gemm uses: "avx512", "avx2", "generic" or "openblas".
func Kernel() string { return bestKernel.name }

func gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemmPacked(bestKernel, Threads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SerialScales reports whether GemmSerial calls on several goroutines at once use the cores
// well: true for our kernels, false for OpenBLAS, whose own thread pool would be oversubscribed.
const SerialScales = true

func gemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemmPacked(bestKernel, 1, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func setBackendThreads(int) {}

func packB(kern *microKernel, transB bool, k, n int, b []float32, ldb int) *PackedB {
	return packNative(kern, transB, k, n, b, ldb)
}

func gemmWithPacked(m int, alpha float32, a []float32, lda int, transA bool, pb *PackedB, bias []float32, beta float32, c []float32, ldc int) {
	gemmPrepacked(Threads(), m, alpha, a, lda, transA, pb, bias, beta, c, ldc)
}
