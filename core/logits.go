package core

import "math"

// Softmax returns the softmax of logits in float64, stable (the largest logit subtracted): the
// class probabilities reports and maps quote.
func Softmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	p := make([]float64, len(logits))
	var s float64
	for i, v := range logits {
		p[i] = math.Exp(float64(v) - mx)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

// Argmax returns the index of the largest value, the lower index on ties; NaN never wins.
func Argmax(v []float32) int {
	best := -1
	for i, x := range v {
		if x == x && (best < 0 || x > v[best]) {
			best = i
		}
	}
	return max(best, 0)
}
