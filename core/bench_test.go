package core

import (
	"fmt"
	"math"
	"testing"

	"github.com/perceiverkit/perceiver/core/preprocess"
)

// BenchmarkForward224 runs the full-size model (random weights) on 224² images without maps, the
// way classify and extract do. GFLOPS counts the matrix products (Model.FLOPs).
func BenchmarkForward224(b *testing.B) {
	m, err := NewRandom(FullSizeConfig(), preprocess.DefaultConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			px := make([]float32, batch*3*224*224)
			for i := range px {
				px[i] = float32(math.Sin(float64(i)))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Forward(px, batch, 224, 224, Trace{}); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N*batch)
			b.ReportMetric(sec, "s/image")
			b.ReportMetric(m.FLOPs(224, 224)/sec/1e9, "GFLOPS")
		})
	}
}

func TestFLOPsFullSize(t *testing.T) {
	m, err := New(FullSizeConfig(), preprocess.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The estimate: about 404 GFLOPs per 224² image.
	if f := m.FLOPs(224, 224) / 1e9; f < 395 || f > 410 {
		t.Errorf("%.1f GFLOPs per image, want about 404", f)
	}
}

// TestExecutedFLOPs: the work executed is Hugging Face's count less what the exact algebra removes
// (about 43 GFLOPs for the Fourier model at 224², about 101 in the learned model: its encoder
// executes one product over the tokens of four, and projects the positions once per model);
// the conv model, whose encoder is small, executes nearly all of it.
func TestExecutedFLOPs(t *testing.T) {
	for kind, want := range map[string][2]float64{"fourier": {355, 368}, "learned": {370, 380}, "conv": {355, 368}} {
		cfg, _ := FullSizeConfigFor(kind)
		m, err := New(cfg, preprocess.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		hf, ex := m.FLOPs(224, 224)/1e9, m.ExecutedFLOPs(224, 224)/1e9
		t.Logf("%s: %.1f GFLOPs as Hugging Face computes it, %.1f executed", kind, hf, ex)
		if ex < want[0] || ex > want[1] || ex > hf {
			t.Errorf("%s: %.1f GFLOPs executed, want %g…%g and at most Hugging Face's %.1f", kind, ex, want[0], want[1], hf)
		}
	}
}

// BenchmarkForwardFlow runs the full-size optical flow model (deepmind/optical-flow-perceiver's
// architecture, random weights) on one 368×496 frame pair without maps, as probe flow does.
func BenchmarkForwardFlow(b *testing.B) {
	cfg, err := FullSizeConfigFor("flow")
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewRandom(cfg, preprocess.DefaultConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	const h, w = 368, 496
	frames := make([]float32, 6*h*w)
	for i := range frames {
		frames[i] = float32(math.Sin(float64(i) * 0.001))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.ForwardFrames(frames, 1, h, w, Trace{}); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/pair")
	b.ReportMetric(m.FLOPs(h, w)/sec/1e9, "GFLOPS")
}
