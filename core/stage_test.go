package core

import (
	"slices"
	"strings"
	"testing"
)

// TestConvGridGeometry checks the conv stage's token grid against the sizes Hugging Face's
// Conv2dSamePadding (7×7, stride 2, padding 3) and MaxPool2d(3, 2) give: 55×55 at 224² (not
// DeepMind's 56×56) and 5×7 at the fixture's 24×32; token (i, j) centred at (4i+2, 4j+2).
func TestConvGridGeometry(t *testing.T) {
	m := loadFixture(t, "conv")
	for _, c := range []struct{ h, w, rows, cols int }{{224, 224, 55, 55}, {24, 32, 5, 7}, {5, 5, 1, 1}} {
		g, err := m.Weights.Input.Grid(c.h, c.w)
		if err != nil {
			t.Fatal(err)
		}
		if g.Rows != c.rows || g.Cols != c.cols || g.Stride != 4 || g.Offset != 2 {
			t.Errorf("%d×%d: grid %+v, want %d×%d tokens of stride 4, offset 2", c.h, c.w, g, c.rows, c.cols)
		}
	}
	if _, err := m.Weights.Input.Grid(4, 40); err == nil {
		t.Error("a 4-pixel-high image was accepted")
	}
	// Pixels 4i … 4i+3 take token i; the margin past the last cell takes the last token.
	g, _ := m.Weights.Input.Grid(24, 32)
	tokens := make([]float32, g.Tokens())
	for i := range tokens {
		tokens[i] = float32(i)
	}
	px := make([]float32, 24*32)
	g.ToPixels(px, tokens)
	for _, c := range []struct{ y, x, token int }{{0, 0, 0}, {3, 3, 0}, {4, 0, 7}, {2, 6, 1}, {23, 31, 34}, {19, 27, 34}, {16, 24, 34}, {15, 23, 26}} {
		if got := px[c.y*32+c.x]; got != float32(c.token) {
			t.Errorf("pixel (%d, %d) shows token %v, want %d", c.y, c.x, got, c.token)
		}
	}
}

func TestLearnedRefusesOtherSizes(t *testing.T) {
	m := loadFixture(t, "learned")
	_, err := m.Forward(make([]float32, 3*16*16), 1, 16, 16, Trace{})
	if err == nil || !strings.Contains(err.Error(), "12×12 images only") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %v, want one line saying the model takes 12×12 only", err)
	}
}

func TestUnsupportedArchitecture(t *testing.T) {
	c := DefaultConfig()
	c.Architectures = []string{"PerceiverForMaskedLM"}
	c.ID2Label = map[string]string{"0": "a"}
	err := c.Validate()
	if err == nil {
		t.Fatal("PerceiverForMaskedLM accepted")
	}
	for _, want := range append([]string{`"PerceiverForMaskedLM"`}, SupportedArchitectures...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestBatchNormCounterOptional loads the conv fixture without its num_batches_tracked (a checkpoint
// saved without buffers): the counter is accepted, never required.
func TestBatchNormCounterOptional(t *testing.T) {
	dir := fixtureWith(t, fixtureDirs["conv"], "model.safetensors")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, p := range m.Weights.Params() {
		names = append(names, p.Name)
	}
	defer m.Close()
	if slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "num_batches_tracked") }) {
		t.Error("num_batches_tracked is listed among the parameters")
	}
	// A random conv model written without the counter loads back.
	r, err := m.Randomized(3)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := r.Save(out, nil); err != nil {
		t.Fatal(err)
	}
	back, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	back.Close()
}

func loadFixture(t testing.TB, kind string) *Model {
	t.Helper()
	m, err := Load(fixtureDirs[kind])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
