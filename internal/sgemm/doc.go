// Package sgemm multiplies float32 matrices: C = alpha·op(A)·op(B) + beta·C.
//
// Conventions: matrices are row-major; lda, ldb and ldc are the row strides of
// A, B and C as stored. op(X) is X or Xᵀ, op(A) is m×k, op(B) is k×n and C is
// m×n. A Linear layer with weights stored [out, in] (PyTorch's layout) is
// y = x·Wᵀ, that is Gemm(false, true, …).
//
// As in BLAS, beta == 0 overwrites C without reading it (NaNs in C do not
// propagate), and alpha == 0 or k == 0 only scales C by beta without reading
// A or B.
//
// The implementation packs panels of op(A) and op(B) into contiguous buffers
// (Goto/BLIS blocking) and runs a register-blocked micro-kernel over them:
// AVX-512 (14×32) or AVX2+FMA (6×16) in Go assembly, chosen at run time from
// the CPU features, or a portable Go kernel. Large products are split along
// M, N or K, whichever duplicates the least packing, over up to Threads()
// goroutines: the caller and long-lived helpers, each share going to a helper
// only if one is idle (so concurrent calls do not oversubscribe the cores);
// small products run on the calling goroutine. A helper stays awake (yielding
// its core to any other goroutine) for 200 µs after a task, so that runs of
// products do not pay a thread wake-up each. Packing buffers and task lists
// are pooled, so steady-state calls do not allocate, and Gemm is safe for
// concurrent use.
//
// PackB packs op(B) once (a layer's weights) and GemmPacked multiplies by it
// with the same threading and the same bits as Gemm, minus the per-call
// packing of B (under openblas it keeps B and calls cblas).
//
// Build tags: `purego` forces the portable Go kernel; `openblas` (needs cgo
// and libopenblas-dev) routes Gemm to OpenBLAS's cblas_sgemm.
//
// Bad dimensions, strides or short slices are programmer errors: Gemm panics
// with a DimensionError.
package sgemm

//go:generate go run gen_kernels.go
