package faithfulness

import (
	"fmt"
	"math"
	"slices"
)

// Order returns the flat pixel indices of m in the order the protocol removes them: value
// descending for positive perturbation, ascending for negative, equal values by the lower index
// first in both.
func Order(m []float32, positive bool) ([]int, error) {
	for i, v := range m {
		if math.IsNaN(float64(v)) {
			return nil, fmt.Errorf("faithfulness: the map is NaN at pixel %d", i)
		}
	}
	idx := make([]int, len(m))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		va, vb := m[a], m[b]
		switch {
		case va == vb:
			return a - b
		case (va > vb) == positive:
			return -1
		default:
			return 1
		}
	})
	return idx, nil
}

// Removed is ⌊f·n⌋ for f = k/steps: how many pixels step k removes, in exact integer arithmetic.
func Removed(n, k, steps int) int { return k * n / steps }

// Fractions returns f = k/steps for k = 0 … steps−1.
func Fractions(steps int) []float64 {
	f := make([]float64, steps)
	for k := range f {
		f[k] = float64(k) / float64(steps)
	}
	return f
}

// Perturb writes into dst the image pixels [3, H, W] (n = H·W) with the pixels order[:count] set
// to 0 in every channel.
func Perturb(dst, pixels []float32, order []int, count int) {
	n := len(pixels) / 3
	copy(dst, pixels)
	for _, p := range order[:count] {
		dst[p], dst[n+p], dst[2*n+p] = 0, 0, 0
	}
}

// Trapezoid returns the area under y(x) by the trapezoid rule.
func Trapezoid(x, y []float64) float64 {
	var a float64
	for k := 0; k+1 < len(x); k++ {
		a += (x[k+1] - x[k]) * (y[k] + y[k+1]) / 2
	}
	return a
}
