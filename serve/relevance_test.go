package serve

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/explain"
)

// TestRelevanceEndpoint checks GET /api/relevance against explain.Relevance on the tiny Fourier
// fixture (whose maps are tested against the torch references in package explain): the same
// per-latent relevance and conservation record, to float32 rounding (1e-6 of the largest), for
// two classes; and a one-line 400 for a kind that is not a relevance propagation.
func TestRelevanceEndpoint(t *testing.T) {
	_, url, m := fixtureServer(t, "../testdata/tiny", "chelsea.png", Options{})
	img, err := m.Preprocessor.LoadImage(filepath.Join("../testdata/tiny", "chelsea.png"), preprocess.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"attnlrp", "cp-lrp"} {
		for _, c := range []int{0, 3} {
			want, err := explain.Relevance(explain.Input{Model: m, Pixels: img.Pixels, H: img.H, W: img.W, Target: c}, kind)
			if err != nil {
				t.Fatal(err)
			}
			var got relevanceJSON
			getJSON(t, fmt.Sprintf("%s/api/relevance?image=img.png&kind=%s&class=%d", url, kind, c), &got)
			if got.Kind != kind || got.Class != c || len(got.Latents) != len(want.Latents) {
				t.Fatalf("%s class %d: got %+v", kind, c, got)
			}
			var scale float64
			for _, v := range want.Latents {
				scale = max(scale, math.Abs(float64(v)))
			}
			for i, v := range want.Latents {
				if math.Abs(float64(got.Latents[i]-v)) > 1e-6*scale {
					t.Errorf("%s class %d latent %d: %g, explain gives %g", kind, c, i, got.Latents[i], v)
				}
			}
			wc := want.Conservation
			for k, v := range map[string]float64{"pixels": wc.Pixels, "positions": wc.Positions, "latents": wc.Latents, "query": wc.Query, "absorbed": wc.Absorbed, "logit": wc.Logit} {
				if math.Abs(float64(got.Conservation[k])-v) > 1e-6*math.Abs(wc.Logit) {
					t.Errorf("%s class %d conservation %s: %g, explain gives %g", kind, c, k, got.Conservation[k], v)
				}
			}
		}
	}
	resp, body := get(t, url+"/api/relevance?image=img.png&kind=chefer")
	if resp.StatusCode != 400 {
		t.Errorf("relevance of chefer: %d %s, want 400", resp.StatusCode, body)
	}
}
