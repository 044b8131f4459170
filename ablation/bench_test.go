package ablation

import (
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// BenchmarkLatentsFullSize ablates 8 latents of the full-size architecture (random weights) in
// one batch and reports seconds per ablation, and, timed in the same iterations (the machine is
// shared: only interleaved timings compare), one unablated pass of the latent stack and decoder
// at batch 1: batched ablations should cost no more than one such pass each.
func BenchmarkLatentsFullSize(b *testing.B) {
	m, err := core.NewRandom(core.FullSizeConfig(), preprocess.DefaultConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	px := make([]float32, 3*224*224)
	for i := range px {
		px[i] = float32(i%17)/8 - 1
	}
	enc, err := m.Encode(px, 1, 224, 224, core.Trace{})
	if err != nil {
		b.Fatal(err)
	}
	base, err := m.ForwardLatents(enc.HiddenStates[0], 1, core.Trace{})
	if err != nil {
		b.Fatal(err)
	}
	latents := []int{0, 1, 2, 3, 4, 5, 6, 7}
	var ablating, single time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := Latents(m, enc.HiddenStates[0], -1, latents, Options{Batch: 8, Logits: base.Logits}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := m.ForwardLatents(enc.HiddenStates[0], 1, core.Trace{}); err != nil {
			b.Fatal(err)
		}
		ablating += t1.Sub(t0)
		single += time.Since(t1)
	}
	perAblation := ablating.Seconds() / float64(b.N*len(latents))
	b.ReportMetric(perAblation, "s/ablation")
	b.ReportMetric(single.Seconds()/float64(b.N), "s/pass")
	b.ReportMetric(perAblation/(single.Seconds()/float64(b.N)), "ablation/pass")
}
