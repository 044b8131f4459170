//go:build !amd64 || purego

package sgemm

func availableKernels() []*microKernel { return []*microKernel{genericKernel} }

var bestKernel = genericKernel

var bestBF16Kernel = bf16GenericKernel

func toBF16Row(dst []uint16, src []float32) {
	for i, v := range src {
		dst[i] = ToBF16(v)
	}
}

func missingBF16Features() []string { return []string{"avx512_bf16", "amx_bf16"} }

func transposeRows8(d []float32, w int, x []float32, ld, r, p0, kc int) bool { return false }

func chooseBF16Kernel() *microKernel { return bf16GenericKernel }
