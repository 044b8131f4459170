package sae

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/perceiverkit/perceiver/core"
)

func TestTopKOrderAndTies(t *testing.T) {
	p := []float32{1, 3, 3, -1, 2, 3, 0}
	idx, val := make([]int32, 4), make([]float32, 4)
	topK(idx, val, p, 4)
	if !slices.Equal(idx, []int32{1, 2, 5, 4}) || !slices.Equal(val, []float32{3, 3, 3, 2}) {
		t.Errorf("topK = %v %v, want [1 2 5 4] [3 3 3 2] (ties: lower index first)", idx, val)
	}
	topK(idx[:2], val[:2], []float32{-3, -1, -2}, 2)
	if !slices.Equal(idx[:2], []int32{1, 2}) {
		t.Errorf("negative values: %v", idx[:2])
	}
}

// TestEncodeDecodeIdentity uses W_dec = [I, −I], W_enc = W_decᵀ, k = d: every input is
// reconstructed exactly, and each code lists the |x_i| in descending order.
func TestEncodeDecodeIdentity(t *testing.T) {
	d := 4
	s := &SAE{D: d, M: 2 * d, K: d, Enc: make([]float32, 2*d*d), BEnc: make([]float32, 2*d), Dict: make([]float32, 2*d*d), BDec: make([]float32, d)}
	for i := 0; i < d; i++ {
		s.Enc[i*d+i], s.Enc[(d+i)*d+i] = 1, -1
		s.Dict[i*d+i], s.Dict[(d+i)*d+i] = 1, -1
	}
	x := []float32{0.5, -2, 1, -0.25}
	idx, val := make([]int32, d), make([]float32, d)
	s.Encode(idx, val, x, 1)
	if !slices.Equal(idx, []int32{5, 2, 0, 7}) || !slices.Equal(val, []float32{2, 1, 0.5, 0.25}) {
		t.Errorf("code %v %v", idx, val)
	}
	xh := make([]float32, d)
	s.Decode(xh, idx, val, 1)
	if !slices.Equal(xh, x) {
		t.Errorf("decoded %v, want %v", xh, x)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s := NewRandom(6, 10, 3, 5)
	for i := range s.BEnc {
		s.BEnc[i] = float32(i)
	}
	s.BDec[2] = 7
	p := filepath.Join(t.TempDir(), "sae.safetensors")
	if err := s.Save(p, nil); err != nil {
		t.Fatal(err)
	}
	r, err := Load(p, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Enc, s.Enc) || !slices.Equal(r.Dict, s.Dict) || !slices.Equal(r.BEnc, s.BEnc) || !slices.Equal(r.BDec, s.BDec) {
		t.Error("weights differ after a round trip")
	}
	for j := 0; j < 10; j++ { // unit-norm decoder columns, W_enc = W_decᵀ at initialisation
		var n float64
		for i := 0; i < 6; i++ {
			n += float64(s.Dict[j*6+i]) * float64(s.Dict[j*6+i])
		}
		if math.Abs(n-1) > 1e-6 {
			t.Errorf("column %d has squared norm %v", j, n)
		}
	}
	if _, err := Load(p, 11); err == nil {
		t.Error("k > M accepted")
	}
}

// TestTrainKeepsUnitNormAndL0 trains briefly and checks the invariants after the last step.
func TestTrainKeepsUnitNormAndL0(t *testing.T) {
	data := openTokenFixture("../testdata/sae/synthetic.tokens/sparse")(t)
	split := MakeSplit(data.Units(), 0.1, 3)
	if len(split.Holdout) != 200 || len(split.Train) != 1800 {
		t.Fatalf("split %d/%d, want 1800/200 (round(0.1·2000))", len(split.Train), len(split.Holdout))
	}
	cfg := Config{Dict: 64, K: 4, Epochs: 1, Batch: 100, LR: 1e-3, Seed: 3, Holdout: 0.1}
	st, err := Train(data, split.Train, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 18 || st.AuxK != 16 || st.DeadWindow != 1800 {
		t.Errorf("steps %d, aux_k %d, dead window %d; want 18, 16 (d/2), 1800 (one epoch)", st.Step, st.AuxK, st.DeadWindow)
	}
	for j := 0; j < 64; j++ {
		var n float64
		for _, v := range st.Model.Dict[j*32 : (j+1)*32] {
			n += float64(v) * float64(v)
		}
		if math.Abs(n-1) > 1e-5 {
			t.Fatalf("decoder column %d has squared norm %v after training", j, n)
		}
	}
	if m := Evaluate(st.Model, data, split.Holdout); m.L0 != 4 || !(m.FVU < 1) {
		t.Errorf("holdout %+v", m)
	}
}

// TestTokenHeatmap checks the map against the attention drawn by hand on a conv-like grid.
func TestTokenHeatmap(t *testing.T) {
	g := core.TokenGrid{Rows: 2, Cols: 2, Height: 8, Width: 8, Stride: 4, Offset: 2}
	heads, L, n := 2, 3, 4
	attn := make([]float32, heads*L*n)
	for i := range attn {
		attn[i] = float32(i)
	}
	dst := make([]float32, 64)
	TokenHeatmap(dst, attn, heads, L, 1, 2, g)
	// latent 1: head 0 row [4 5 6 7], head 1 row [16 17 18 19]; mean × 2 = [20 22 24 26].
	want := []float32{20, 22, 24, 26}
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			if got := dst[y*8+x]; got != want[(y/4)*2+x/4] {
				t.Fatalf("pixel (%d,%d) = %v, want %v", y, x, got, want[(y/4)*2+x/4])
			}
		}
	}
}
