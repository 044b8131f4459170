package sgemm

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// DimensionError is the panic value for bad dimensions, strides or slices
// too short for the matrices they are said to hold.
type DimensionError string

func (e DimensionError) Error() string { return "sgemm: " + string(e) }

// threads is the number of goroutines a large product is split over; 0 means
// runtime.GOMAXPROCS(0) at call time.
var threads atomic.Int64

// SetThreads sets how many goroutines one large Gemm call may use.
// n < 1 restores the default, runtime.GOMAXPROCS(0).
func SetThreads(n int) {
	if n < 1 {
		n = 0
	}
	threads.Store(int64(n))
	setBackendThreads(Threads())
}

// Threads reports the number of goroutines one large Gemm call may use.
func Threads() int {
	if n := threads.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C on row-major matrices, where op(X) is X or Xᵀ.
// op(A) is m×k, op(B) is k×n, C is m×n; lda, ldb, ldc are the row strides of A, B, C as stored.
// It panics with a DimensionError if a dimension is negative, a stride is smaller than
// the stored row, or a slice is too short.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// GemmSerial is Gemm on the calling goroutine only, for callers that already spread independent
// products over the cores (for example one attention head per goroutine).
func GemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	gemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// checkGemm validates the arguments with BLAS's rules for row-major storage.
func checkGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(DimensionError(fmt.Sprintf("negative dimension m=%d n=%d k=%d", m, n, k)))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("A", ar, ac, a, lda)
	checkMatrix("B", br, bc, b, ldb)
	checkMatrix("C", m, n, c, ldc)
}

func checkMatrix(name string, rows, cols int, x []float32, ld int) {
	if ld < max(1, cols) {
		panic(DimensionError(fmt.Sprintf("ld%s=%d is less than the %d columns of %s", lower(name), ld, cols, name)))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(DimensionError(fmt.Sprintf("%s has %d elements, a %d×%d matrix with stride %d needs %d", name, len(x), rows, cols, ld, need)))
	}
}

func lower(s string) string { return string(rune(s[0]) + 'a' - 'A') }
