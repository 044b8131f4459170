package linear

import "golang.org/x/sys/cpu"

// useFMA selects the AVX2+FMA kernels; they round differently from the portable loops (fused
// multiply-adds), so results are reproducible per instruction set, not across them.
var useFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dot4FMA(x0, x1, x2, x3, w *float64, n int, out *[4]float64)

//go:noescape
func axpy4FMA(out *float64, a *[4]float64, x0, x1, x2, x3 *float64, n int)
