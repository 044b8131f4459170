package main

import (
	"os"
	"path/filepath"
	"testing"
)

// benchFaithfulness runs probe faithfulness on one photo with the attention maps and the random
// floor (10 steps: 4 maps × 2 directions × 9 perturbed copies, plus the unperturbed pass and one
// pass per attention map) and reports images/s.
func benchFaithfulness(b *testing.B, model ...string) {
	benchMetrics(b, "deletion", model...)
}

// benchMetrics is benchFaithfulness with --metrics metrics.
func benchMetrics(b *testing.B, metrics string, model ...string) {
	data := b.TempDir()
	raw, err := os.ReadFile("../../testdata/preprocess/chelsea.png")
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(data, "chelsea.png"), raw, 0o644)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		args := append([]string{"faithfulness", "--data", data, "--methods", "mean,decoder,rollout,random", "--steps", "10",
			"--batch", "8", "--metrics", metrics, "--quiet", "--out", filepath.Join(b.TempDir(), "f")}, model...)
		if _, stderr, code := runCapture(args); code != 0 {
			b.Fatal(stderr)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

func BenchmarkFaithfulnessTiny(b *testing.B) { benchFaithfulness(b, "--model", tinyDir) }

// BenchmarkFaithfulnessFullSize: the full-size architecture (random weights, seed 1), 224².
func BenchmarkFaithfulnessFullSize(b *testing.B) { benchFaithfulness(b, "--random") }

// BenchmarkROADFullSize: ROAD alone at 224² on the full-size architecture (random weights): per
// map 2 × 9 imputations (CG on up to 45,158 unknowns, three channels) and 18 forward passes.
func BenchmarkROADFullSize(b *testing.B) { benchMetrics(b, "road", "--random") }

func BenchmarkROADTiny(b *testing.B) { benchMetrics(b, "road", "--model", tinyDir) }
