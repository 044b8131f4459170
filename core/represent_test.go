package core

import (
	"math"
	"strings"
	"testing"
)

func TestParseRepresentations(t *testing.T) {
	c := FullSizeConfig()
	reps, err := c.ParseRepresentations("all")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range reps {
		names = append(names, r.Name)
	}
	want := "cross_mean block1_mean block2_mean block3_mean block4_mean block5_mean block6_mean block7_mean block8_mean decoder logits"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("all = %s", got)
	}
	if reps[8].State != 48 || reps[1].State != 6 || reps[10].Dim != 1000 {
		t.Errorf("states/dims wrong: %+v", reps)
	}
	r, err := c.ParseRepresentations("layer12_max, decoder")
	if err != nil || r[0].State != 12 || r[0].Reduce != "max" || r[1].Dim != 1024 {
		t.Errorf("layer12_max,decoder = %+v, %v", r, err)
	}
	for _, bad := range []string{"", "block0_mean", "block9_mean", "layer49_mean", "cross_sum", "foo", "layerx_mean"} {
		if _, err := c.ParseRepresentations(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestExtractMatchesTrace computes every representation from the full trace independently and
// compares bit for bit with what Extract reduces on the fly.
func TestExtractMatchesTrace(t *testing.T) {
	exp := openExpected(t)
	px := exp.Tensors["pixel_values"]
	m := loadTiny(t)
	reps, err := m.Config.ParseRepresentations("all,layer1_max,layer3_mean,cross_max")
	if err != nil {
		t.Fatal(err)
	}
	// Two images: the fixture and a brightened copy.
	n := len(px.Data)
	batch := make([]float32, 2*n)
	copy(batch, px.Data)
	for i, v := range px.Data {
		batch[n+i] = v + 0.5
	}
	vecs, _, err := m.Extract(batch, 2, 12, 16, reps)
	if err != nil {
		t.Fatal(err)
	}
	full, err := m.Forward(batch, 2, 12, 16, TraceAll) // maps kept: the numbers must not change
	if err != nil {
		t.Fatal(err)
	}
	L, D := full.Latents, full.Channels
	for i, r := range reps {
		for b := 0; b < 2; b++ {
			got := vecs[i][b*r.Dim : (b+1)*r.Dim]
			var want []float32
			switch r.Name {
			case "decoder":
				want = full.DecoderOutput[b*D : (b+1)*D]
			case "logits":
				want = full.Logits[b*5 : (b+1)*5]
			default:
				h := full.HiddenStates[r.State][b*L*D : (b+1)*L*D]
				want = make([]float32, D)
				for c := 0; c < D; c++ {
					var sum float64
					mx := float32(math.Inf(-1))
					for l := 0; l < L; l++ {
						sum += float64(h[l*D+c])
						mx = max(mx, h[l*D+c])
					}
					if r.Reduce == "mean" {
						want[c] = float32(sum / float64(L))
					} else {
						want[c] = mx
					}
				}
			}
			for c := range want {
				if got[c] != want[c] {
					t.Fatalf("%s image %d channel %d: %g, want %g", r.Name, b, c, got[c], want[c])
				}
			}
		}
	}
}
