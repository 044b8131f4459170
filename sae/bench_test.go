package sae

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkTrainStep times one training step at the README's shapes: tokens of d = 64 (the demo
// model's latents), M = 512, k = 32, batches of 1,024; reports samples/s. Compare with
// tools/sae/sae_reference.py on the same data (README, "probe sae").
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct {
		name       string
		d, m, k, n int
	}{{"d64-M512-k32", 64, 512, 32, 1024}, {"d1024-M8192-k32", 1024, 8192, 32, 1024}} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, 4*c.n*c.d)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			ids := make([]string, 4*c.n)
			for i := range ids {
				ids[i] = "r"
			}
			data := &Matrix{X: x, D: c.d, IDs: ids}
			units := make([]int, 4*c.n)
			for i := range units {
				units[i] = i
			}
			cfg := Config{Dict: c.m, K: c.k, Epochs: 1, Batch: c.n, LR: 1e-3, Seed: 1}
			st, err := NewState(data, units, cfg)
			if err != nil {
				b.Fatal(err)
			}
			t := newTrainer(st, data, cfg)
			t.b = c.n
			copy(t.x, x[:c.n*c.d])
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t.step()
			}
			b.ReportMetric(float64(b.N*c.n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
