package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

var forwardShare = regexp.MustCompile(`([0-9.]+)% of the time in the forward pass`)

// benchExtract runs probe extract over n photos (the fixture images, repeated) and reports
// images/s and the share of the wall time spent outside the forward pass (decoding,
// preprocessing, reductions, Parquet writing): the bar for the full-size model is 10%.
func benchExtract(b *testing.B, model string, n, batch int) {
	data := b.TempDir()
	photos := []string{"chelsea.png", "coffee.png", "camera.png", "rocket.jpg"}
	for i := 0; i < n; i++ {
		raw, err := os.ReadFile(filepath.Join("../../testdata/preprocess", photos[i%len(photos)]))
		if err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(data, fmt.Sprintf("%04d%s", i, filepath.Ext(photos[i%len(photos)]))), raw, 0o644)
	}
	var outside float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(b.TempDir(), "f.parquet")
		stdout, stderr, code := runCapture([]string{"extract", "--model", model, "--data", data, "--out", out, "--layers", "all", "--batch", strconv.Itoa(batch), "--quiet"})
		if code != 0 {
			b.Fatal(stderr)
		}
		m := forwardShare.FindStringSubmatch(stdout)
		if m == nil {
			b.Fatalf("no forward share in %q", stdout)
		}
		share, _ := strconv.ParseFloat(m[1], 64)
		outside += 100 - share
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric(outside/float64(b.N), "%outside-forward")
}

func BenchmarkExtractTiny(b *testing.B) { benchExtract(b, tinyDir, 200, 16) }

func BenchmarkExtractFullSize(b *testing.B) {
	dir := b.TempDir()
	m, err := core.NewRandom(core.FullSizeConfig(), preprocess.DefaultConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Save(dir, map[string]string{"note": "random weights, seed 1"}); err != nil {
		b.Fatal(err)
	}
	benchExtract(b, dir, 16, 8)
}
