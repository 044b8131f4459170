package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core"
)

// TestDemo runs the offline demo end to end and checks that every output exists and is usable:
// the saved model loads, the features hold the 700 shipped images, the report has one result per
// column, and a probe on image features beats the 10% of chance on 10 balanced-ish classes.
func TestDemo(t *testing.T) {
	out := t.TempDir()
	stdout, stderr, code := run(t, "demo", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "RANDOM weights") {
		t.Error("the demo does not say its weights are random")
	}
	m, err := core.Load(filepath.Join(out, "model"))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	for _, f := range []string{"features.parquet", "attention/latents.png", "attention/decoder.png", "attention/rollout.png", "report/report.md", "report/accuracy-by-layer.png", "report/confusion.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty", f)
		}
	}
	tab, _ := loadTable(t, filepath.Join(out, "features.parquet"))
	if tab.Len() != 700 {
		t.Errorf("%d rows, want 700", tab.Len())
	}
	raw, err := os.ReadFile(filepath.Join(out, "report", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Results []struct {
			Column string
			Test   struct{ Top1 float64 }
		}
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 5 {
		t.Fatalf("%d results, want 5 columns", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Test.Top1 < 0.2 {
			t.Errorf("%s: test top-1 %.3f is near chance", r.Column, r.Test.Top1)
		}
	}
	// A second run replaces its own outputs instead of refusing.
	if _, stderr, code := run(t, "demo", "--out", out); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
}
