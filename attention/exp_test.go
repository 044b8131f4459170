package attention

import (
	"math"
	"testing"
)

// TestExp compares Exp with math.Exp in float64 over the range softmax uses (x ≤ 0) and beyond;
// the reference is the correctly rounded float64 result, tolerance 2 ulp of float32 (2.4e-7 relative).
func TestExp(t *testing.T) {
	worst := 0.0
	for x := float32(-103); x < 88; x += 0.0007 {
		got := float64(Exp(x))
		want := math.Exp(float64(x))
		if want < 1.1754944e-38 { // subnormal float32 results: absolute error only
			if math.Abs(got-want) > 3e-45 {
				t.Fatalf("Exp(%g) = %g, want %g", x, got, want)
			}
			continue
		}
		rel := math.Abs(got-want) / want
		worst = max(worst, rel)
		if rel > 2.4e-7 {
			t.Fatalf("Exp(%g) = %g, want %g (relative error %.3g)", x, got, want, rel)
		}
	}
	t.Logf("worst relative error %.3g", worst)
	if Exp(0) != 1 || Exp(-200) != 0 || !math.IsInf(float64(Exp(100)), 1) || !math.IsNaN(float64(Exp(float32(math.NaN())))) {
		t.Fatal("Exp special values wrong")
	}
}

func BenchmarkExp(b *testing.B) {
	var s float32
	for i := 0; i < b.N; i++ {
		s += Exp(-float32(i&1023) * 0.01)
	}
	_ = s
}
