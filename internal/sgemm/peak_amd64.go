//go:build amd64 && !purego

package sgemm

// fmaPeakAVX512 runs iters × 512 float32 flops of independent FMAs (benchmarks only).
//
//go:noescape
func fmaPeakAVX512(iters int)

// fmaPeakAVX2 runs iters × 192 float32 flops of independent FMAs (benchmarks and Peak only).
//
//go:noescape
func fmaPeakAVX2(iters int)

// peakLoop returns the FMA loop of a kernel and the flops of one of its iterations.
func peakLoop(kernel string) (func(int), float64) {
	switch kernel {
	case "avx512":
		return fmaPeakAVX512, 512
	case "avx2":
		return fmaPeakAVX2, 192
	}
	return nil, 0
}
