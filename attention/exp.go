package attention

import "math"

// Exp is a float32 exponential accurate to about one unit in the last place, several times faster
// than math.Exp in float64. Softmax needs 126 million of them per 224² image.
//
// Method: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two parts so that n·ln2 is exact), e^r from a
// degree-6 minimax polynomial (Cephes' expf coefficients), and 2^n put into the exponent bits.
func Exp(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -103.97208:
		return 0
	}
	n := float32(math.Floor(float64(x*1.44269504088896341 + 0.5)))
	r := x - n*0.693359375
	r = r - n*-2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	k := int32(n)
	if k < -126 {
		// Subnormal result: scale in two steps so the exponent field stays valid.
		return y * math.Float32frombits(uint32(k+127+64)<<23) * math.Float32frombits(uint32(127-64)<<23)
	}
	return y * math.Float32frombits(uint32(k+127)<<23)
}
