//go:build !amd64 || purego

package vecmath

func available() []*kernels { return []*kernels{goKernels} }

func (k *kernels) expShiftSum(dst, src []float32, shift float32, acc *[8]float64) {
	expShiftSumGo(dst, src, shift, acc)
}
func (k *kernels) max(x []float32, acc *[16]float32)                   { maxGo(x, acc) }
func (k *kernels) scale(x []float32, s float32)                        { scaleGo(x, s) }
func (k *kernels) gelu(dst, src []float32)                             { geluGo(dst, src) }
func (k *kernels) sum(x []float32, acc *[8]float64)                    { sumGo(x, acc) }
func (k *kernels) sumSqDev(x []float32, mean float64, acc *[8]float64) { sumSqDevGo(x, mean, acc) }
func (k *kernels) normalize(dst, src, w, b []float32, mean, inv float64) {
	normalizeGo(dst, src, w, b, mean, inv)
}
func (k *kernels) gridCombine(dst, s []float32, x *[4][]float32, rowTerm, colTerm []float32, c *[4]float32) bool {
	return false
}
func (k *kernels) gridMarginals(e, r []float32, x *[4][]float32, rowSum, col []float64, lanes *[32]float64) bool {
	return false
}
