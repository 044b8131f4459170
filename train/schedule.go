package train

import (
	"fmt"
	"math"
)

// Schedule names the learning-rate shape after warmup.
type Schedule string

const (
	Constant Schedule = "constant"
	Cosine   Schedule = "cosine"
)

// ParseSchedule checks a --schedule value.
func ParseSchedule(s string) (Schedule, error) {
	switch Schedule(s) {
	case Constant, Cosine:
		return Schedule(s), nil
	}
	return "", fmt.Errorf("--schedule %q: want constant or cosine", s)
}

// LR is the learning rate of update k (0-based) of a run of steps updates: base·f(k) with f = k/warmup
// during warmup, then 1 (Constant) or ½(1 + cos(π(k−warmup)/max(1, steps−warmup))) (Cosine), as
// transformers' get_{constant,cosine}_schedule_with_warmup.
func LR(base float64, k, warmup, steps int, s Schedule) float64 {
	if k < warmup {
		return base * float64(k) / float64(warmup)
	}
	if s == Cosine {
		return base * 0.5 * (1 + math.Cos(math.Pi*float64(k-warmup)/float64(max(1, steps-warmup))))
	}
	return base
}
