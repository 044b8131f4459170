package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWarnsWithoutPreprocessorConfig: a model folder without preprocessor_config.json runs with
// PerceiverImageProcessor's defaults, which change predictions when the model expects other
// settings; the commands say so, naming the defaults (issue 19 item 22).
func TestWarnsWithoutPreprocessorConfig(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	_, stderr, code := run(t, "classify", "--model", dir, filepath.Join(tinyDir, "chelsea.png"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"warning", filepath.Join(dir, "preprocessor_config.json"), "centre crop 256×256", "resize 224×224 bicubic", "mean [0.485 0.456 0.406]"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not mention %q", stderr, w)
		}
	}
	// With the file present: no warning.
	if _, stderr, _ := run(t, "classify", "--model", tinyDir, filepath.Join(tinyDir, "chelsea.png")); strings.Contains(stderr, "warning") {
		t.Errorf("warning with a preprocessor_config.json: %s", stderr)
	}
}
