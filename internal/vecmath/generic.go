package vecmath

import "math"

// The portable implementation. The assembly kernels evaluate the same formulas, with fused
// multiply-adds where these use a multiply and an add.

var goKernels = &kernels{name: "go", width: 1}

func expShiftSumGo(dst, src []float32, shift float32, acc *[8]float64) {
	var s float64
	for i, v := range src {
		e := exp32(v - shift)
		dst[i] = e
		s += float64(e)
	}
	acc[0] += s
}

func maxGo(x []float32, acc *[16]float32) {
	m := acc[0]
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	acc[0] = m
}

func scaleGo(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

func geluGo(dst, src []float32) {
	for i, v := range src {
		dst[i] = gelu32(v)
	}
}

func sumGo(x []float32, acc *[8]float64) {
	for _, v := range x {
		acc[0] += float64(v)
	}
}

func sumSqDevGo(x []float32, mean float64, acc *[8]float64) {
	for _, v := range x {
		d := float64(v) - mean
		acc[0] += d * d
	}
}

func normalizeGo(dst, src, w, b []float32, mean, inv float64) {
	for i, v := range src {
		dst[i] = float32((float64(v)-mean)*inv)*w[i] + b[i]
	}
}

// Constants of exp32. ln2 is split so that n·ln2Hi is exact for |n| < 2⁸ (ln2Hi has 9 significant
// bits); the polynomial is Cephes' expf minimax fit of (eʳ-1-r)/r² on |r| ≤ ln2/2.
const (
	roundMagic = 1.5 * (1 << 23)
	expLo      = -105 // exp(-105) rounds to 0 in float32
	expHi      = 89   // exp(89) overflows to +Inf
	log2e      = 1.44269504088896341
	ln2Hi      = 0.693359375
	ln2Lo      = -2.12194440e-4
	expP0      = 5.0000001201e-1
	expP1      = 1.6666665459e-1
	expP2      = 4.1665795894e-2
	expP3      = 8.3334519073e-3
	expP4      = 1.3981999507e-3
	expP5      = 1.9875691500e-4
)

// exp32 is eˣ in float32 to about 1 ulp: x = n·ln2 + r with n = round(x·log2e), eʳ from the
// polynomial, and 2ⁿ applied in two halves so that subnormal results are rounded once and
// overflow gives +Inf (VSCALEFPS does the same in one instruction).
func exp32(x float32) float32 {
	y, k := expParts(x, 0)
	return scale2(y, k)
}

// expParts splits e^(x+δ) into y·2ᵏ with y in [½√2, √2], for a δ too small to change the
// reduction: δ is added to the reduced argument, where it costs no extra rounding of the result.
func expParts(x, δ float32) (y float32, k int32) {
	x = min(max(x, expLo), expHi) // NaN stays NaN
	// Adding and removing 1.5·2²³ rounds to the nearest integer (ties to even), as VRNDSCALEPS
	// does, for |x·log2e| < 2²²; the explicit conversions keep the two steps separate.
	n := float32(float32(x*log2e)+roundMagic) - roundMagic
	r := x - n*ln2Hi
	r = r - n*ln2Lo
	r = r + δ
	p := float32(expP5)
	p = p*r + expP4
	p = p*r + expP3
	p = p*r + expP2
	p = p*r + expP1
	p = p*r + expP0
	return p*(r*r) + r + 1, int32(n)
}

// scale2 is y·2ᵏ for |k| ≤ 152, rounded once: the first half-step is exact for y near 1.
func scale2(y float32, k int32) float32 {
	k1 := k >> 1
	return y * math.Float32frombits(uint32(k1+127)<<23) * math.Float32frombits(uint32(k-k1+127)<<23)
}

// Constants of gelu32. Near zero, erf(z) = z·A(z²); elsewhere erfc(t) = e^(-t²)·F(s) with
// s = 1/(1+t). A and F are minimax fits (relative error 1.5e-9 on |z| ≤ 0.5 and 1.2e-8 on
// 0.5 ≤ t ≤ 11) with float32 coefficients, made by fit_erf.go.
const (
	sqrtHalf  = 0.70710678118654752
	geluSplit = 0.70710678 // |x| below which GELU uses the erf polynomial (|z| < ½)
	geluClamp = 15.556     // |x| = 11√2: beyond it erfc(|z|) underflows whatever the sign
)

var (
	erfA  = [...]float32{1.12837911, -0.376118481, 0.112675294, -0.0257745814, 0.00274717784}
	erfcF = [...]float32{2.03743821e-06, 0.564093888, 0.566065192, 0.262249172, -0.161431015,
		-1.0958786, 0.147991583, 4.16781664, -7.13966417, 5.11178589, -1.42877364}
)

// gelu32 is x·Φ(x). Φ is ½(1+erf(z)) near zero (no cancellation there) and ½·erfc(|z|) or
// 1-½·erfc(|z|) elsewhere, so that the negative tail keeps its relative accuracy. e^(-x²/2) is
// computed from x itself, with the rounding error of x² fed back, because a rounded x/√2 squared
// would cost 2t²·6e-8 relative at t = |z|.
func gelu32(x float32) float32 {
	h := 0.5 * x
	if x > -geluSplit && x < geluSplit {
		z := x * sqrtHalf
		u := z * z
		a := erfA[4]
		a = a*u + erfA[3]
		a = a*u + erfA[2]
		a = a*u + erfA[1]
		a = a*u + erfA[0]
		return h*(z*a) + h
	}
	xc := min(max(x, -geluClamp), geluClamp)
	// s = 1/(1+t), t = |z|, with 1+t rounded once (the product is exact in float64).
	s := 1 / float32(math.FMA(float64(abs32(xc)), float64(float32(sqrtHalf)), 1))
	f := erfcF[10]
	for k := 9; k >= 0; k-- {
		f = f*s + erfcF[k]
	}
	hi := xc * xc
	lo := float32(math.FMA(float64(xc), float64(xc), -float64(hi))) // x² = hi + lo exactly
	y, k := expParts(-0.5*hi, -0.5*lo)
	// ½·erfc(|z|) = 2ᵏ·m; the power of two is applied last so that a subnormal result is
	// rounded once.
	m := 0.5 * f * y
	if x < 0 {
		// Past the clamp the result underflows to -0, except -Inf, which gives NaN as the
		// formula x·½(1+erf(x/√2)) does in PyTorch: hence the + 0·x.
		return scale2(xc*m, k) + 0*x
	}
	return x * (1 - scale2(m, k))
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }
