package core

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core/weights"
)

// rewriteWeights writes dir/model.safetensors from the tiny model's tensors, passed through edit
// (which may change a copy of a tensor's values, rename it, or add tensors).
func rewriteWeights(t *testing.T, dir string, edit func(ts []*weights.Tensor) []*weights.Tensor) {
	t.Helper()
	f, err := weights.OpenSafetensors(filepath.Join(tinyDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []*weights.Tensor
	for _, name := range f.Names() {
		tt := *f.Tensors[name]
		tt.Data = append([]float32(nil), tt.Data...)
		ts = append(ts, &tt)
	}
	if err := weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), edit(ts), nil); err != nil {
		t.Fatal(err)
	}
}

func poison(name string, i int, v float32) func([]*weights.Tensor) []*weights.Tensor {
	return func(ts []*weights.Tensor) []*weights.Tensor {
		for _, t := range ts {
			if t.Name == name {
				t.Data[i] = v
			}
		}
		return ts
	}
}

// TestLoadRefusesNonFiniteWeights: a NaN or infinite weight is refused at load, naming the file,
// the tensor, the kind of value and where it is; before, classify printed NaN probabilities with
// exit status 0 (issue 19 item 10).
func TestLoadRefusesNonFiniteWeights(t *testing.T) {
	for _, c := range []struct {
		tensor string
		i      int
		v      float32
		want   string
	}{
		{"perceiver.encoder.self_attends.1.mlp.dense2.bias", 3, float32(math.NaN()), "NaN at index 3"},
		{"perceiver.embeddings.latents", 40, float32(math.Inf(-1)), "-Inf at index 40"},
	} {
		dir := modelDirWith(t, "model.safetensors")
		rewriteWeights(t, dir, poison(c.tensor, c.i, c.v))
		m, err := Load(dir)
		if err == nil {
			m.Close()
			t.Errorf("%s: Load accepted a non-finite weight", c.tensor)
			continue
		}
		for _, w := range []string{filepath.Join(dir, "model.safetensors"), c.tensor, c.want} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}
}

// TestLoadRefusesOtherModelType: a config.json of another architecture is an error naming its
// model_type (issue 19 item 22).
func TestLoadRefusesOtherModelType(t *testing.T) {
	dir := modelDirWith(t, "model.safetensors")
	edit(t, dir, ConfigFile, `"model_type": "perceiver"`, `"model_type": "vit"`)
	m, err := Load(dir)
	if err == nil {
		m.Close()
		t.Fatal("Load accepted model_type vit")
	}
	if !strings.Contains(err.Error(), `model_type "vit"`) || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("error %q does not name the file and model_type \"vit\"", err)
	}
}

// TestMismatchErrorIsShort: weights of another model (every name different) gave one line of
// 5.5 KB; each category now lists its first few names and a count (issue 19 item 22).
func TestMismatchErrorIsShort(t *testing.T) {
	dir := modelDirWith(t, "model.safetensors")
	rewriteWeights(t, dir, func(ts []*weights.Tensor) []*weights.Tensor {
		for _, t := range ts {
			t.Name = "vit.encoder." + strings.TrimPrefix(t.Name, "perceiver.")
		}
		for i := range 200 {
			ts = append(ts, &weights.Tensor{Name: "vit.extra." + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "." + strings.Repeat("y", i/26), DType: "F32", Shape: []int{1}, Data: []float32{0}})
		}
		return ts
	})
	m, err := Load(dir)
	if err == nil {
		m.Close()
		t.Fatal("Load accepted another model's weights")
	}
	msg := err.Error()
	if len(msg) > 800 || strings.Contains(msg, "\n") {
		t.Errorf("error is %d bytes (want ≤ 800, one line): %s", len(msg), msg)
	}
	for _, w := range []string{"missing: perceiver.", "unexpected: vit.", "more"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
}
