package linear

import (
	"slices"
	"testing"
)

func TestSortByDepth(t *testing.T) {
	cols := []string{"logits", "block10_mean", "decoder", "zeta", "block2_mean", "cross_mean", "layer7_cls", "block1_mean"}
	SortByDepth(cols)
	want := []string{"cross_mean", "block1_mean", "layer7_cls", "block2_mean", "block10_mean", "decoder", "logits", "zeta"}
	if !slices.Equal(cols, want) {
		t.Fatalf("got %v, want %v", cols, want)
	}
	if _, known := Depth("zeta"); known {
		t.Error("zeta should be unknown")
	}
}
