//go:build amd64 && !purego

package sgemm

import "golang.org/x/sys/cpu"

//go:noescape
func transpose8x8(dst *float32, ldd int, src *float32, lds int, blocks int)

var haveAVX = cpu.X86.HasAVX

// transposeRows8 writes d[p·w+i] = X(r+i, p0+p) for i < 8, p < kc, where
// X(i, p) = x[i·ld+p], using 8×8 register transposes for whole blocks of
// columns. It reports false when it cannot (no AVX), leaving the work to the caller.
func transposeRows8(d []float32, w int, x []float32, ld, r, p0, kc int) bool {
	if !haveAVX {
		return false
	}
	blocks := kc / 8
	if blocks > 0 {
		// Bounds: the last source element read is X(r+7, p0+8·blocks-1) and the
		// last destination element written is d[(8·blocks-1)·w+7].
		_ = x[(r+7)*ld+p0+8*blocks-1]
		_ = d[(8*blocks-1)*w+7]
		transpose8x8(&d[0], w, &x[r*ld+p0], ld, blocks)
	}
	for p := 8 * blocks; p < kc; p++ {
		for i := 0; i < 8; i++ {
			d[p*w+i] = x[(r+i)*ld+p0+p]
		}
	}
	return true
}
