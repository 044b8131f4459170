package sgemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The bfloat16 path has two references:
//   - the portable kernel (DotBF16 per pair, the AVX-512 epilogue) defines the arithmetic: the
//     machine's bfloat16 kernels must equal it bit for bit (the tests skip, naming the missing
//     instruction, where the CPU has none);
//   - a float64 triple loop over the bfloat16-rounded operands bounds the portable kernel's
//     float32 accumulation error, γ(k+2)·Σ|a·b| as for float32 (sgemm_test.go).

// bf16Kernels lists the bfloat16 kernels this CPU runs besides the portable one.
func bf16Kernels(t *testing.T) []*microKernel {
	t.Helper()
	if bestBF16Kernel == bf16GenericKernel {
		t.Skipf("this CPU lacks %v: only the portable bfloat16 kernel runs", missingBF16Features())
	}
	return []*microKernel{bestBF16Kernel}
}

func TestToBF16(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{math.Float32frombits(0x3f808000), 0x3f80}, // a tie: to even (down)
		{math.Float32frombits(0x3f818000), 0x3f82}, // a tie: to even (up)
		{math.Float32frombits(0x3f808001), 0x3f81}, // above the tie
		{math.Float32frombits(0x7f7fffff), 0x7f80}, // the largest float32 rounds to +Inf
		{float32(math.Inf(-1)), 0xff80},
		{math.Float32frombits(0x00400000), 0x0000}, // subnormal: zero
		{math.Float32frombits(0x80000001), 0x8000}, // subnormal: zero of its sign
		{math.Float32frombits(0x007fffff), 0x0000}, // subnormal input: zero (DAZ), not rounded up
		{math.Float32frombits(0x7fc00001), 0x7fc0}, // quiet NaN stays NaN
		{math.Float32frombits(0x7f800001), 0x7fc0}, // signalling NaN becomes quiet, not Inf
		{math.Float32frombits(0x3c23d70a), 0x3c24}, // 0.01
		{math.Float32frombits(0xbeaaaaab), 0xbeab}, // -1/3
		{math.Float32frombits(0x477fffff), 0x4780}, // carries into the exponent
		{math.Float32frombits(0x00000000), 0x0000}, // +0
		{math.Float32frombits(0x80000000), 0x8000}, // -0
		{math.Float32frombits(0x3f7f8000), 0x3f80}, // tie at odd: up (0x3f7f is odd)
		{math.Float32frombits(0x3f7e8000), 0x3f7e}, // tie at even: down
		{math.Float32frombits(0x3f7e8001), 0x3f7f}, // just above a tie
		{math.Float32frombits(0x3f7e7fff), 0x3f7e}, // just below a tie
		{math.Float32frombits(0x00800000), 0x0080}, // smallest normal
		{math.Float32frombits(0x0080ffff), 0x0081}, // rounds within the normals
		{math.Float32frombits(0x807fffff), 0x8000}, // negative subnormal input: -0
		{math.Float32frombits(0xff7fffff), 0xff80}, // to -Inf
		{math.Float32frombits(0x7f7f7fff), 0x7f7f}, // largest finite stays finite
		{math.Float32frombits(0x40490fdb), 0x4049}, // π
		{math.Float32frombits(0x3fb504f3), 0x3fb5}, // √2
		{math.Float32frombits(0x4b800001), 0x4b80}, // 2²⁴·(1+2⁻²³)
		{math.Float32frombits(0x3f800001), 0x3f80}, // 1 + 2⁻²³
		{math.Float32frombits(0x3f80ffff), 0x3f81}, // 1 + almost 2⁻⁷
		{math.Float32frombits(0x3f818001), 0x3f82}, // above a tie at odd
		{math.Float32frombits(0x3f817fff), 0x3f81}, // below a tie at odd
		{math.Float32frombits(0xc2f6e979), 0xc2f7}, // -123.456
		{math.Float32frombits(0x501502f9), 0x5015}, // 1e10
		{math.Float32frombits(0x2edbe6ff), 0x2edc}, // 1e-10
		{math.Float32frombits(0x00800001), 0x0080}, // just above the smallest normal
		{math.Float32frombits(0x0000ffff), 0x0000}, // subnormal
		{math.Float32frombits(0x007f7fff), 0x0000}, // subnormal: zero
		{math.Float32frombits(0x007f8000), 0x0000}, // subnormal input: zero
		{math.Float32frombits(0x807f8000), 0x8000}, // the same, negative
		{math.Float32frombits(0x807f7fff), 0x8000}, // negative subnormal: -0
		{math.Float32frombits(0x7f7f8000), 0x7f80}, // a tie at odd at the top: to +Inf
		{math.Float32frombits(0x7f7e8000), 0x7f7e}, // a tie at even at the top: stays finite
		{math.Float32frombits(0xffc00000), 0xffc0}, // negative quiet NaN
		{math.Float32frombits(0xff800001), 0xffc0}, // negative signalling NaN: quiet
		{math.Float32frombits(0x7fffffff), 0x7fff}, // NaN with all payload bits
		{math.Float32frombits(0x7f80ffff), 0x7fc0}, // NaN whose payload is all in the low half
		{math.Float32frombits(0x33800000), 0x3380}, // 2⁻²⁴
		{math.Float32frombits(0x4f000000), 0x4f00}, // 2³¹
		{math.Float32frombits(0x3e4ccccd), 0x3e4d}, // 0.2
		{math.Float32frombits(0xbf19999a), 0xbf1a}, // -0.6
		{math.Float32frombits(0x3dcccccd), 0x3dcd}, // 0.1
		{math.Float32frombits(0x42c80000), 0x42c8}, // 100
		{math.Float32frombits(0x447a0000), 0x447a}, // 1000
		{math.Float32frombits(0x461c4000), 0x461c}, // 10000
	}
	for _, c := range cases {
		if got := ToBF16(c.in); got != c.want {
			t.Errorf("ToBF16(%#08x) = %#04x, want %#04x", math.Float32bits(c.in), got, c.want)
		}
	}
}

// TestFMA32 checks the single-rounding float32 multiply-add: a case where rounding through
// float64 first would land on a float32 tie, exact ties, and random operands against math.FMA.
func TestFMA32(t *testing.T) {
	// 2⁻²⁴·(1+2⁻²³) + 1 = 1 + 2⁻²⁴ + 2⁻⁴⁷: just above the float32 tie between 1 and 1+2⁻²³.
	if got, want := fma32(0x1p-24, 1+0x1p-23, 1), float32(1+0x1p-23); got != want {
		t.Errorf("fma32(2⁻²⁴, 1+2⁻²³, 1) = %v, want %v (the exact sum lies above the tie)", got, want)
	}
	// 1 + 2⁻²⁴ + 2⁻⁷⁷ would round to the tie 1 + 2⁻²⁴ in float64 and then to even (1).
	if got, want := fma32(0x1p-24*(1+0x1p-23), 1+0x1p-23, 1), float32(1+0x1p-23); got != want {
		t.Errorf("fma32 just above a tie = %v, want %v", got, want)
	}
	if got, want := fma32(0x1p-24, 1, 1), float32(1); got != want {
		t.Errorf("fma32(2⁻²⁴, 1, 1) = %v, want %v (an exact tie goes to even)", got, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		x := float32(rng.NormFloat64())
		y := float32(rng.NormFloat64())
		z := float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(60)-30))
		got := fma32(x, y, z)
		want := float32(math.FMA(float64(x), float64(y), float64(z)))
		// math.FMA rounds once to float64, then float32() rounds again; they differ only at
		// float64 ties of the float32 grid, where fma32 is the correct one.
		if got != want {
			d := math.Abs(float64(got) - math.FMA(float64(x), float64(y), float64(z)))
			if d > math.Abs(float64(math.Nextafter32(got, float32(math.Inf(1)))-got)) {
				t.Fatalf("fma32(%g, %g, %g) = %g, math.FMA %g", x, y, z, got, want)
			}
		}
	}
}

// randomBF16Operands fills x with normal values of varied magnitude, some of them exact
// zeros, subnormal or tiny (flushed) and large.
func randomBF16Operands(rng *rand.Rand, x []float32) {
	for i := range x {
		switch rng.IntN(40) {
		case 0:
			x[i] = 0
		case 1:
			x[i] = float32(rng.NormFloat64() * 1e-39) // subnormal: rounds to zero
		case 2:
			x[i] = float32(rng.NormFloat64() * 1e-30)
		case 3:
			x[i] = float32(rng.NormFloat64() * 1e15)
		default:
			x[i] = float32(rng.NormFloat64())
		}
	}
}

// TestBF16KernelsMatchPortable runs the machine's bfloat16 kernels and the portable definition
// over the same products (edge tiles, odd k, several k blocks, bias, beta 0, 1 and other,
// packed and unpacked, one and two threads) and requires the same bits.
func TestBF16KernelsMatchPortable(t *testing.T) {
	kerns := bf16Kernels(t)
	shapes := [][3]int{{1, 1, 1}, {14, 32, 2}, {15, 33, 3}, {7, 65, 17}, {29, 100, 31}, {61, 261, 70}, {3, 65, 150}, {130, 64, 1031}}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {1, 1}}
	rng := rand.New(rand.NewPCG(31, 32))
	saved := parallelMinMACs
	parallelMinMACs = 0
	defer func() {
		parallelMinMACs = saved
		kcTarget, mcPanels, ncTarget = kcTargetConst, mcPanelsConst, ncTargetConst
	}()
	for _, blocks := range [][3]int{{kcTargetConst, mcPanelsConst, ncTargetConst}, {16, 1, 64}} {
		kcTarget, mcPanels, ncTarget = blocks[0], blocks[1], blocks[2]
		for _, kern := range kerns {
			for _, th := range []int{1, 2} {
				for si, sh := range shapes {
					s := scalars[si%len(scalars)]
					tc := gemmCase{transA: si%2 == 1, transB: si%3 != 0, m: sh[0], n: sh[1], k: sh[2], alpha: s[0], beta: s[1], padA: 1, padB: 2, padC: 3}
					a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
					randomBF16Operands(rng, a)
					randomBF16Operands(rng, b)
					bias := make([]float32, tc.n)
					randomBF16Operands(rng, bias)
					if si%4 == 3 {
						bias = nil
					}
					for _, packed := range []bool{true, false} {
						got, want := append([]float32(nil), c...), append([]float32(nil), c...)
						if packed {
							gemmPrepacked(th, tc.m, tc.alpha, a, lda, tc.transA, packNative(kern, tc.transB, tc.k, tc.n, b, ldb), bias, tc.beta, got, ldc)
							gemmPrepacked(th, tc.m, tc.alpha, a, lda, tc.transA, packNative(bf16GenericKernel, tc.transB, tc.k, tc.n, b, ldb), bias, tc.beta, want, ldc)
						} else {
							gemmPacked(kern, th, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, got, ldc)
							gemmPacked(bf16GenericKernel, th, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, want, ldc)
						}
						for i := 0; i < tc.m; i++ {
							for j := 0; j < tc.n; j++ {
								g, w := got[i*ldc+j], want[i*ldc+j]
								if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
									t.Fatalf("%s threads=%d blocks=%v packed=%v %v: C[%d,%d] = %g (%#08x), portable %g (%#08x)",
										kern.name, th, blocks, packed, tc, i, j, g, math.Float32bits(g), w, math.Float32bits(w))
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestDotBF16Hardware feeds single pairs whose sums expose the order and rounding of the two
// products (cancellation, ties, subnormal results) through the machine's kernel as 1×1×2
// products and compares with DotBF16.
func TestDotBF16Hardware(t *testing.T) {
	kerns := bf16Kernels(t)
	rng := rand.New(rand.NewPCG(41, 42))
	pick := func() float32 {
		e := rng.IntN(60) - 30
		switch rng.IntN(4) {
		case 0:
			e = rng.IntN(24) - 76 // two of them multiply to near or below the smallest normal, 2⁻¹²⁶
		case 1:
			e = 0
		}
		return FromBF16(ToBF16(float32(math.Ldexp(rng.Float64()+1, e) * float64(1-2*rng.IntN(2)))))
	}
	for _, kern := range kerns {
		for i := 0; i < 200000; i++ {
			a0, a1, b0, b1 := pick(), pick(), pick(), pick()
			acc := float32(math.Ldexp(rng.NormFloat64(), rng.IntN(60)-30))
			switch i % 7 {
			case 0:
				acc = -a0*b0 - a1*b1 + float32(math.Ldexp(rng.NormFloat64(), -10))
			case 1:
				acc = 0 // the dot alone: subnormal sums show
			}
			// C = 1·(a·b) + 1·C with C = acc: the epilogue is an exact add of the dot to C only if
			// we seed the accumulator instead; so run beta = 0 with the dot alone, and compare the
			// accumulator path separately through the k loop (acc as a third pair).
			a := []float32{a0, a1, acc, 1}
			b := []float32{b0, b1, 1, 0}
			got := make([]float32, 1)
			want := DotBF16(DotBF16(0, bf16Pair(a0, a1), bf16Pair(b0, b1)), bf16Pair(acc, 1), bf16Pair(1, 0))
			pb := packNative(kern, false, 4, 1, b, 1)
			gemmPrepacked(1, 1, 1, a, 4, false, pb, nil, 0, got, 1)
			if math.Float32bits(got[0]) != math.Float32bits(want) {
				t.Fatalf("%s: pairs (%g,%g)·(%g,%g) then + %g: kernel %g (%#08x), DotBF16 %g (%#08x)",
					kern.name, a0, a1, b0, b1, acc, got[0], math.Float32bits(got[0]), want, math.Float32bits(want))
			}
		}
	}
}

// TestBF16PortableAccuracy bounds the portable kernel against float64 over the rounded operands.
func TestBF16PortableAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for _, tc := range []gemmCase{{m: 9, n: 13, k: 1, alpha: 1}, {m: 17, n: 35, k: 64, alpha: 1, beta: 1}, {transA: true, transB: true, m: 33, n: 20, k: 301, alpha: -2, beta: 0.5}} {
		a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
		round := func(x []float32) []float32 {
			r := make([]float32, len(x))
			for i, v := range x {
				r[i] = FromBF16(ToBF16(v))
			}
			return r
		}
		want, tol := refGemm(tc, round(a), lda, round(b), ldb, c, ldc)
		gemmPacked(bf16GenericKernel, 1, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				if got, w := c[i*ldc+j], want[i*tc.n+j]; !(math.Abs(float64(got)-w) <= tol[i*tc.n+j]) {
					t.Fatalf("%v: C[%d,%d] = %g, want %g ± %.3g", tc, i, j, got, w, tol[i*tc.n+j])
				}
			}
		}
	}
}

func TestBF16PackedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	rng := rand.New(rand.NewPCG(61, 62))
	tc := gemmCase{transB: true, m: 256, n: 256, k: 64, alpha: 1}
	a, lda, b, ldb, c, ldc := operandsFor(tc, rng)
	pb := PackBWith(BFloat16, true, 64, 256, b, ldb)
	call := func() { GemmPacked(256, 1, a, lda, false, pb, nil, 0, c, ldc) }
	call()
	if n := testing.AllocsPerRun(20, call); n != 0 {
		t.Errorf("GemmPacked with bfloat16 weights allocates %v times per call", n)
	}
}

// TestToBF16RowHardware compares the machine's conversion (VCVTNEPS2BF16) with ToBF16 on
// every class of input: normals around ties, subnormals, zeros, infinities and NaNs.
func TestToBF16RowHardware(t *testing.T) {
	bf16Kernels(t)
	rng := rand.New(rand.NewPCG(71, 72))
	src := make([]float32, 1<<16+5)
	for i := range src {
		u := rng.Uint32()
		switch i % 5 {
		case 0:
			u = u&0xffff0000 | 0x8000 // exact ties
		case 1:
			u &= 0x807fffff // subnormals and zeros
		case 2:
			u |= 0x7f800000 // infinities and NaNs
		}
		src[i] = math.Float32frombits(u)
	}
	got := make([]uint16, len(src))
	toBF16Row(got, src)
	for i, x := range src {
		if want := ToBF16(x); got[i] != want {
			t.Fatalf("element %d, %#08x: machine %#04x, ToBF16 %#04x", i, math.Float32bits(x), got[i], want)
		}
	}
}
