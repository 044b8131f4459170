package vecmath

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// Every test runs once per implementation this CPU supports (assembly and the Go fallback), against
// float64 references from the standard library (math.Exp, math.Erfc, float64 sums).

const ulp = 1.0 / (1 << 23) // float32 epsilon, 1.19e-7

func forEachImpl(t *testing.T, f func(t *testing.T)) {
	saved := impl
	defer func() { impl = saved }()
	for _, k := range available() {
		impl = k
		t.Run(k.name, f)
	}
}

// lengths covers empty, shorter than one vector, every tail length and a few whole vectors.
func lengths() []int {
	var ls []int
	for n := 0; n <= 67; n++ {
		ls = append(ls, n)
	}
	return append(ls, 261, 1024, 50176+5)
}

var specials = []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e-45, -1e-45, 1e-40, -1e-40, 1.1754944e-38,
	-1.1754944e-38, 3.4028235e38, -3.4028235e38, float32(math.Inf(1)), float32(math.Inf(-1)),
	float32(math.NaN()), 88.72, 88.73, -87.3, -103.9, -104, -150, 1e-7, -1e-7}

func randomValues(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		switch rng.IntN(16) {
		case 0:
			x[i] = specials[rng.IntN(len(specials))]
		case 1:
			x[i] = math.Float32frombits(rng.Uint32()) // anything, incl. NaN payloads and subnormals
		default:
			x[i] = float32(rng.NormFloat64() * scale)
		}
	}
	return x
}

// closeRel reports whether got is within tol·|want| of want, or within one subnormal step when
// want is below the normal range; NaNs must match NaNs and infinities exactly.
func closeRel(got float32, want float64, tol float64) bool {
	g := float64(got)
	switch {
	case math.IsNaN(want):
		return math.IsNaN(g)
	case math.IsInf(want, 0) || math.Abs(want) > math.MaxFloat32:
		return g == float64(float32(want))
	case math.Abs(want) < 0x1p-126:
		return math.Abs(g-want) <= 0x1p-149
	}
	return math.Abs(g-want) <= tol*math.Abs(want)
}

func TestExpShiftSum(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		// A dense sweep of the whole domain: exponents from underflow to overflow.
		var sweep []float32
		for x := -106.0; x < 90; x += 0.0007 {
			sweep = append(sweep, float32(x))
		}
		cases := [][]float32{sweep, specials}
		for _, n := range lengths() {
			cases = append(cases, randomValues(rng, n, 30))
		}
		worst := 0.0
		for _, src := range cases {
			for _, shift := range []float32{0, 7.5, -3, float32(math.Inf(-1))} {
				dst := make([]float32, len(src))
				got := ExpShiftSum(dst, src, shift)
				var want float64
				for i, v := range src {
					e := math.Exp(float64(v - shift)) // exponent rounded to float32 first, as documented
					want += float64(float32(e))
					if !closeRel(dst[i], e, 2*ulp) {
						t.Fatalf("exp(%g - %g) = %g, want %g", v, shift, dst[i], e)
					}
					if e >= 0x1p-126 && e < math.MaxFloat32 {
						worst = max(worst, math.Abs(float64(dst[i])-e)/e/ulp)
					}
				}
				if !closeRel(float32(got), want, 2*ulp) && !(math.IsInf(want, 1) && math.IsInf(got, 1)) {
					t.Fatalf("sum over %d values (shift %g) = %g, want %g", len(src), shift, got, want)
				}
			}
		}
		t.Logf("worst error %.2f ulp", worst)

		// In place, as softmax uses it, gives the same values.
		src := randomValues(rng, 67, 10)
		want := make([]float32, len(src))
		sumWant := ExpShiftSum(want, src, 2)
		if sum := ExpShiftSum(src, src, 2); !sameBits(src, want) || !(sum == sumWant || math.IsNaN(sum) && math.IsNaN(sumWant)) {
			t.Fatal("in-place ExpShiftSum differs from out-of-place")
		}
	})
}

// TestExpShiftSumLongRow checks the float64 accumulation on a softmax-sized row, where float32
// accumulation would drift by ~1e-5 relative.
func TestExpShiftSumLongRow(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		src := make([]float32, 50176)
		for i := range src {
			src[i] = float32(-rng.Float64() * 0.01)
		}
		dst := make([]float32, len(src))
		got := ExpShiftSum(dst, src, 0)
		var want float64
		for _, v := range src {
			want += math.Exp(float64(v))
		}
		if rel := math.Abs(got-want) / want; rel > 2*ulp {
			t.Fatalf("sum %v, want %v (relative error %.3g)", got, want, rel)
		}
	})
}

func sameBits(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}

func TestMax(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, n := range lengths() {
			for trial := 0; trial < 20; trial++ {
				x := randomValues(rng, n, 100)
				if trial%3 == 0 && n > 0 { // the maximum in the tail or the first vector
					x[rng.IntN(n)] = 1e30
				}
				want := float32(math.Inf(-1))
				for _, v := range x {
					if v > want {
						want = v
					}
				}
				if got := Max(x); math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("Max of %d values = %g, want %g", n, got, want)
				}
			}
		}
		if got := Max([]float32{float32(math.NaN()), -2, float32(math.NaN())}); got != -2 {
			t.Fatalf("Max ignoring NaN = %g, want -2", got)
		}
	})
}

func TestScale(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, n := range lengths() {
			x := randomValues(rng, n, 10)
			want := make([]float32, n)
			for i, v := range x {
				want[i] = float32(float64(v) * 0.3) // a float32 product is the rounded exact product
			}
			s := float32(0.3)
			for i, v := range x {
				want[i] = float32(float64(v) * float64(s))
			}
			Scale(x, s)
			if !sameBits(x, want) {
				t.Fatalf("Scale over %d values differs from the rounded products", n)
			}
		}
	})
}

// geluRef is x·Φ(x) in float64 with Φ from math.Erfc, accurate also where 1+erf(x/√2) cancels.
func geluRef(x float32) float64 {
	v := float64(x)
	return v * 0.5 * math.Erfc(-v/math.Sqrt2)
}

// TestGELU sweeps [-10, 10] densely and the whole float32 range randomly. Reference geluRef;
// tolerance 3 ulp of the result (the erfc branch stacks the fit error 1.2e-8, the rounding of
// s = 1/(1+t) amplified ~1.5× by F, the float32 Horner sum (together ~1.9 ulp measured at
// x ≈ -1), e^(-x²/2) (0.8 ulp) and two products; 2.7–2.9 ulp measured), and 1 subnormal step for
// subnormal results.
func TestGELU(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		var sweep []float32
		for i := -1000000; i <= 1000000; i++ {
			sweep = append(sweep, float32(i)*1e-5)
		}
		rng := rand.New(rand.NewPCG(9, 10))
		cases := [][]float32{sweep, specials}
		for _, n := range lengths() {
			cases = append(cases, randomValues(rng, n, 4))
		}
		worstAbs, worstUlp, worstAt := 0.0, 0.0, float32(0)
		for ci, src := range cases {
			dst := make([]float32, len(src))
			GELU(dst, src)
			for i, x := range src {
				want := geluRef(x)
				if !closeRel(dst[i], want, 3*ulp) {
					t.Fatalf("GELU(%g) = %g, want %g (%.2f ulp)", x, dst[i], want, math.Abs(float64(dst[i])-want)/math.Abs(want)/ulp)
				}
				if ci == 0 {
					worstAbs = max(worstAbs, math.Abs(float64(dst[i])-want))
					if math.Abs(want) >= 0x1p-126 {
						if u := math.Abs(float64(dst[i])-want) / math.Abs(want) / ulp; u > worstUlp {
							worstUlp, worstAt = u, x
						}
					}
				}
			}
		}
		t.Logf("on [-10, 10] step 1e-5: max abs error %.3g, max relative error %.2f ulp (at x = %g)", worstAbs, worstUlp, worstAt)

		src := randomValues(rng, 67, 3)
		want := make([]float32, len(src))
		GELU(want, src)
		if GELU(src, src); !sameBits(src, want) {
			t.Fatal("in-place GELU differs from out-of-place")
		}
	})
}

func TestLayerNormRow(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, n := range lengths() {
			for _, offset := range []float64{0, 100} { // a large mean tests the two-pass variance
				src, w, b := make([]float32, n), make([]float32, n), make([]float32, n)
				for i := range src {
					src[i] = float32(offset + rng.NormFloat64()*3)
					w[i] = float32(1 + rng.NormFloat64()*0.2)
					b[i] = float32(rng.NormFloat64() * 0.5)
				}
				var mean, vr float64
				for _, v := range src {
					mean += float64(v)
				}
				mean /= float64(n)
				for _, v := range src {
					vr += (float64(v) - mean) * (float64(v) - mean)
				}
				vr /= float64(n)
				dst := make([]float32, n)
				LayerNormRow(dst, src, w, b, 1e-5)
				for i, v := range src {
					nw := (float64(v) - mean) / math.Sqrt(vr+float64(float32(1e-5))) * float64(w[i])
					want := nw + float64(b[i])
					// The normalised value is rounded to float32, then n·w + b is rounded once or twice.
					if tol := 2 * ulp * (math.Abs(nw) + math.Abs(float64(b[i]))); math.Abs(float64(dst[i])-want) > tol {
						t.Fatalf("n=%d offset %g: dst[%d] = %g, want %g", n, offset, i, dst[i], want)
					}
				}
				LayerNormRow(src, src, w, b, 1e-5)
				if !sameBits(src, dst) {
					t.Fatalf("n=%d: in-place LayerNormRow differs", n)
				}
			}
		}
	})
}

// TestLayerNormRowSpecial: a constant row has zero variance and gives b; a NaN poisons its row.
func TestLayerNormRowSpecial(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		for _, n := range []int{7, 16, 40} {
			src, w, b, dst := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range src {
				src[i], w[i], b[i] = 5, 2, float32(i)
			}
			LayerNormRow(dst, src, w, b, 1e-5)
			if !sameBits(dst, b) {
				t.Fatalf("constant row of %d: got %v, want b", n, dst)
			}
			src[n-1] = float32(math.NaN())
			LayerNormRow(dst, src, w, b, 1e-5)
			for i, v := range dst {
				if !math.IsNaN(float64(v)) {
					t.Fatalf("row of %d with a NaN: dst[%d] = %g", n, i, v)
				}
			}
		}
	})
}

func TestLengthMismatchPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"ExpShiftSum": func() { ExpShiftSum(make([]float32, 3), make([]float32, 4), 0) },
		"GELU":        func() { GELU(make([]float32, 3), make([]float32, 4)) },
		"LayerNormRow": func() {
			LayerNormRow(make([]float32, 4), make([]float32, 4), make([]float32, 3), make([]float32, 4), 1e-5)
		},
	} {
		func() {
			defer func() {
				var le LengthError
				if err, _ := recover().(error); !errors.As(err, &le) {
					t.Errorf("%s with mismatched lengths: recovered %v, want a LengthError", name, err)
				}
			}()
			f()
		}()
	}
}

func TestImplementation(t *testing.T) {
	names := map[string]bool{"avx512": true, "avx2": true, "go": true}
	for _, k := range available() {
		if !names[k.name] || k.width&(k.width-1) != 0 {
			t.Errorf("implementation %q has width %d", k.name, k.width)
		}
	}
	if available()[len(available())-1] != goKernels {
		t.Error("the Go fallback is not the last resort")
	}
}

// TestNoAllocations: the kernels run in the model's inner loops.
func TestNoAllocations(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		x, y, w, b := make([]float32, 67), make([]float32, 67), make([]float32, 67), make([]float32, 67)
		grid := [4][]float32{x[:64], y[:64], w[:64], b[:64]}
		rowSum, col := make([]float64, 4), make([]float64, 16)
		allocs := testing.AllocsPerRun(10, func() {
			GridCombine(y[:64], x[:64], grid, w[:4], b[:16], [4]float32{1, 2, 3, 4})
			GridMarginals(x[:64], y[:64], grid, rowSum, col)
			ExpShiftSum(y, x, 0)
			Max(x)
			Scale(x, 1)
			GELU(y, x)
			LayerNormRow(y, x, w, b, 1e-5)
		})
		if allocs != 0 {
			t.Fatalf("%v allocations per call", allocs)
		}
	})
}
