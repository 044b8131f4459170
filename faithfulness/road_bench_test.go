package faithfulness

import (
	"math"
	"testing"
)

// BenchmarkImpute224 times one imputation at the full size, 224² (N = 50,176), three channels,
// for a map whose top-ranked pixels form one disc (the hardest case for CG: one large hole),
// MoRF at p = 0.5 and 0.9.
func BenchmarkImpute224(b *testing.B) {
	const h, w = 224, 224
	n := h * w
	px := make([]float64, 3*n)
	for i := range px {
		px[i] = math.Sin(float64(i) * 0.37)
	}
	mp := make([]float32, n)
	for p := range mp {
		r, c := p/w, p%w
		mp[p] = -float32((r-100)*(r-100) + (c-120)*(c-120))
	}
	order, err := Order(mp, true)
	if err != nil {
		b.Fatal(err)
	}
	for _, j := range []int{5, 9} {
		b.Run("p=0."+string(rune('0'+j)), func(b *testing.B) {
			im := NewImputer(h, w)
			removed := order[:Removed(n, j, 10)]
			for b.Loop() {
				if _, err := im.Impute(px, removed); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(im.Iterations), "CG-iterations")
		})
	}
}
