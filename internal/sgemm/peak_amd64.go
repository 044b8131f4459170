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

// cpuid0 returns the vendor words of CPUID leaf 0 (EBX, EDX, ECX).
//
//go:noescape
func cpuid0(ebx, edx, ecx *uint32)

// cpuVendor is the CPU's vendor string, such as "GenuineIntel" or "AuthenticAMD".
func cpuVendor() string {
	var b, d, c uint32
	cpuid0(&b, &d, &c)
	var s [12]byte
	for i, w := range [3]uint32{b, d, c} {
		s[4*i], s[4*i+1], s[4*i+2], s[4*i+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	}
	return string(s[:])
}
