package linear

import (
	"slices"
	"testing"
)

func TestSortByDepth(t *testing.T) {
	cols := []string{"logits", "block10_mean", "decoder", "zeta", "block2_mean", "cross_mean", "layer7_cls", "block1_mean"}
	SortByDepth(cols, 6)
	want := []string{"cross_mean", "block1_mean", "layer7_cls", "block2_mean", "block10_mean", "decoder", "logits", "zeta"}
	if !slices.Equal(cols, want) {
		t.Fatalf("got %v, want %v", cols, want)
	}
	if _, known := Depth("zeta", 6); known {
		t.Error("zeta should be unknown")
	}
}

// TestDepthScale: the layers per block decide where block{b} columns fall among layer{j} ones.
func TestDepthScale(t *testing.T) {
	cols := []string{"layer5_cls", "block1_mean", "layer3_cls"}
	SortByDepth(cols, 4)
	if want := []string{"layer3_cls", "block1_mean", "layer5_cls"}; !slices.Equal(cols, want) {
		t.Fatalf("4 layers per block: got %v, want %v", cols, want)
	}
	SortByDepth(cols, 2)
	if want := []string{"block1_mean", "layer3_cls", "layer5_cls"}; !slices.Equal(cols, want) {
		t.Fatalf("2 layers per block: got %v, want %v", cols, want)
	}
}
