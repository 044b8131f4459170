package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readReport(t *testing.T, dir string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestFaithfulnessCommand runs probe faithfulness on the tiny model over the fixture photos (one
// bad file among them): report.json has the shape of issue 16, the bad file is skipped and
// counted, and a run interrupted after one image (and left with half a line) and resumed gives
// the report of an uninterrupted run.
func TestFaithfulnessCommand(t *testing.T) {
	data := imageFolder(t)
	base := []string{"faithfulness", "--model", "../../testdata/tiny", "--data", data, "--methods", "mean,occlusion,random",
		"--window", "4", "--stride", "4", "--steps", "5", "--quiet"}
	whole := filepath.Join(t.TempDir(), "whole")
	stdout, stderr, code := runCapture(append(base, "--out", whole))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "broken.png") || !strings.Contains(stdout, "| rank | method |") {
		t.Errorf("the bad file is not reported or the table not printed:\n%s\n%s", stderr, stdout)
	}
	rep := readReport(t, whole)
	if rep["images"] != 4.0 || rep["skipped"] != 1.0 || rep["steps"] != 5.0 {
		t.Errorf("images %v skipped %v steps %v, want 4, 1, 5", rep["images"], rep["skipped"], rep["steps"])
	}
	methods := rep["methods"].(map[string]any)
	for _, name := range []string{"mean", "occlusion", "random"} {
		m, ok := methods[name].(map[string]any)
		if !ok {
			t.Fatalf("report.json has no method %s", name)
		}
		for _, dir := range []string{"positive", "negative"} {
			c := m[dir].(map[string]any)
			for _, key := range []string{"fractions", "prob", "top1"} {
				if v, ok := c[key].([]any); !ok || len(v) != 5 {
					t.Errorf("%s.%s.%s = %v, want 5 values", name, dir, key, c[key])
				}
			}
			for _, key := range []string{"auc_prob", "auc_top1"} {
				if _, ok := c[key].(float64); !ok {
					t.Errorf("%s.%s.%s missing", name, dir, key)
				}
			}
		}
	}
	for _, f := range []string{"report.md", "curves.png", "images.jsonl", "run.json"} {
		if _, err := os.Stat(filepath.Join(whole, f)); err != nil {
			t.Error(err)
		}
	}

	// Existing output without --resume is refused; other settings with --resume too.
	if _, stderr, code := runCapture(append(base, "--out", whole)); code != 1 || !strings.Contains(stderr, "--resume") {
		t.Errorf("rerun over an existing output: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runCapture(append(base, "--out", whole, "--resume", "--seed", "9")); code != 1 || !strings.Contains(stderr, "other settings") {
		t.Errorf("resume with another seed: exit %d, %s", code, stderr)
	}

	part := filepath.Join(t.TempDir(), "part")
	if _, stderr, code := runCapture(append(base, "--out", part, "--limit", "2")); code != 0 {
		t.Fatalf("limited run: %s", stderr)
	}
	f, err := os.OpenFile(filepath.Join(part, "images.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"index": 3, "id": "cup/coff`) // a crash mid-line
	f.Close()
	if _, stderr, code := runCapture(append(base, "--out", part, "--resume")); code != 0 {
		t.Fatalf("resumed run: %s", stderr)
	}
	resumed := readReport(t, part)
	if !reflect.DeepEqual(resumed["methods"], rep["methods"]) || resumed["images"] != rep["images"] {
		t.Error("the resumed run's report differs from the uninterrupted run's")
	}

	for _, bad := range [][]string{{"--methods", "nope"}, {"--steps", "1"}} {
		args := append(append([]string{}, base...), "--out", t.TempDir())
		args = append(args, bad...)
		if _, stderr, code := runCapture(args); code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, want one line of error: %s", bad, code, stderr)
		}
	}
}

// TestFaithfulnessROADCommand runs --metrics deletion,road and --metrics road: report.json gains
// each method's road curves (fractions 1/steps … (steps−1)/steps) with their standard errors, the
// ranking follows --rank-by, and --road-noise, --metrics and --rank-by are part of the run's
// identity on --resume; bad values are one-line errors.
func TestFaithfulnessROADCommand(t *testing.T) {
	data := imageFolder(t)
	base := []string{"faithfulness", "--model", "../../testdata/tiny", "--data", data, "--methods", "mean,saliency,random",
		"--steps", "5", "--quiet", "--limit", "2"}
	both := filepath.Join(t.TempDir(), "both")
	if _, stderr, code := runCapture(append(base, "--out", both, "--metrics", "deletion,road", "--rank-by", "road")); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rep := readReport(t, both)
	if rep["rank_by"] != "road" {
		t.Errorf("rank_by %v", rep["rank_by"])
	}
	for _, name := range []string{"mean", "saliency", "random"} {
		m := rep["methods"].(map[string]any)[name].(map[string]any)
		road, ok := m["road"].(map[string]any)
		if !ok || m["positive"] == nil {
			t.Fatalf("%s: no road or no deletion curves: %v", name, m)
		}
		for _, dir := range []string{"morf", "lerf"} {
			c := road[dir].(map[string]any)
			fr := c["fractions"].([]any)
			if len(fr) != 4 || fr[0] != 0.2 || fr[3] != 0.8 || len(c["prob"].([]any)) != 4 {
				t.Errorf("%s %s: fractions %v prob %v", name, dir, fr, c["prob"])
			}
		}
		if _, ok := rep["road_se"].(map[string]any)[name].(map[string]any)["morf_auc_prob"]; !ok {
			t.Errorf("%s: no road_se", name)
		}
	}
	md, _ := os.ReadFile(filepath.Join(both, "report.md"))
	if !strings.Contains(string(md), "## ROAD") || !strings.Contains(string(md), "## Deletion") {
		t.Errorf("report.md lacks a table:\n%s", md)
	}
	if _, stderr, code := runCapture(append(base, "--out", both, "--metrics", "deletion,road", "--rank-by", "road", "--resume", "--road-noise", "0")); code != 1 || !strings.Contains(stderr, "other settings") {
		t.Errorf("resume with another --road-noise: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runCapture(append(base, "--out", both, "--metrics", "deletion", "--resume")); code != 1 || !strings.Contains(stderr, "other settings") {
		t.Errorf("resume with other --metrics: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runCapture(append(base, "--out", both, "--metrics", "deletion,road", "--rank-by", "road", "--resume")); code != 0 {
		t.Errorf("resume with the same settings: exit %d, %s", code, stderr)
	}

	only := filepath.Join(t.TempDir(), "only")
	if _, stderr, code := runCapture(append(base, "--out", only, "--metrics", "road", "--road-noise", "0")); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rep = readReport(t, only)
	m := rep["methods"].(map[string]any)["mean"].(map[string]any)
	if _, ok := m["positive"]; ok || m["road"] == nil || rep["rank_by"] != "road" {
		t.Errorf("--metrics road: %v, rank_by %v", m, rep["rank_by"])
	}
	for _, bad := range [][]string{{"--metrics", "road,nope"}, {"--road-noise", "2"}, {"--metrics", "deletion", "--rank-by", "road"}} {
		args := append(append([]string{}, base...), "--out", t.TempDir())
		args = append(args, bad...)
		if _, stderr, code := runCapture(args); code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, want one line of error: %s", bad, code, stderr)
		}
	}
}
