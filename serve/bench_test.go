package serve

import (
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/explain"
)

// BenchmarkAnalyzeTiny is one analysis of the tiny fixture: forward pass, rollout products,
// rollout weights per step.
func BenchmarkAnalyzeTiny(b *testing.B) {
	m := loadTiny(b)
	img, err := m.Preprocessor.LoadImage(filepath.Join(tinyDir, "chelsea.png"), preprocess.Options{})
	if err != nil {
		b.Fatal(err)
	}
	kinds := Kinds()
	for b.Loop() {
		if _, err := analyze(m, img, kinds); err != nil {
			b.Fatal(err)
		}
	}
}

// fullSizeAnalysis is an analysis of the full-size model's shape (512 latents over 224×224, 48
// applications) with random attention: what a map request works on once the pass is cached.
func fullSizeAnalysis() *Analysis {
	const L, H, W, J = 512, 224, 224, 48
	r := rand.New(rand.NewPCG(3, 4))
	a := &Analysis{H: H, W: W, Latents: L, Applications: J, Cross: make([]float32, L*H*W), Decoder: make([]float32, L)}
	for i := range a.Cross {
		a.Cross[i] = r.Float32() / (H * W / 2)
	}
	for i := range a.Decoder {
		a.Decoder[i] = 1.0 / L
	}
	for range J + 1 {
		a.RolloutWeights = append(a.RolloutWeights, a.Decoder)
	}
	return a
}

// BenchmarkMapRequest224 is GET /api/map.png's work at full size past the cache: the rollout map
// (a weighted sum of 512 rows of 50,176) and its PNG.
func BenchmarkMapRequest224(b *testing.B) {
	a := fullSizeAnalysis()
	s := &Server{}
	kind := builtinKinds()[2]
	req := httptest.NewRequest("GET", "/api/map.png?kind=rollout", nil)
	for b.Loop() {
		m := make([]float32, a.H*a.W)
		if err := kind.Map(m, a, Query{Step: a.Applications}); err != nil {
			b.Fatal(err)
		}
		s.writeMap(httptest.NewRecorder(), req, m, a, false)
	}
}

// BenchmarkLatentRequest224 is GET /api/latent.png's work at full size: one row's PNG.
func BenchmarkLatentRequest224(b *testing.B) {
	a := fullSizeAnalysis()
	s := &Server{}
	req := httptest.NewRequest("GET", "/api/latent.png?latent=7", nil)
	for b.Loop() {
		s.writeMap(httptest.NewRecorder(), req, a.Cross[7*a.H*a.W:8*a.H*a.W], a, false)
	}
}

// BenchmarkCostlyMap224 is the work of a class-specific map's first request at full size (random
// weights, a random 224×224 image): explain's method (one forward and backward pass for chefer
// and saliency) and drawing it on the pixels. Later requests for it cost BenchmarkMapRequest224's
// PNG alone. Run with -benchtime 1x: a pass takes seconds.
func BenchmarkCostlyMap224(b *testing.B) {
	m, err := core.NewRandom(core.FullSizeConfig(), preprocess.DefaultConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	const H, W = 224, 224
	r := rand.New(rand.NewPCG(5, 6))
	a := &Analysis{Model: m, H: H, W: W, Pixels: make([]float32, 3*H*W)}
	for i := range a.Pixels {
		a.Pixels[i] = 2*r.Float32() - 1
	}
	for _, name := range []string{"chefer", "saliency"} {
		kind, err := ExplainKind(name, explain.DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			dst := make([]float32, H*W)
			for b.Loop() {
				if err := kind.Map(dst, a, Query{Class: 3}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
