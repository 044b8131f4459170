//go:build !amd64 || purego

package sgemm

func availableKernels() []*microKernel { return []*microKernel{genericKernel} }

var bestKernel = genericKernel

func transposeRows8(d []float32, w int, x []float32, ld, r, p0, kc int) bool { return false }
