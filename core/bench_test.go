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
