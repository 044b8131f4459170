package explain

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseTarget resolves the --target flag: "top1" (or "") is the argmax of logits, an integer a
// class index, anything else a label — a model label (config.json's id2label) in full or one of its
// comma-separated names, compared without case, when it names exactly one class. Errors are one
// line and name the flag.
func ParseTarget(spec string, labels []string, logits []float32) (int, error) {
	spec = strings.TrimSpace(spec)
	n := len(labels)
	switch {
	case spec == "" || strings.EqualFold(spec, "top1"):
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best, nil
	case isInteger(spec):
		k, err := strconv.Atoi(spec)
		if err != nil || k < 0 || k >= n {
			return 0, fmt.Errorf("--target %s out of range: the model has %d classes (0…%d)", spec, n, n-1)
		}
		return k, nil
	}
	for i, l := range labels {
		if l == spec {
			return i, nil
		}
	}
	var hits []int
	for i, l := range labels {
		for _, name := range append([]string{l}, strings.Split(l, ",")...) {
			if strings.EqualFold(strings.TrimSpace(name), spec) {
				hits = append(hits, i)
				break
			}
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return 0, fmt.Errorf("--target %q: no class has that label; give an index (0…%d), top1, or a label of config.json's id2label", spec, n-1)
	default:
		return 0, fmt.Errorf("--target %q names %d classes (%d and %d, …); give the index or the full label", spec, len(hits), hits[0], hits[1])
	}
}

func isInteger(s string) bool {
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
