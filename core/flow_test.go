package core

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
)

// The reference values in ../testdata/tiny-flow/expected.safetensors were produced by Hugging
// Face's PerceiverForOpticalFlow (PyTorch, float32) on the tiny flow config (12×16 training size, 8
// latents × 32, 2 self-attention layers of 4 heads, 54 → 8 patch projection, 4 Fourier bands,
// d_model 26) with the weights in model.safetensors (a copy of ../shared/fixtures/tiny-flow), on the
// frame pair frame1.png, frame2.png. Tolerance, from the issue: max |ours − ref| ≤ 1e-4 × max |ref|
// per tensor (parityTol).
const flowDir = "../testdata/tiny-flow"

// flowFrames loads the fixture's frame pair as the model's input [2, 3, H, W].
func flowFrames(t testing.TB) (frames []float32, h, w int) {
	t.Helper()
	var imgs [2]*preprocess.RGB
	for i, name := range []string{"frame1.png", "frame2.png"} {
		img, err := preprocess.DecodeFile(filepath.Join(flowDir, name), preprocess.Options{})
		if err != nil {
			t.Fatal(err)
		}
		imgs[i] = img
	}
	frames, err := preprocess.FlowFrames(imgs[0], imgs[1])
	if err != nil {
		t.Fatal(err)
	}
	return frames, imgs[0].H, imgs[0].W
}

func loadFlow(t testing.TB) *Model {
	t.Helper()
	m, err := Load(flowDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestFlowMatchesHuggingFace(t *testing.T) {
	exp := openExpectedIn(t, flowDir)
	frames, h, w := flowFrames(t)
	patches := make([]float32, FlowPatchChannels*h*w)
	FlowPatches(patches, frames, h, w)
	compare(t, "patches", patches, []int{1, 2, 27, h, w}, exp.Tensors["patches"])

	for _, path := range []string{"folded", "projected keys"} {
		t.Run(path, func(t *testing.T) {
			if path == "projected keys" {
				projectKeys = true
				defer func() { projectKeys = false }()
			}
			m := loadFlow(t)
			if k := m.Weights.Input.Kind(); k != "flow" {
				t.Fatalf("input stage %q, want flow", k)
			}
			out, err := m.ForwardFrames(frames, 1, h, w, TraceAll)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{"patches": true}
			for _, ts := range out.Tensors() {
				if ts.Name == "decoder_output" {
					continue // not in the fixture
				}
				ref, ok := exp.Tensors[ts.Name]
				if !ok {
					t.Errorf("%s: no reference tensor", ts.Name)
					continue
				}
				seen[ts.Name] = true
				compare(t, ts.Name, ts.Data, ts.Shape, ref)
			}
			for name := range exp.Tensors {
				if !seen[name] {
					t.Errorf("reference tensor %s was not produced", name)
				}
			}
		})
	}
}

// TestFlowStreamingDecoder checks the path that keeps nothing (no attention map held) against the
// same reference flow.
func TestFlowStreamingDecoder(t *testing.T) {
	exp := openExpectedIn(t, flowDir)
	frames, h, w := flowFrames(t)
	m := loadFlow(t)
	out, err := m.ForwardFrames(frames, 1, h, w, Trace{})
	if err != nil {
		t.Fatal(err)
	}
	if out.DecoderAttention != nil || out.EncoderAttention != nil || out.Inputs != nil {
		t.Error("forward kept states that were not asked for")
	}
	compare(t, "flow", out.Flow, []int{1, h, w, 2}, exp.Tensors["flow"])
}

func TestFlowInputErrors(t *testing.T) {
	m := loadFlow(t)
	frames, h, w := flowFrames(t)
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"one image", func() error { _, err := m.Forward(frames[:3*h*w], 1, h, w, Trace{}); return err }, "ForwardFrames"},
		{"short frames", func() error { _, err := m.ForwardFrames(frames[:5*h*w], 1, h, w, Trace{}); return err }, "want 1×2×3×12×16"},
		{"other size", func() error {
			_, err := m.ForwardFrames(make([]float32, 6*24*16), 1, 24, 16, Trace{})
			return err
		}, "training size 12×16, not 24×16"},
		{"latents only", func() error {
			_, err := m.ForwardLatents(make([]float32, m.Config.NumLatents*m.Config.DLatents), 1, Trace{})
			return err
		}, "use ForwardFrames"},
		{"classifier", func() error {
			c := loadTiny(t)
			_, err := c.ForwardFrames(frames, 1, h, w, Trace{})
			return err
		}, "use Forward"},
	}
	for _, c := range cases {
		err := c.run()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

// TestFlowQueryMaps checks the query maps against the same product of Hugging Face's decoder and
// encoder attention maps (expected.safetensors), within parityTol of the largest value.
func TestFlowQueryMaps(t *testing.T) {
	exp := openExpectedIn(t, flowDir)
	frames, h, w := flowFrames(t)
	m := loadFlow(t)
	var final []float32
	last := m.Config.NumSelfAttentionApplications()
	if _, err := m.ForwardFrames(frames, 1, h, w, Trace{OnHiddenState: func(i int, hid []float32) {
		if i == last {
			final = append([]float32(nil), hid...)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	pixels := [][2]int{{0, 0}, {5, 7}, {11, 15}}
	maps, err := m.FlowQueryMaps(frames, h, w, final, pixels)
	if err != nil {
		t.Fatal(err)
	}
	dec, enc := exp.Tensors["cross_attentions.decoder"].Data, exp.Tensors["cross_attentions.encoder"].Data
	L, N := m.Config.NumLatents, h*w
	for qi, p := range pixels {
		want := make([]float32, N)
		var total float64
		for i := 0; i < L; i++ {
			a := dec[(p[0]*w+p[1])*L+i]
			for j := range want {
				want[j] += a * enc[i*N+j]
			}
		}
		for _, v := range maps[qi] {
			total += float64(v)
		}
		compare(t, fmt.Sprintf("query map (%d, %d)", p[0], p[1]), maps[qi], []int{N}, &weights.Tensor{Shape: []int{N}, Data: want})
		if math.Abs(total-1) > 1e-5 {
			t.Errorf("query map (%d, %d) sums to %v, want 1", p[0], p[1], total)
		}
	}
	if _, err := m.FlowQueryMaps(frames, h, w, final, [][2]int{{12, 0}}); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("query outside the frames: error %v", err)
	}
}

// TestFlowEncoderMatchesProducts checks the flow model's separable paths (encoder_flow.go, the
// decoder's separableScores) against the per-token projection paths on a random model with
// several latent blocks, decoder chunks and another training size: the same results to float32
// rounding (1e-5 of the largest value).
func TestFlowEncoderMatchesProducts(t *testing.T) {
	base := loadFlow(t)
	cfg := base.Config
	cfg.NumLatents, cfg.TrainSize = 2*flowLatentBlock+6, []int{20, 28}
	shapes := map[string][]int{}
	for _, p := range base.Weights.Params() {
		shapes[p.Name] = p.Param.Shape
	}
	m, err := newModel(cfg, base.Preprocessor, func(name string) []int { return shapes[name] })
	if err != nil {
		t.Fatal(err)
	}
	m.Weights.randomize(3)
	m.Weights.prepack()
	const h, w = 20, 28
	frames := make([]float32, 6*h*w)
	for i := range frames {
		frames[i] = float32(math.Sin(float64(i)*0.37)) * 0.9
	}
	tr := Trace{HiddenStates: true, EncoderAttention: true, DecoderAttention: true}
	defer func(c int) { flowQueryChunk = c }(flowQueryChunk)
	flowQueryChunk = 100 // several decoder chunks, the last one short
	fast, err := m.ForwardFrames(frames, 1, h, w, tr)
	if err != nil {
		t.Fatal(err)
	}
	projectKeys = true
	slow, err := m.ForwardFrames(frames, 1, h, w, tr)
	projectKeys = false
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want []float32
	}{
		{"cross_attentions.encoder", fast.EncoderAttention, slow.EncoderAttention},
		{"hidden_states.0", fast.HiddenStates[0], slow.HiddenStates[0]},
		{"flow", fast.Flow, slow.Flow},
		{"cross_attentions.decoder", fast.DecoderAttention, slow.DecoderAttention},
	} {
		if e := relErr(c.got, c.want); !(e <= 1e-5) {
			t.Errorf("%s: relative error %.3g > 1e-5", c.name, e)
		}
	}
}

// TestFlowFullSizeLayout checks the tensors of the full-size flow architecture against
// PerceiverForOpticalFlow's module tree for deepmind/optical-flow-perceiver's config (the tiny
// fixture has the same names): 425 tensors, and the shapes that follow from d_model 322, 2,048
// latents × 512 and 24 self-attention layers.
func TestFlowFullSizeLayout(t *testing.T) {
	cfg, err := FullSizeConfigFor("flow")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, preprocess.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{}
	for _, p := range m.Weights.Params() {
		shapes[p.Name] = p.Param.Shape
	}
	if len(shapes) != 425 {
		t.Errorf("%d tensors, want 425", len(shapes))
	}
	const dec = "perceiver.decoder.decoder."
	for name, want := range map[string][]int{
		"perceiver.input_preprocessor.conv_after_patches.weight":          {64, 54},
		"perceiver.embeddings.latents":                                    {2048, 512},
		"perceiver.encoder.cross_attention.attention.self.query.weight":   {322, 512},
		"perceiver.encoder.cross_attention.attention.self.key.weight":     {322, 322},
		"perceiver.encoder.cross_attention.attention.output.dense.weight": {512, 322},
		"perceiver.encoder.self_attends.23.mlp.dense1.weight":             {512, 512},
		dec + "decoding_cross_attention.attention.self.layernorm1.weight": {322},
		dec + "decoding_cross_attention.attention.self.query.weight":      {512, 322},
		dec + "decoding_cross_attention.attention.self.value.weight":      {512, 512},
		dec + "decoding_cross_attention.attention.output.dense.weight":    {322, 512},
		dec + "decoding_cross_attention.mlp.dense1.weight":                {322, 322},
		dec + "final_layer.weight":                                        {2, 322},
	} {
		if got, ok := shapes[name]; !ok || !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// TestFlowFLOPs: Hugging Face's count for one 368×496 pair of the full-size flow model, worked out by
// hand from the layer shapes (encoder 2·N·322·644 + 2·L·N·644 + … = 560, latent stack 24 × 15.03 =
// 361, decoder 2·N·322·512 + 2·N·L·1024 + 2·N·512·322 + 4·N·322² + … = 964): about 1,887 GFLOPs.
// Executed: encoder 92 (patch products 2·L·N·(54+64)), latent stack 361, decoder 363 (scores
// 2·N·55·L, values 2·N·L·322, MLP): about 816.
func TestFlowFLOPs(t *testing.T) {
	cfg, _ := FullSizeConfigFor("flow")
	m, err := New(cfg, preprocess.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	hf, ex := m.FLOPs(368, 496)/1e9, m.ExecutedFLOPs(368, 496)/1e9
	t.Logf("%.1f GFLOPs as Hugging Face computes it, %.1f executed", hf, ex)
	if hf < 1880 || hf > 1895 {
		t.Errorf("%.1f GFLOPs, want about 1,887", hf)
	}
	if ex < 810 || ex > 820 {
		t.Errorf("%.1f GFLOPs executed, want about 816", ex)
	}
}
