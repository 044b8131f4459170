package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core"
)

// TestPrecisionReport runs probe precision on the tiny fixture model and photos. The reference for
// the numbers is bfloat16's unit roundoff, 2⁻⁹ ≈ 2e-3 per operand: every layer must differ from
// float32 (the products did run in bfloat16) by less than 5e-2 and keep a cosine above 0.999.
func TestPrecisionReport(t *testing.T) {
	if _, missing := core.BF16Kernel(); len(missing) > 0 {
		t.Skipf("this CPU lacks %v", missing)
	}
	data := t.TempDir()
	for _, f := range []string{"camera.png", "chelsea.png", "coffee.png", "rocket.jpg"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "preprocess", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "prec")
	stdout, stderr, code := run(t, "precision", "--model", "../../testdata/tiny", "--data", data, "--out", out, "--limit", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "3 images") {
		t.Errorf("stdout %q does not count 3 images", stdout)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep precisionReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	// tiny: 4 self-attention applications → hidden_states.0…4, decoder_output, logits.
	if rep.Images != 3 || len(rep.Layers) != 7 {
		t.Fatalf("%d images, %d layers; want 3 and 7", rep.Images, len(rep.Layers))
	}
	for _, l := range rep.Layers {
		if !(l.RelErr > 0 && l.RelErr < 5e-2 && l.RelErrMax >= l.RelErr*0.5 && l.CosineMean > 0.999 && l.CosineMin <= l.CosineMean) {
			t.Errorf("%s: rel. error %g (worst %g), cosine %g (worst %g)", l.Name, l.RelErr, l.RelErrMax, l.CosineMean, l.CosineMin)
		}
	}
	if rep.Top1Agreement < 0 || rep.Top1Agreement > 1 || rep.Top5Overlap < rep.Top5Agreement {
		t.Errorf("agreement: top-1 %g, top-5 equal %g, overlap %g", rep.Top1Agreement, rep.Top5Agreement, rep.Top5Overlap)
	}
	for _, f := range []string{"report.md", "error-vs-depth.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// A second run refuses to replace the outputs.
	if _, stderr, code := run(t, "precision", "--model", "../../testdata/tiny", "--data", data, "--out", out); code == 0 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second run: exit %d, %q", code, stderr)
	}
	if _, stderr, code := run(t, "precision", "--model", "../../testdata/tiny", "--out", out); code == 0 || !strings.Contains(stderr, "--data") {
		t.Errorf("without --data: exit %d, %q", code, stderr)
	}
}

func TestPrecisionFlag(t *testing.T) {
	_, stderr, code := run(t, "classify", "--model", "../../testdata/tiny", "--precision", "fp8", "../../testdata/tiny/chelsea.png")
	if code == 0 || !strings.Contains(stderr, `--precision "fp8"`) {
		t.Errorf("--precision fp8: exit %d, %q", code, stderr)
	}
	if _, missing := core.BF16Kernel(); len(missing) > 0 {
		return
	}
	stdout, stderr, code := run(t, "classify", "--model", "../../testdata/tiny", "--precision", "bf16", "../../testdata/tiny/chelsea.png")
	if code != 0 || !strings.Contains(stdout, "class_") {
		t.Errorf("--precision bf16: exit %d, %q %q", code, stdout, stderr)
	}
}
