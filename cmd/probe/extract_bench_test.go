package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/probe"
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
	benchExtractData(b, model, data, n, batch)
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

// wdsBenchData writes n Fashion-MNIST training images (Debian's dataset-fashion-mnist, else random
// digits) as a WebDataset of 28×28 PNGs with cls labels, 1,000 per shard, and returns the brace
// pattern naming the shards.
func wdsBenchData(b *testing.B, n int) string {
	fashion := "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
	if _, err := os.Stat(fashion); err != nil {
		fashion = idxDataSet(b, n)
	}
	imgs := idxImages(b, fashion, n, 1)
	dir := b.TempDir()
	shards := (n + 999) / 1000
	wdsFrom(b, imgs, dir, shards, false, true)
	return filepath.Join(dir, fmt.Sprintf("train-{000000..%06d}.tar", shards-1))
}

// BenchmarkExtractWDS10k: probe extract over a 10,000-image WebDataset with the tiny model, whose
// forward pass is cheap: the rate of the data path (reading the shards, decoding, preprocessing,
// writing Parquet), and the share of the time in the forward pass.
func BenchmarkExtractWDS10k(b *testing.B) {
	benchExtractData(b, tinyDir, wdsBenchData(b, 10000), 10000, 16)
}

// BenchmarkExtractWDSFullSize: the full-size architecture (random weights) over the first 16
// images of such a WebDataset: the model's rate.
func BenchmarkExtractWDSFullSize(b *testing.B) {
	dir := b.TempDir()
	m, err := core.NewRandom(core.FullSizeConfig(), preprocess.DefaultConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Save(dir, map[string]string{"note": "random weights, seed 1"}); err != nil {
		b.Fatal(err)
	}
	benchExtractData(b, dir, wdsBenchData(b, 16), 16, 8)
}

// benchExtractData runs probe extract over data (n images) and reports images/s and the share
// of the wall time spent outside the forward pass.
func benchExtractData(b *testing.B, model, data string, n, batch int) {
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

// BenchmarkStreamDecodeWDS10k: the data path alone at the full-size model's input size: stream a
// 10,000-image WebDataset, decode each PNG and preprocess it to 224×224 (the Fourier model's
// processor) on GOMAXPROCS goroutines, as extract's workers do; no model.
func BenchmarkStreamDecodeWDS10k(b *testing.B) {
	data := wdsBenchData(b, 10000)
	cfg := preprocess.DefaultConfig()
	b.ResetTimer()
	for range b.N {
		src, err := probe.OpenSource(data)
		if err != nil {
			b.Fatal(err)
		}
		items := make(chan probe.Item, 64)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for it := range items {
					img, err := preprocess.Decode(bytes.NewReader(it.Data), it.ID, preprocess.Options{})
					if err == nil {
						_, err = cfg.Process(img)
					}
					if err != nil {
						failed.Add(1)
					}
				}
			}()
		}
		for it, err := range src.Stream(indexRange(src.Len())) {
			if err != nil {
				b.Fatal(err)
			}
			items <- it
		}
		close(items)
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d images failed", failed.Load())
		}
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "images/s")
}
