package core

import (
	"math"
	"testing"
)

// TestSoftmaxAndArgmax: probabilities sum to 1 and keep their order even for logits that would
// overflow exp unshifted; Argmax takes the lower index on ties and never a NaN.
func TestSoftmaxAndArgmax(t *testing.T) {
	p := Softmax([]float32{1000, 999, 1000, -1000})
	if s := p[0] + p[1] + p[2] + p[3]; math.Abs(s-1) > 1e-15 || p[0] != p[2] || !(p[1] < p[0]) || p[3] != 0 {
		t.Errorf("Softmax = %v", p)
	}
	nan := float32(math.NaN())
	for _, c := range []struct {
		v    []float32
		want int
	}{{[]float32{1, 3, 3}, 1}, {[]float32{nan, 2, 5}, 2}, {[]float32{nan, nan}, 0}, {[]float32{-1}, 0}} {
		if got := Argmax(c.v); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.v, got, c.want)
		}
	}
}
