package main

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/explain"
)

// TestExplainOcclusion checks that probe explain reaches the occlusion method through the registry
// with its --window and --stride: the raw map equals explain.Occlusion's for the prediction with
// those settings, bit for bit, and differs from the default window's. (The map's values are
// tested against a brute-force reading of Captum's rule in package explain.)
func TestExplainOcclusion(t *testing.T) {
	out := t.TempDir()
	img := "../../testdata/tiny/chelsea.png"
	if _, stderr, code := runCapture([]string{"explain", "--model", tinyDir, "--image", img, "--methods", "occlusion",
		"--window", "5", "--stride", "3", "--raw", "--out", out}); code != 0 {
		t.Fatal(stderr)
	}
	f, err := weights.OpenSafetensors(filepath.Join(out, "maps.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := f.Tensors["occlusion"]
	if got == nil {
		t.Fatal("maps.safetensors has no occlusion tensor")
	}
	m, err := core.Load(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	res, err := m.Preprocessor.LoadImage(img, preprocess.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := explain.Occlusion(m, res.Pixels, res.H, res.W, 1, 5, 3) // class 1: the prediction
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Data, want) {
		t.Error("probe explain's occlusion map differs from explain.Occlusion with --window 5 --stride 3")
	}
	other, _ := explain.Occlusion(m, res.Pixels, res.H, res.W, 1, 4, 2)
	if slices.Equal(other, want) {
		t.Error("the window does not change the map: the test cannot tell the flags apart")
	}
}
