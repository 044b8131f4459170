package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/perceiverkit/perceiver/core/weights"
)

// TestExplainRelevance runs probe explain --methods attnlrp,cp-lrp --raw on each tiny fixture's
// photo (the image processor's pixels are within 1e-6 of Hugging Face's) for the reference's
// target, and checks the command's contract against testdata/lrp/<arch>.safetensors (float64
// references from tools/lrp/attnlrp_reference.py, a torch transcription checked against the HF
// fixtures): the maps `attnlrp` and `cp_lrp` and the per-latent relevance `*_latents` within 1e-4
// of their largest magnitude; summary.json's conservation record: pixels within 1e-3 relative,
// positions and latents within 1e-3·max(|ref|, |y|), logit 1e-4 relative; the top latents'
// figure is written.
func TestExplainRelevance(t *testing.T) {
	cases := map[string][2]string{
		"fourier": {"../../testdata/tiny", "chelsea.png"},
		"learned": {"../../testdata/tiny-learned", "coffee.png"},
		"conv":    {"../../testdata/tiny-conv", "camera.png"},
	}
	for arch, c := range cases {
		t.Run(arch, func(t *testing.T) {
			ref, err := weights.OpenSafetensors(filepath.Join("../../testdata/lrp", arch+".safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			out := t.TempDir()
			_, errOut, code := run(t, "explain", "--model", c[0], "--image", filepath.Join(c[0], c[1]), "--out", out,
				"--target", ref.Metadata["target"], "--methods", "attnlrp,cp-lrp", "--raw")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got, err := weights.OpenSafetensors(filepath.Join(out, "maps.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			for _, name := range []string{"attnlrp", "cp_lrp", "attnlrp_latents", "cp_lrp_latents"} {
				g, want := got.Tensors[name], ref.Tensors[name]
				if g == nil || len(g.Data) != len(want.Data) || len(g.Shape) != len(want.Shape) || g.Shape[0] != want.Shape[0] {
					t.Fatalf("%s: got %v, want shape %v", name, g, want.Shape)
				}
				var d, r float64
				for i := range want.Data {
					d = max(d, math.Abs(float64(g.Data[i]-want.Data[i])))
					r = max(r, math.Abs(float64(want.Data[i])))
				}
				if d > 1e-4*r {
					t.Errorf("%s: max |Δ| %.3g > 1e-4 × %.3g", name, d, r)
				}
			}
			var sum explainSummary
			data, err := os.ReadFile(filepath.Join(out, "summary.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &sum); err != nil {
				t.Fatal(err)
			}
			for _, method := range []string{"attnlrp", "cp-lrp"} {
				term := func(k string) float64 {
					v, err := strconv.ParseFloat(ref.Metadata[method+"."+k], 64)
					if err != nil {
						t.Fatalf("reference %s.%s: %v", method, k, err)
					}
					return v
				}
				c := sum.Methods[method].Conservation
				if c == nil {
					t.Fatalf("%s: no conservation record in summary.json", method)
				}
				y := term("logit")
				for _, k := range []struct {
					name      string
					got, want float64
					tol       float64
				}{
					{"pixels", c.Pixels, term("pixels"), 1e-3 * math.Abs(term("pixels"))},
					{"positions", c.Positions, term("positions"), 1e-3 * max(math.Abs(term("positions")), math.Abs(y))},
					{"latents", c.Latents, term("latents"), 1e-3 * max(math.Abs(term("latents")), math.Abs(y))},
					{"logit", c.Logit, y, 1e-4 * math.Abs(y)},
				} {
					if !(math.Abs(k.got-k.want) <= k.tol) {
						t.Errorf("%s conservation %s: %.7g, reference %.7g", method, k.name, k.got, k.want)
					}
				}
				if n := len(sum.Methods[method].Latents); n != 8 {
					t.Errorf("%s: %d per-latent relevances in summary.json, want 8", method, n)
				}
				if _, err := os.Stat(filepath.Join(out, method+"-latents.png")); err != nil {
					t.Errorf("%s: no figure of the top latents: %v", method, err)
				}
			}
		})
	}
}
