package explain

import (
	"math"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// BenchmarkRelevance224 times one AttnLRP map (attnlrp: a forward and a modified backward pass,
// with the conservation record and per-latent relevance) against one saliency map (a forward and a
// plain backward pass to the pixels) on each full-size architecture (random weights, seed 1) at
// 224², alternating the two (in either order) so that both see the same load. It reports each
// method's seconds per map and their ratio (issue 24 asks attnlrp ≤ 1.2× saliency).
var benchModels = map[string]*core.Model{}

func BenchmarkRelevance224(b *testing.B) {
	for _, arch := range []string{"fourier", "learned", "conv"} {
		b.Run(arch, func(b *testing.B) {
			b.StopTimer()
			px := make([]float32, 3*224*224)
			for i := range px {
				px[i] = float32(math.Sin(float64(i)))
			}
			sal, _ := Lookup("saliency")
			lrp, _ := Lookup("attnlrp")
			m := benchModels[arch]
			if m == nil {
				cfg, err := core.FullSizeConfigFor(arch)
				if err != nil {
					b.Fatal(err)
				}
				if m, err = core.NewRandom(cfg, preprocess.DefaultConfig(), 1); err != nil {
					b.Fatal(err)
				}
				benchModels[arch] = m
				// One map first: packing the weights for the backward is not a map's cost.
				if _, err := lrp.Compute(Input{Model: m, Pixels: px, H: 224, W: 224, Target: 1}, DefaultOptions()); err != nil {
					b.Fatal(err)
				}
			}
			in := Input{Model: m, Pixels: px, H: 224, W: 224, Target: 1}
			b.StartTimer()
			var ts, tl time.Duration
			timed := func(meth Method) time.Duration {
				t0 := time.Now()
				if _, err := meth.Compute(in, DefaultOptions()); err != nil {
					b.Fatal(err)
				}
				return time.Since(t0)
			}
			for i := 0; i < b.N; i++ {
				// Odd iterations run attnlrp first, so that neither always follows the other.
				if i%2 == 0 {
					ts += timed(sal)
					tl += timed(lrp)
				} else {
					tl += timed(lrp)
					ts += timed(sal)
				}
			}
			b.ReportMetric(ts.Seconds()/float64(b.N), "s/saliency")
			b.ReportMetric(tl.Seconds()/float64(b.N), "s/attnlrp")
			b.ReportMetric(tl.Seconds()/ts.Seconds(), "attnlrp/saliency")
		})
	}
}
