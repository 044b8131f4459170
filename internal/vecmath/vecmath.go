package vecmath

import (
	"fmt"
	"math"
	"os"
)

// LengthError is the panic value of a kernel called with slices of mismatched lengths: a
// programming error, never a data error.
type LengthError string

func (e LengthError) Error() string { return string(e) }

// lengthPanic reports mismatched slice lengths; called only on the failing branch, so that the
// kernels' hot paths build no argument slices.
func lengthPanic(kernel, names string, lens ...int) {
	panic(LengthError(fmt.Sprintf("vecmath.%s: %s have lengths %v, want them equal", kernel, names, lens)))
}

// kernels names one implementation of the bulk loops; its methods (impl_*.go) dispatch with a
// switch rather than through function values, so that the accumulators passed by pointer stay on
// the caller's stack. Each method handles a prefix whose length is a multiple of width and leaves
// the rest to the Go code of the public functions. expShiftSum, sum and sumSqDev add into the
// float64 lanes of acc, which the caller sums; max folds into the lanes of acc, ignoring NaNs.
type kernels struct {
	name  string
	width int
}

// impl is the fastest implementation the CPU supports, or the one PERCEIVERKIT_KERNEL names
// (avx512, avx2 or go) if the CPU runs it; tests swap it to check the others.
var impl = chooseImpl(available())

func chooseImpl(ks []*kernels) *kernels {
	want := os.Getenv("PERCEIVERKIT_KERNEL")
	if want == "generic" {
		want = "go"
	}
	for _, k := range ks {
		if k.name == want {
			return k
		}
	}
	return ks[0]
}

// Implementation names the kernels in use: "avx512", "avx2" or "go".
func Implementation() string { return impl.name }

// ExpShiftSum writes dst[i] = exp(src[i]-shift), the difference taken in float32 as a scalar loop
// would, and returns Σ dst[i], summed in float64. dst may be src itself. With shift = Max(src) it is the numerator and denominator of a softmax: every
// exponent is ≤ 0, -Inf scores give 0, and a NaN makes its element and the sum NaN.
func ExpShiftSum(dst, src []float32, shift float32) float64 {
	if len(dst) != len(src) {
		lengthPanic("ExpShiftSum", "dst, src", len(dst), len(src))
	}
	var acc [8]float64
	n := len(src) &^ (impl.width - 1)
	if n > 0 {
		impl.expShiftSum(dst[:n], src[:n], shift, &acc)
	}
	s := sumLanes(&acc)
	for i := n; i < len(src); i++ {
		e := exp32(src[i] - shift)
		dst[i] = e
		s += float64(e)
	}
	return s
}

// Max returns the largest element of x, ignoring NaNs (as a loop of `if v > m` does); -Inf if x is
// empty or all NaN. Which zero is returned when +0 and -0 tie for the maximum is unspecified.
func Max(x []float32) float32 {
	m := float32(math.Inf(-1))
	n := len(x) &^ (impl.width - 1)
	if n > 0 {
		acc := [16]float32{}
		for i := range acc {
			acc[i] = m
		}
		impl.max(x[:n], &acc)
		for _, v := range acc {
			if v > m {
				m = v
			}
		}
	}
	for _, v := range x[n:] {
		if v > m {
			m = v
		}
	}
	return m
}

// Scale multiplies x by s in place.
func Scale(x []float32, s float32) {
	n := len(x) &^ (impl.width - 1)
	if n > 0 {
		impl.scale(x[:n], s)
	}
	for i := n; i < len(x); i++ {
		x[i] *= s
	}
}

// GELU writes the exact (erf) GELU of src into dst: dst[i] = x·Φ(x) = x·½(1+erf(x/√2)), as
// PyTorch's nn.GELU() with approximate="none". dst may be src itself.
func GELU(dst, src []float32) {
	if len(dst) != len(src) {
		lengthPanic("GELU", "dst, src", len(dst), len(src))
	}
	n := len(src) &^ (impl.width - 1)
	if n > 0 {
		impl.gelu(dst[:n], src[:n])
	}
	for i := n; i < len(src); i++ {
		dst[i] = gelu32(src[i])
	}
}

// LayerNormRow writes (src-mean)/√(var+eps)·w + b into dst, with the row's mean and (biased)
// variance computed in float64 over two passes, as torch.nn.LayerNorm over the last dimension.
// dst may be src itself. An empty row is left alone.
func LayerNormRow(dst, src, w, b []float32, eps float32) {
	if n := len(src); len(dst) != n || len(w) != n || len(b) != n {
		lengthPanic("LayerNormRow", "dst, src, w, b", len(dst), n, len(w), len(b))
	}
	if len(src) == 0 {
		return
	}
	n := len(src) &^ (impl.width - 1)
	var acc [8]float64
	if n > 0 {
		impl.sum(src[:n], &acc)
	}
	s := sumLanes(&acc)
	for _, v := range src[n:] {
		s += float64(v)
	}
	mean := s / float64(len(src))
	acc = [8]float64{}
	if n > 0 {
		impl.sumSqDev(src[:n], mean, &acc)
	}
	ss := sumLanes(&acc)
	for _, v := range src[n:] {
		d := float64(v) - mean
		ss += d * d
	}
	inv := 1 / math.Sqrt(ss/float64(len(src))+float64(eps))
	if n > 0 {
		impl.normalize(dst[:n], src[:n], w[:n], b[:n], mean, inv)
	}
	for i := n; i < len(src); i++ {
		dst[i] = float32((float64(src[i])-mean)*inv)*w[i] + b[i]
	}
}

func sumLanes(acc *[8]float64) float64 {
	return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}
