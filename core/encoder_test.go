package core

import (
	"math"
	"testing"
)

// TestSeparableEncoderMatchesProducts compares the single-head encoder computed from row and
// column marginals (encoder.go) with the general path that projects keys and values for every
// pixel (projectKeys, itself checked against Hugging Face), on the tiny model at its own size and
// at others, square or not, with rows that are and are not whole AVX-512 vectors, and a batch of
// two. Tolerance: TestForwardMatchesHuggingFace's, 1e-4 of the largest magnitude per tensor.
func TestSeparableEncoderMatchesProducts(t *testing.T) {
	m := loadTiny(t)
	trace := Trace{EncoderAttention: true, HiddenStates: true, Inputs: true}
	for _, size := range [][2]int{{12, 16}, {9, 13}, {1, 1}, {32, 48}, {7, 1}} {
		h, w := size[0], size[1]
		const batch = 2
		px := make([]float32, batch*3*h*w)
		for i := range px {
			px[i] = float32(2 * math.Sin(0.37*float64(i)+float64(h)))
		}
		got, err := m.Forward(px, batch, h, w, trace)
		if err != nil {
			t.Fatal(err)
		}
		projectKeys = true
		want, err := m.Forward(px, batch, h, w, trace)
		projectKeys = false
		if err != nil {
			t.Fatal(err)
		}
		for i, ts := range want.Tensors() {
			if e := relErr(got.Tensors()[i].Data, ts.Data); !(e <= parityTol) {
				t.Errorf("%d×%d: %s relative error %.3g > %g", h, w, ts.Name, e, parityTol)
			} else if i < 3 {
				t.Logf("%d×%d: %-26s relative error %.2g", h, w, ts.Name, e)
			}
		}
	}
}

// TestSeparableEncoderFollowsWeights: the encoder's attention is cached per input size; replacing
// a weight it depends on (here the latents) must rebuild it, so the output equals that of a model
// loaded with the new weights from the start.
func TestSeparableEncoderFollowsWeights(t *testing.T) {
	m := loadTiny(t)
	px := make([]float32, 3*12*16)
	for i := range px {
		px[i] = float32(math.Cos(float64(i)))
	}
	if _, err := m.Forward(px, 1, 12, 16, Trace{}); err != nil {
		t.Fatal(err)
	}
	latents := append([]float32(nil), m.Weights.Latents.Data...)
	for i := range latents {
		latents[i] *= -1.5
	}
	m.Weights.Latents.Data = latents
	got, err := m.Forward(px, 1, 12, 16, Trace{})
	if err != nil {
		t.Fatal(err)
	}
	fresh := loadTiny(t)
	fresh.Weights.Latents.Data = latents
	want, err := fresh.Forward(px, 1, 12, 16, Trace{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Logits {
		if got.Logits[i] != want.Logits[i] {
			t.Fatalf("logit %d = %g after replacing the latents, a fresh model gives %g", i, got.Logits[i], want.Logits[i])
		}
	}
}

// TestConcurrentForward: a Model is safe for concurrent Forward calls, including the first calls at
// new input sizes, which build the encoder's cached tables (run under -race in CI); each result
// equals, bit for bit, the same call made alone.
func TestConcurrentForward(t *testing.T) {
	m := loadTiny(t)
	sizes := [][2]int{{12, 16}, {9, 13}, {12, 16}, {20, 20}, {9, 13}, {20, 20}}
	pixels := func(h, w int) []float32 {
		px := make([]float32, 3*h*w)
		for i := range px {
			px[i] = float32(math.Sin(0.11*float64(i) + float64(w)))
		}
		return px
	}
	got := make([][]float32, len(sizes))
	errs := make([]error, len(sizes))
	done := make(chan int)
	for i, s := range sizes {
		go func() {
			out, err := m.Forward(pixels(s[0], s[1]), 1, s[0], s[1], Trace{EncoderAttention: true})
			if err == nil {
				got[i] = append(out.Logits, out.EncoderAttention...)
			}
			errs[i] = err
			done <- i
		}()
	}
	for range sizes {
		<-done
	}
	for i, s := range sizes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		alone, err := m.Forward(pixels(s[0], s[1]), 1, s[0], s[1], Trace{EncoderAttention: true})
		if err != nil {
			t.Fatal(err)
		}
		want := append(alone.Logits, alone.EncoderAttention...)
		for j := range want {
			if got[i][j] != want[j] {
				t.Fatalf("%d×%d: value %d = %g concurrently, %g alone", s[0], s[1], j, got[i][j], want[j])
			}
		}
	}
}

// TestLearnedEncoderMatchesStreaming compares the learned stage's factored encoder
// (encoder_learned.go) with the single-head fold over streamed tokens and with the per-token
// projections (both checked against Hugging Face on the fixture), on a random learned model larger
// than the fixture (48×48 tokens, rows that are not whole AVX-512 vectors) and a batch of two.
// Tolerance: TestForwardMatchesHuggingFace's, 1e-4 of the largest magnitude per tensor.
func TestLearnedEncoderMatchesStreaming(t *testing.T) {
	cfg := loadFixture(t, "learned").Config
	cfg.ImageSize, cfg.DModel, cfg.NumLatents = 48, 40, 12
	prep := loadFixture(t, "learned").Preprocessor
	m, err := NewRandom(cfg, prep, 7)
	if err != nil {
		t.Fatal(err)
	}
	const batch, h, w = 2, 48, 48
	px := make([]float32, batch*3*h*w)
	for i := range px {
		px[i] = float32(2 * math.Sin(0.37*float64(i)))
	}
	trace := Trace{EncoderAttention: true, HiddenStates: true, Inputs: true}
	got, err := m.Forward(px, batch, h, w, trace)
	if err != nil {
		t.Fatal(err)
	}
	for _, force := range []*bool{&streamTokens, &projectKeys} {
		*force = true
		want, err := m.Forward(px, batch, h, w, trace)
		*force = false
		if err != nil {
			t.Fatal(err)
		}
		for i, ts := range want.Tensors() {
			if e := relErr(got.Tensors()[i].Data, ts.Data); !(e <= parityTol) {
				t.Errorf("%s: relative error %.3g > %g", ts.Name, e, parityTol)
			} else if i < 3 {
				t.Logf("%-26s relative error %.2g", ts.Name, e)
			}
		}
	}
	// The factored encoder caches what it derives from the weights: a new position table must
	// be seen.
	pos := append([]float32(nil), m.Weights.Input.(*LearnedStage).Positions.Data...)
	for i := range pos {
		pos[i] *= -0.5
	}
	m.Weights.Input.(*LearnedStage).Positions.Data = pos
	after, err := m.Forward(px, batch, h, w, Trace{})
	if err != nil {
		t.Fatal(err)
	}
	streamTokens = true
	want, err := m.Forward(px, batch, h, w, Trace{})
	streamTokens = false
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(after.Logits, want.Logits); !(e <= parityTol) {
		t.Errorf("after replacing the positions: logits relative error %.3g", e)
	}
}
