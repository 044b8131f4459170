// Package vecmath holds the element-wise float32 kernels of the model's hot loops: the exponentials
// of softmax, the exact-erf GELU and LayerNorm rows, in AVX-512 or AVX2+FMA Go assembly chosen at
// run time from the CPU features (golang.org/x/sys/cpu), with a portable Go fallback that computes
// the same formulas. The `purego` build tag forces the fallback.
//
// Conventions: slices are contiguous float32 vectors; a kernel's output comes first, may be the
// same slice as its input (in place) but must not otherwise overlap it, and is written over its
// whole length. Kernels do not allocate. Mismatched lengths are programmer errors and panic with a
// LengthError.
//
// Accuracy (measured by the tests against float64 references; see vecmath_test.go):
//   - ExpShiftSum: exp of the float32 difference src-shift to 0.7 ulp (Cephes' expf polynomial,
//     exact 2ⁿ scaling, subnormal results rounded once), 0 below -103.97, +Inf above 88.72, NaN
//     kept. Sums accumulate in float64 lanes (two conversions and two adds per 16 values): a
//     50,176-term encoder softmax row is summed to float64 accuracy, where float32 lanes of ~3,000
//     terms each would carry a rounding error bound of ~2e-4 (typically ~3e-6).
//   - GELU: exact-erf x·Φ(x), Φ from ½(1+erf) near zero and ½·erfc elsewhere (so the negative
//     tail keeps relative accuracy, unlike the literal formula): ≤ 2.8 ulp relative (2.9 for the Go
//     fallback), ≤ 3.9e-7 absolute on [-10, 10]; subnormal results to one subnormal step.
//   - LayerNormRow: mean and variance in float64 (two passes), as the previous scalar code did.
package vecmath
