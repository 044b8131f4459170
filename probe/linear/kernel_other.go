//go:build !amd64

package linear

var useFMA = false // a var so tests can switch kernels on every platform

func dot4FMA(x0, x1, x2, x3, w *float64, n int, out *[4]float64) {
	panic("linear: dot4FMA without amd64")
}

func axpy4FMA(out *float64, a *[4]float64, x0, x1, x2, x3 *float64, n int) {
	panic("linear: axpy4FMA without amd64")
}
