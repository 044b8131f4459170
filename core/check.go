package core

import (
	"fmt"
	"math"
	"strings"
)

// Checks of what Load reads that the layout alone does not catch: a config of another model
// type, non-finite weights, and mismatch reports short enough to read.

// ModelType is the config.json model_type of the models this package runs.
const ModelType = "perceiver"

// checkModelType refuses a config of another model family: its fields would be read with
// Perceiver defaults and fail later, or worse, not at all.
func checkModelType(c *Config) error {
	if c.ModelType != ModelType {
		return fmt.Errorf("config: model_type %q is not a Perceiver (want %q)", c.ModelType, ModelType)
	}
	return nil
}

// checkFinite refuses NaN and infinite weights, naming the first tensor that holds one: they
// would make every output NaN without any error.
func checkFinite(w *Weights, path string) error {
	for _, np := range w.Params() {
		bad, first := 0, -1
		for i, v := range np.Param.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				if bad == 0 {
					first = i
				}
				bad++
			}
		}
		if bad > 0 {
			return fmt.Errorf("%s: tensor %s holds %d non-finite values (%v at index %d): %w",
				path, np.Name, bad, np.Param.Data[first], first, ErrWeights)
		}
	}
	return nil
}

// listNames is how many names of each kind a mismatch error spells out before counting the rest.
const listNames = 4

// mismatchError reports tensors that do not fit the config on one readable line: for each kind,
// how many, the first few names and how many more.
func mismatchError(path string, missing, unexpected, mismatched []string) error {
	var parts []string
	add := func(kind, sep string, names []string) {
		if len(names) == 0 {
			return
		}
		s := fmt.Sprintf("%d %s: %s", len(names), kind, strings.Join(names[:min(len(names), listNames)], sep))
		if n := len(names) - listNames; n > 0 {
			s += fmt.Sprintf("%s… and %d more", sep, n)
		}
		parts = append(parts, s)
	}
	add("missing", ", ", missing)
	add("unexpected", ", ", unexpected)
	add("with the wrong shape", "; ", mismatched)
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w: %s", path, ErrWeights, strings.Join(parts, "; "))
}
