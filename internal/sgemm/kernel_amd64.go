//go:build amd64 && !purego

package sgemm

import (
	"os"

	"golang.org/x/sys/cpu"
)

//go:noescape
func kernelAVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)

//go:noescape
func kernelAVX512Stream(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)

//go:noescape
func kernelAVX512Short8(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)

//go:noescape
func kernelBF16AVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)

//go:noescape
func kernelBF16AVX512Stream(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)

//go:noescape
func kernelBF16AVX512Short8(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)

//go:noescape
func kernelAVX2(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)

var (
	avx512Kernel = &microKernel{name: "avx512", mr: 14, nr: 32, run: kernelAVX512, shortRows: 8, runShort: kernelAVX512Short8, runStream: kernelAVX512Stream}
	avx2Kernel   = &microKernel{name: "avx2", mr: 6, nr: 16, run: kernelAVX2}

	bf16AVX512Kernel = &microKernel{name: "avx512bf16", mr: 14, nr: 32, run: kernelBF16AVX512, shortRows: 8, runShort: kernelBF16AVX512Short8, runStream: kernelBF16AVX512Stream, bf16: true}
)

// bestBF16Kernel runs VDPBF16PS where the CPU has AVX-512 BF16, else the portable definition;
// PERCEIVERKIT_KERNEL=generic selects the portable one.
var bestBF16Kernel = chooseBF16Kernel()

//go:noescape
func cvtBF16AVX512(dst *uint16, src *float32, n int)

var haveCvtBF16 = cpu.X86.HasAVX512BF16 && cpu.X86.HasAVX512F

// toBF16Row sets dst[i] = ToBF16(src[i]) (len(dst) ≥ len(src)), 16 at a time with
// VCVTNEPS2BF16 where the CPU has it.
func toBF16Row(dst []uint16, src []float32) {
	n := 0
	if haveCvtBF16 && len(src) >= 16 {
		n = len(src) &^ 15
		_ = dst[n-1]
		cvtBF16AVX512(&dst[0], &src[0], n)
	}
	for i := n; i < len(src); i++ {
		dst[i] = ToBF16(src[i])
	}
}

func chooseBF16Kernel() *microKernel {
	if cpu.X86.HasAVX512BF16 && cpu.X86.HasAVX512F && os.Getenv("PERCEIVERKIT_KERNEL") != "generic" && os.Getenv("PERCEIVERKIT_KERNEL") != "go" {
		return bf16AVX512Kernel
	}
	return bf16GenericKernel
}

func missingBF16Features() []string {
	var m []string
	if !cpu.X86.HasAVX512BF16 {
		m = append(m, "avx512_bf16")
	}
	if !cpu.X86.HasAMXBF16 {
		m = append(m, "amx_bf16")
	}
	return m
}

// availableKernels lists the kernels this CPU can run, best first.
func availableKernels() []*microKernel {
	var ks []*microKernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, genericKernel)
}

// bestKernel is the best kernel the CPU runs, or the one PERCEIVERKIT_KERNEL names (avx512,
// avx2 or generic) if the CPU runs it: to measure the AVX2 path on an AVX-512 machine.
var bestKernel = chooseKernel(availableKernels())

func chooseKernel(ks []*microKernel) *microKernel {
	want := os.Getenv("PERCEIVERKIT_KERNEL")
	if want == "go" {
		want = "generic"
	}
	for _, k := range ks {
		if k.name == want {
			return k
		}
	}
	return ks[0]
}
