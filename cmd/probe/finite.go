package main

import (
	"fmt"
	"math"
)

// Outputs are checked before they are printed or written: a model that overflows (finite but
// extreme weights; non-finite ones are refused at load) would otherwise print NaN probabilities,
// or store NaN features that every later step trusts.

// checkFinite returns an error naming what and the first NaN or ±Inf in v, or nil.
func checkFinite(what string, v []float32) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			bad := 0
			for _, y := range v[i:] {
				if math.IsNaN(float64(y)) || math.IsInf(float64(y), 0) {
					bad++
				}
			}
			return fmt.Errorf("the model gives non-finite %s (%d of %d values; %v at index %d)", what, bad, len(v), x, i)
		}
	}
	return nil
}
