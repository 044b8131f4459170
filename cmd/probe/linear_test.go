package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/probe"
)

// labelledFeatures writes n rows of two columns with labels in 3 classes; block1_mean carries the
// class, block2_mean is noise.
func labelledFeatures(t *testing.T, path string, n int) {
	t.Helper()
	cols := []probe.Column{{Name: "block1_mean", Dim: 3}, {Name: "block2_mean", Dim: 2}}
	w, err := probe.Create(path, cols, probe.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		c := i % 3
		a := []float32{float32(3*c) + float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())}
		b := []float32{float32(rng.NormFloat64()), float32(rng.NormFloat64())}
		if err := w.Write(probe.Row{Index: i, ID: fmt.Sprintf("img-%03d", i), Label: int64(c), HasLabel: true, Vectors: [][]float32{a, b}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLinearProtocolFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.parquet")
	labelledFeatures(t, path, 300)
	rep := filepath.Join(dir, "rep")
	out, errOut, code := run(t, "linear", "--features", path, "--columns", "block2_mean,block1_mean+block2_mean", "--C", "0.1,1",
		"--knn-k", "5,20", "--shots", "1,4", "--seeds", "3", "--bootstrap", "100", "--report", rep)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"balanced", "kNN@5 top-1", "kNN@20 top-1", "95% CI", "4-shot top-1", "block1_mean+block2_mean"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(rep, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Results []struct {
			Column string `json:"column"`
			Test   struct {
				BalancedAcc *float64 `json:"balanced_acc"`
			} `json:"test"`
			KNNByK []struct {
				K int `json:"k"`
			} `json:"knn_by_k"`
			CI      *[2]float64 `json:"test_top1_ci95"`
			FewShot []struct {
				Shots int       `json:"shots"`
				Top1  []float64 `json:"top1"`
			} `json:"few_shot"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 2 {
		t.Fatalf("%d results, want 2", len(got.Results))
	}
	for _, r := range got.Results {
		if r.Test.BalancedAcc == nil || len(r.KNNByK) != 2 || r.KNNByK[1].K != 20 || r.CI == nil || len(r.FewShot) != 2 || len(r.FewShot[1].Top1) != 3 {
			t.Errorf("%s: incomplete result %+v", r.Column, r)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--knn-k", "0,20"}, `--knn-k: "0" is not a positive integer`},
		{[]string{"--shots", "1,x"}, `--shots: "x" is not a positive integer`},
		{[]string{"--seeds", "0", "--shots", "1"}, "--seeds 0 must be ≥ 1"},
		{[]string{"--columns", "block1_mean+nope"}, `column "nope" not in features`},
	} {
		_, errOut, code := run(t, append([]string{"linear", "--features", path}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", tc.args, code, errOut, tc.want)
		}
	}
}
