package core

import (
	"math"
	"testing"

	"github.com/perceiverkit/perceiver/core/preprocess"
)

// BenchmarkForwardBackward224 runs the full-size model (random weights) forward and back on one
// 224² image: "pixels" keeps the pixels' gradient only (saliency, integrated gradients); "maps"
// also keeps every attention map and its gradient (Chefer relevance), as PyTorch's forward with
// output_attentions plus autograd to the pixels and every map does.
func BenchmarkForwardBackward224(b *testing.B) {
	m, err := NewRandom(FullSizeConfig(), preprocess.DefaultConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	px := make([]float32, 3*224*224)
	for i := range px {
		px[i] = float32(math.Sin(float64(i)))
	}
	for _, c := range []struct {
		name string
		tr   Trace
		gt   GradTrace
	}{
		{"pixels", Trace{}, GradTrace{Pixels: true}},
		{"maps", Trace{SelfAttentions: true, EncoderAttention: true, DecoderAttention: true},
			GradTrace{Pixels: true, SelfAttentions: true, EncoderAttention: true, DecoderAttention: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, _, err := m.ForwardBackward(px, 1, 224, 224, c.tr, c.gt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/image")
		})
	}
}
