package core

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
)

// The reference values in ../testdata/tiny/expected.safetensors were produced by Hugging Face's
// PerceiverForImageClassificationFourier (PyTorch 1.13, float32) on the tiny config with the weights
// in model.safetensors / pytorch_model.bin (copies of ../shared/fixtures/tiny). Tolerance, from the
// issue: max |ours − ref| ≤ 1e-4 × max |ref| per tensor.
const parityTol = 1e-4

const tinyDir = "../testdata/tiny"

// The three image classifiers' fixtures: Hugging Face's …Fourier, …Learned and …ConvProcessing
// (copies of ../shared/fixtures/tiny*), each with the forward tensors of the upstream module on
// one photo in expected.safetensors.
var fixtureDirs = map[string]string{"fourier": tinyDir, "learned": "../testdata/tiny-learned", "conv": "../testdata/tiny-conv"}

func openExpected(t testing.TB) *weights.File { return openExpectedIn(t, tinyDir) }

func openExpectedIn(t testing.TB, dir string) *weights.File {
	t.Helper()
	f, err := weights.OpenSafetensors(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// loadTiny loads the tiny fixture model, closed when the test ends.
func loadTiny(t testing.TB) *Model {
	t.Helper()
	m, err := Load(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// modelDirWith makes a model folder holding the tiny config and only the named weights file.
func modelDirWith(t testing.TB, weightsFile string) string {
	return fixtureWith(t, tinyDir, weightsFile)
}

// fixtureWith makes a model folder holding a fixture's configs and only the named weights file.
func fixtureWith(t testing.TB, from, weightsFile string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{ConfigFile, PreprocessorFile, weightsFile} {
		data, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// relErr is max |got − want| / max |want|.
func relErr(got, want []float32) float64 {
	var maxDiff, maxRef float64
	for i := range want {
		maxDiff = max(maxDiff, math.Abs(float64(got[i])-float64(want[i])))
		maxRef = max(maxRef, math.Abs(float64(want[i])))
	}
	return maxDiff / maxRef
}

func compare(t *testing.T, name string, got []float32, gotShape []int, ref *weights.Tensor) {
	t.Helper()
	if !slices.Equal(gotShape, ref.Shape) {
		t.Errorf("%s: shape %v, want %v", name, gotShape, ref.Shape)
		return
	}
	if len(got) != len(ref.Data) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(ref.Data))
		return
	}
	if e := relErr(got, ref.Data); !(e <= parityTol) {
		t.Errorf("%s: relative error %.3g > %g", name, e, parityTol)
	} else {
		t.Logf("%-26s relative error %.2g", name, e)
	}
}

func TestForwardMatchesHuggingFace(t *testing.T) {
	for _, kind := range []string{"fourier", "learned", "conv"} {
		t.Run(kind, func(t *testing.T) { testForwardMatches(t, fixtureDirs[kind], kind) })
	}
}

func testForwardMatches(t *testing.T, fixture, kind string) {
	exp := openExpectedIn(t, fixture)
	px := exp.Tensors["pixel_values"]
	for _, file := range []string{"model.safetensors", "pytorch_model.bin", "projected keys", "streamed tokens"} {
		t.Run(file, func(t *testing.T) {
			switch file {
			case "projected keys":
				// The general encoder path (per-token key and value projections), which configs
				// with several cross-attention heads take.
				projectKeys = true
				defer func() { projectKeys = false }()
				file = "model.safetensors"
			case "streamed tokens":
				// The single-head fold over streamed tokens, without the specialisations to
				// Fourier pixels and learned tokens.
				streamTokens = true
				defer func() { streamTokens = false }()
				file = "model.safetensors"
			}
			m, err := Load(fixtureWith(t, fixture, file))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if k := m.Weights.Input.Kind(); k != kind {
				t.Fatalf("input stage %q, want %q", k, kind)
			}
			out, err := m.Forward(px.Data, px.Shape[0], px.Shape[2], px.Shape[3], TraceAll)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, ts := range out.Tensors() {
				ref, ok := exp.Tensors[ts.Name]
				if !ok {
					t.Errorf("%s: no reference tensor", ts.Name)
					continue
				}
				seen[ts.Name] = true
				compare(t, ts.Name, ts.Data, ts.Shape, ref)
			}
			last := out.HiddenStates[len(out.HiddenStates)-1]
			compare(t, "hidden_states.last", last, []int{1, out.Latents, out.Channels}, exp.Tensors["hidden_states.last"])
			for name := range exp.Tensors {
				// grad.* and map.* are the explanation fixtures, checked where gradients are.
				if !seen[name] && name != "pixel_values" && name != "hidden_states.last" &&
					!strings.HasPrefix(name, "grad.") && !strings.HasPrefix(name, "map.") {
					t.Errorf("reference tensor %s was not produced", name)
				}
			}
		})
	}
}

// TestStreamingCrossAttention checks the path taken when no map is kept, which never holds the
// latents × pixels scores, against the same reference.
func TestStreamingCrossAttention(t *testing.T) {
	exp := openExpected(t)
	px := exp.Tensors["pixel_values"]
	m := loadTiny(t)
	out, err := m.Forward(px.Data, 1, px.Shape[2], px.Shape[3], Trace{DecoderOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	if out.EncoderAttention != nil || out.HiddenStates != nil || out.SelfAttentions != nil || out.Inputs != nil {
		t.Error("forward kept states that were not asked for")
	}
	compare(t, "logits", out.Logits, []int{1, 5}, exp.Tensors["logits"])
	compare(t, "decoder_output", out.DecoderOutput, []int{1, 1, 32}, exp.Tensors["decoder_output"])
}

// TestBatchMatchesSingle runs three different images as one batch and one at a time: the numbers
// must be identical, bit for bit.
func TestBatchMatchesSingle(t *testing.T) {
	exp := openExpected(t)
	px := exp.Tensors["pixel_values"]
	m := loadTiny(t)
	n := len(px.Data)
	batch := make([]float32, 3*n)
	for b := 0; b < 3; b++ {
		for i, v := range px.Data {
			batch[b*n+i] = v*float32(1+0.3*float64(b)) - 0.1*float32(b)
		}
	}
	h, w := px.Shape[2], px.Shape[3]
	all, err := m.Forward(batch, 3, h, w, TraceAll)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 3; b++ {
		one, err := m.Forward(batch[b*n:(b+1)*n], 1, h, w, TraceAll)
		if err != nil {
			t.Fatal(err)
		}
		for i, ts := range one.Tensors() {
			big := all.Tensors()[i]
			per := len(ts.Data)
			if !slices.Equal(ts.Data, big.Data[b*per:(b+1)*per]) {
				t.Errorf("image %d: %s differs between batch and single", b, ts.Name)
			}
		}
	}
}

// hubTensors lists the tensors of deepmind/vision-perceiver-fourier's checkpoint: the names are
// Hugging Face's module paths (as in the tiny fixture, with 6 self-attention layers) and the
// shapes follow from its config (d_model 261, d_latents 1024, 512 latents, 1000 labels).
func hubTensors() map[string][]int {
	const d, in, labels = 1024, 261, 1000
	t := map[string][]int{
		"perceiver.embeddings.latents":                                            {512, d},
		"perceiver.decoder.decoder.output_position_encodings.position_embeddings": {1, d},
		"perceiver.decoder.decoder.final_layer.weight":                            {labels, d},
		"perceiver.decoder.decoder.final_layer.bias":                              {labels},
	}
	layer := func(prefix string, kv, qk, out int, cross bool) {
		lin := func(name string, o, i int) {
			t[prefix+name+".weight"] = []int{o, i}
			t[prefix+name+".bias"] = []int{o}
		}
		norm := func(name string, n int) {
			t[prefix+name+".weight"] = []int{n}
			t[prefix+name+".bias"] = []int{n}
		}
		norm(".attention.self.layernorm1", d)
		if cross {
			norm(".attention.self.layernorm2", kv)
		}
		lin(".attention.self.query", qk, d)
		lin(".attention.self.key", qk, kv)
		lin(".attention.self.value", qk, kv)
		lin(".attention.output.dense", out, qk)
		norm(".layernorm", d)
		lin(".mlp.dense1", d, d)
		lin(".mlp.dense2", d, d)
	}
	layer("perceiver.encoder.cross_attention", in, in, d, true)
	for i := 0; i < 6; i++ {
		layer(fmt.Sprintf("perceiver.encoder.self_attends.%d", i), d, d, d, false)
	}
	layer("perceiver.decoder.decoder.decoding_cross_attention", d, d, d, true)
	return t
}

func TestFullSizeLayoutMatchesHub(t *testing.T) {
	m, err := New(FullSizeConfig(), preprocess.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := hubTensors()
	params := m.Weights.Params()
	// Facts of the hub checkpoint: 136 tensors, 48,440,627 parameters.
	if len(params) != 136 || len(want) != 136 {
		t.Errorf("%d tensors (table %d), want 136", len(params), len(want))
	}
	if n := m.Weights.NumParams(); n != 48_440_627 {
		t.Errorf("%d parameters, want 48,440,627", n)
	}
	for _, p := range params {
		shape, ok := want[p.Name]
		if !ok {
			t.Errorf("unexpected tensor %s", p.Name)
		} else if !slices.Equal(shape, p.Param.Shape) {
			t.Errorf("%s: shape %v, want %v", p.Name, p.Param.Shape, shape)
		}
	}
}

func TestFullSizeForward(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size forward pass: about 400 GFLOP")
	}
	m, err := NewRandom(FullSizeConfig(), preprocess.DefaultConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	px := make([]float32, 3*224*224)
	for i := range px {
		px[i] = float32(math.Sin(float64(i) * 0.001))
	}
	out, err := m.Forward(px, 1, 224, 224, Trace{HiddenStates: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Logits) != 1000 || len(out.HiddenStates) != 49 {
		t.Fatalf("%d logits and %d hidden states, want 1000 and 49", len(out.Logits), len(out.HiddenStates))
	}
	for _, v := range out.Logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite logit")
		}
	}
}

// TestLoadErrors checks that every kind of broken model folder gives one line naming the file and,
// where there is one, the tensor.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(dir string)
		want  []string
	}{
		{"no folder", func(dir string) { os.RemoveAll(dir) }, []string{"model folder"}},
		{"no config", func(dir string) { os.Remove(filepath.Join(dir, ConfigFile)) }, []string{ConfigFile}},
		{"bad json", func(dir string) { write(t, dir, ConfigFile, "{") }, []string{ConfigFile}},
		{"impossible config", func(dir string) {
			edit(t, dir, ConfigFile, `"num_self_attention_heads": 4`, `"num_self_attention_heads": 5`)
		}, []string{ConfigFile, "not divisible by num_self_attention_heads 5"}},
		{"zero latents", func(dir string) {
			edit(t, dir, ConfigFile, `"num_latents": 8`, `"num_latents": 0`)
		}, []string{ConfigFile, "num_latents is 0"}},
		{"no weights", func(dir string) { os.Remove(filepath.Join(dir, "model.safetensors")) }, []string{"model.safetensors"}},
		{"shape mismatch", func(dir string) {
			edit(t, dir, ConfigFile, `"num_latents": 8`, `"num_latents": 9`)
		}, []string{"model.safetensors", "perceiver.embeddings.latents is [8 32], want [9 32]"}},
		{"missing and unexpected tensors", func(dir string) {
			f, err := weights.OpenSafetensors(filepath.Join(tinyDir, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var ts []*weights.Tensor
			for _, name := range f.Names() {
				tt := *f.Tensors[name]
				switch name {
				case "perceiver.encoder.self_attends.1.mlp.dense2.bias":
					continue
				case "perceiver.embeddings.latents":
					extra := tt
					extra.Name = "perceiver.embeddings.extra"
					ts = append(ts, &extra)
				}
				ts = append(ts, &tt)
			}
			if err := weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
				t.Fatal(err)
			}
		}, []string{"model.safetensors", "1 missing: perceiver.encoder.self_attends.1.mlp.dense2.bias", "1 unexpected: perceiver.embeddings.extra"}},
		{"truncated weights", func(dir string) {
			data, _ := os.ReadFile(filepath.Join(tinyDir, "model.safetensors"))
			write(t, dir, "model.safetensors", string(data[:len(data)/2]))
		}, []string{"model.safetensors"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := modelDirWith(t, "model.safetensors")
			c.setup(dir)
			m, err := Load(dir)
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error has several lines: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func write(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func edit(t testing.TB, dir, name, old, new string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	write(t, dir, name, strings.Replace(string(data), old, new, 1))
}

// TestHooksSeeEveryState checks that the streaming hooks receive the same hidden states and
// self-attention maps that the trace keeps.
func TestHooksSeeEveryState(t *testing.T) {
	exp := openExpected(t)
	px := exp.Tensors["pixel_values"]
	m := loadTiny(t)
	var states, maps [][]float32
	tr := TraceAll
	tr.OnHiddenState = func(i int, h []float32) {
		if i != len(states) {
			t.Errorf("hidden state %d arrived as number %d", i, len(states))
		}
		states = append(states, append([]float32(nil), h...))
	}
	tr.OnSelfAttention = func(b, j int, p []float32) { maps = append(maps, append([]float32(nil), p...)) }
	out, err := m.Forward(px.Data, 1, px.Shape[2], px.Shape[3], tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != len(out.HiddenStates) || len(maps) != len(out.SelfAttentions) {
		t.Fatalf("hooks saw %d states and %d maps, trace kept %d and %d", len(states), len(maps), len(out.HiddenStates), len(out.SelfAttentions))
	}
	for i := range states {
		if !slices.Equal(states[i], out.HiddenStates[i]) {
			t.Errorf("hidden state %d differs", i)
		}
	}
	for j := range maps {
		if !slices.Equal(maps[j], out.SelfAttentions[j]) {
			t.Errorf("attention map %d differs", j)
		}
	}
}

// TestPreprocessMatchesFixtures runs each fixture's photo through the model's own processor
// settings (a square crop for learned, 24×32 for conv) and compares with the pixel_values Hugging
// Face's PerceiverImageProcessor gave the upstream module (expected.safetensors, metadata "image"):
// within 1e-6, the bar of core/preprocess's own tests.
func TestPreprocessMatchesFixtures(t *testing.T) {
	for kind, dir := range fixtureDirs {
		t.Run(kind, func(t *testing.T) {
			exp := openExpectedIn(t, dir)
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			img, err := m.Preprocessor.LoadImage(filepath.Join(dir, exp.Metadata["image"]), preprocess.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ref := exp.Tensors["pixel_values"]
			if got := []int{1, 3, img.H, img.W}; !slices.Equal(got, ref.Shape) {
				t.Fatalf("pixel_values %v, want %v", got, ref.Shape)
			}
			var worst float64
			for i, v := range ref.Data {
				worst = max(worst, math.Abs(float64(img.Pixels[i]-v)))
			}
			if worst > 1e-6 {
				t.Errorf("pixel_values differ by up to %.3g (bar 1e-6)", worst)
			}
		})
	}
}
