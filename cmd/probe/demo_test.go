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
	if !strings.Contains(stdout, "trained by probe train") || !strings.Contains(stdout, "test top-1 ") || strings.Contains(strings.ToLower(stdout), "random weights") {
		t.Errorf("the demo should name its trained model and test top-1, and not call it random:\n%s", stdout)
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
	// A file of the user's inside one of the demo's folders survives a second run, which
	// refuses rather than mix it into the demo's outputs (issue 19 item 3).
	mine := filepath.Join(out, "report", "my-notes.txt")
	os.WriteFile(mine, []byte("mine"), 0o644)
	if _, stderr, code := run(t, "demo", "--out", out); code == 0 || !strings.Contains(stderr, filepath.Join(out, "report")) {
		t.Errorf("second run with a user file in report/: exit %d, want a refusal naming the folder: %s", code, stderr)
	}
	if b, err := os.ReadFile(mine); err != nil || string(b) != "mine" {
		t.Fatalf("the user's file was removed or changed: %v", err)
	}
	os.Remove(mine)
	// A second run replaces its own outputs instead of refusing.
	if _, stderr, code := run(t, "demo", "--out", out); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	if tab, _ := loadTable(t, filepath.Join(out, "features.parquet")); tab.Len() != 700 {
		t.Errorf("second run: %d rows, want 700", tab.Len())
	}
}

// TestDemoKeepsOtherFiles: `probe demo --out DIR` on a folder that is not a previous demo output
// and is not empty (`--out .` in a project) refuses and removes nothing (issue 19 item 3).
func TestDemoKeepsOtherFiles(t *testing.T) {
	out := t.TempDir()
	files := map[string]string{"data/train.csv": "path,label\n", "model/config.json": "{}", "notes.txt": "x"}
	for name, content := range files {
		os.MkdirAll(filepath.Join(out, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(out, name), []byte(content), 0o644)
	}
	_, stderr, code := run(t, "demo", "--out", out)
	if code == 0 || !strings.Contains(stderr, out) {
		t.Errorf("exit %d, want a refusal naming %s: %s", code, out, stderr)
	}
	for name, content := range files {
		if b, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(b) != content {
			t.Errorf("%s removed or changed (%v)", name, err)
		}
	}
	// A missing or empty folder is fine; only the first step is checked here.
	if _, stderr, code := run(t, "demo", "--out", filepath.Join(out, "new", "demo")); code != 0 {
		t.Errorf("a new folder: exit %d: %s", code, stderr)
	}
}
