package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAblateCommand runs probe ablate on the tiny model in both modes and checks the files and
// the JSON's bookkeeping (every latent once, ranks a permutation by Δ, Δ = logit − ablated
// logit). The values themselves are tested against direct forward passes in package ablation.
func TestAblateCommand(t *testing.T) {
	data := imageFolder(t)
	img := "../../testdata/tiny/chelsea.png"
	for _, mode := range [][]string{{"--mode", "zero"}, {"--mode", "mean", "--data", data}} {
		out := t.TempDir()
		args := append([]string{"ablate", "--model", "../../testdata/tiny", "--image", img, "--out", out, "--batch", "3", "--quiet"}, mode...)
		stdout, stderr, code := runCapture(args)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", mode, code, stderr)
		}
		if !strings.Contains(stdout, "largest Δ") {
			t.Errorf("no summary: %s", stdout)
		}
		for _, f := range []string{"ablation.json", "ablation.png", "latents.png"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Error(err)
			}
		}
		raw, err := os.ReadFile(filepath.Join(out, "ablation.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Logit   float64 `json:"logit"`
			Target  int     `json:"target"`
			Latents []struct {
				Latent  int     `json:"latent"`
				Delta   float64 `json:"delta"`
				Rank    int     `json:"rank"`
				Ablated float64 `json:"ablated_logit"`
			} `json:"latents"`
			Mean *struct{ Images, Skipped int } `json:"mean"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Latents) != 8 || doc.Target != 1 {
			t.Fatalf("%d latents, target %d; want 8 and the prediction 1", len(doc.Latents), doc.Target)
		}
		byRank := map[int]float64{}
		for i, e := range doc.Latents {
			if e.Latent != i || e.Delta != doc.Logit-e.Ablated {
				t.Errorf("entry %d: latent %d, Δ %g, logit − ablated %g", i, e.Latent, e.Delta, doc.Logit-e.Ablated)
			}
			byRank[e.Rank] = e.Delta
		}
		for r := 1; r < 8; r++ {
			if byRank[r] < byRank[r+1] {
				t.Errorf("rank %d has Δ %g below rank %d's %g", r, byRank[r], r+1, byRank[r+1])
			}
		}
		if mode[1] == "mean" && (doc.Mean == nil || doc.Mean.Images != 4 || doc.Mean.Skipped != 1) {
			t.Errorf("mean over %+v, want 4 images and 1 skipped", doc.Mean)
		}
	}
	for _, bad := range [][]string{{"--mode", "mean"}, {"--latents", "9"}, {"--target", "5"}, {"--mode", "half"}} {
		args := append([]string{"ablate", "--model", "../../testdata/tiny", "--image", img, "--out", t.TempDir()}, bad...)
		if _, stderr, code := runCapture(args); code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, want one line of error: %s", bad, code, stderr)
		}
	}
}
