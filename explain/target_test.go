package explain

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	labels := []string{"tabby, tabby cat", "tiger cat", "Egyptian cat, cat", "cat, big"}
	logits := []float32{0.1, 2, -1, 0.5}
	good := map[string]int{"": 1, "top1": 1, "TOP1": 1, "0": 0, "3": 3, "tiger cat": 1, "Tabby": 0, "tabby, tabby cat": 0, "egyptian cat": 2, "big": 3}
	for spec, want := range good {
		if got, err := ParseTarget(spec, labels, logits); err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %d, %v; want %d", spec, got, err, want)
		}
	}
	bad := map[string]string{"4": "out of range", "-1": "out of range", "99999999999999999999": "out of range", "lion": "no class", "cat": "names 2 classes"}
	for spec, want := range bad {
		_, err := ParseTarget(spec, labels, logits)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--target") || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseTarget(%q): error %v, want one line with %q", spec, err, want)
		}
	}
}
