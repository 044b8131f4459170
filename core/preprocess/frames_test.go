package preprocess

import (
	"strings"
	"testing"
)

// TestFlowFrames checks the layout [2, 3, H, W] and the values x/255·2 − 1 of DeepMind's optical
// flow colab (0 → −1, 255 → 1, 51 → −0.6 to float32 rounding).
func TestFlowFrames(t *testing.T) {
	a, b := NewRGB(3, 2), NewRGB(3, 2)
	for i := range a.Pix {
		a.Pix[i] = 255
	}
	b.Pix[3*(1*3+2)+1] = 51 // green of pixel (row 1, column 2) of the second frame
	f, err := FlowFrames(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 2*3*2*3 {
		t.Fatalf("%d values, want 36", len(f))
	}
	if f[0] != 1 || f[17] != 1 || f[18] != -1 {
		t.Errorf("first frame %v…%v, second frame starts %v: want 1, 1, −1", f[0], f[17], f[18])
	}
	if got := f[(1*3+1)*6+1*3+2]; got != float32(51.0/255*2-1) {
		t.Errorf("frame 2, green, (1, 2): %v, want %v", got, float32(51.0/255*2-1))
	}
	if _, err := FlowFrames(a, NewRGB(2, 3)); err == nil || !strings.Contains(err.Error(), "differ in size") {
		t.Errorf("frames of different sizes: error %v", err)
	}
}
