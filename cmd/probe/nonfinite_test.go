package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core/weights"
)

// tinyWith copies the tiny model into a temporary folder, with every value of the named tensor
// set to v.
func tinyWith(t *testing.T, tensor string, v float32) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config.json", "preprocessor_config.json"} {
		data, err := os.ReadFile(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	f, err := weights.OpenSafetensors(filepath.Join(tinyDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []*weights.Tensor
	found := false
	for _, name := range f.Names() {
		tt := *f.Tensors[name]
		tt.Data = append([]float32(nil), tt.Data...)
		if name == tensor {
			found = true
			for i := range tt.Data {
				tt.Data[i] = v
			}
		}
		ts = append(ts, &tt)
	}
	if !found {
		t.Fatalf("no tensor %s", tensor)
	}
	if err := weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fails runs args and wants exit 1, one error naming each of want, and nothing on stdout that
// looks like a number that is not one.
func fails(t *testing.T, want []string, args ...string) {
	t.Helper()
	stdout, stderr, code := run(t, args...)
	if code != 1 {
		t.Errorf("%v: exit %d, want 1 (stdout %q)", args[0], code, stdout)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%v: error %q does not mention %q", args[0], stderr, w)
		}
	}
	if strings.Contains(stdout, "NaN") || strings.Contains(stdout, "Inf") {
		t.Errorf("%v printed non-finite numbers: %q", args[0], stdout)
	}
}

// TestNonFiniteWeightsAndOutputs: NaN weights are refused at load naming the tensor; finite
// weights whose outputs overflow (logits of ±Inf, so NaN probabilities) are refused before
// anything is printed or written, naming the image and the model. Before, classify printed NaN
// probabilities with exit 0 and extract wrote all-NaN features (issue 19 item 10).
func TestNonFiniteWeightsAndOutputs(t *testing.T) {
	img := filepath.Join(tinyDir, "chelsea.png")
	const final = "perceiver.decoder.decoder.final_layer.weight"

	nan := tinyWith(t, final, float32(math.NaN()))
	fails(t, []string{final, "NaN"}, "classify", "--model", nan, img)

	huge := tinyWith(t, final, 3e38)
	fails(t, []string{img, huge, "non-finite", "logits"}, "classify", "--model", huge, img)
	fails(t, []string{img, huge, "non-finite"}, "classify", "--model", huge, "--json", img)
	out := filepath.Join(t.TempDir(), "f.parquet")
	fails(t, []string{"non-finite", "logits"}, "extract", "--model", huge, "--data", imageFolder(t), "--out", out, "--layers", "decoder,logits", "--quiet")
	if _, err := os.Stat(out); err == nil {
		t.Errorf("extract wrote %s from non-finite outputs", out)
	}
	dump := filepath.Join(t.TempDir(), "d.safetensors")
	fails(t, []string{img, "non-finite", "logits"}, "dump", "--model", huge, "--image", img, "--out", dump)
	if _, err := os.Stat(dump); err == nil {
		t.Errorf("dump wrote %s from non-finite outputs", dump)
	}
}

// TestAttentionRefusesNonFiniteMaps: cross-attention scores that overflow give NaN maps, which are
// refused before any figure or tensor is written (issue 19 item 10).
func TestAttentionRefusesNonFiniteMaps(t *testing.T) {
	img := filepath.Join(tinyDir, "chelsea.png")
	huge := tinyWith(t, "perceiver.encoder.cross_attention.attention.self.query.weight", 3e38)
	out := t.TempDir()
	fails(t, []string{img, huge, "non-finite"}, "attention", "--model", huge, "--image", img, "--out", out, "--raw")
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("attention wrote %d files from non-finite maps", len(entries))
	}
}
