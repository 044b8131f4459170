//go:build amd64 && !purego

package sgemm

// fmaPeakAVX512 runs iters × 512 float32 flops of independent FMAs (benchmarks only).
//
//go:noescape
func fmaPeakAVX512(iters int)
