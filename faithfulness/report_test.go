package faithfulness

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// curvesWith makes one image's curves, 3 steps, with constant probability p on the positive side
// and q on the negative side (so AUCs are (2/3)·p and (2/3)·q).
func curvesWith(p, q float64) Curves {
	mk := func(v float64) Curve {
		c := Curve{Fractions: Fractions(3), Prob: []float64{v, v, v}, Top1: []float64{1, 1, 0}}
		c.finish()
		return c
	}
	return Curves{Positive: mk(p), Negative: mk(q)}
}

// TestReport checks the averages, the ranking (by negative − positive AUC, ties by name), the
// standard error of the per-image scores (by hand: scores 0.2 and 0.4 → sd 0.1414, se 0.1) and
// the files.
func TestReport(t *testing.T) {
	per := map[string][]Curves{
		"b":    {curvesWith(0.5, 0.8), curvesWith(0.5, 1.1)}, // scores (2/3)·0.3, (2/3)·0.6
		"a":    {curvesWith(0.5, 0.5), curvesWith(0.5, 0.5)}, // 0
		"zero": {curvesWith(0.6, 0.6), curvesWith(0.4, 0.4)}, // 0: ties with a, after it by name
	}
	r, err := NewReport(per, 3, 2, map[string]any{"model": "m"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Ranking, ","); got != "b,a,zero" {
		t.Errorf("ranking %s, want b,a,zero", got)
	}
	if math.Abs(r.Methods["b"].Negative.AUCProb-(2.0/3)*0.95) > 1e-15 || r.Images != 2 || r.Skipped != 2 {
		t.Errorf("b negative AUC %g, images %d, skipped %d", r.Methods["b"].Negative.AUCProb, r.Images, r.Skipped)
	}
	if want := (2.0 / 3) * 0.15; math.Abs(r.ScoreSE["b"]-want) > 1e-15 || r.ScoreSE["a"] != 0 {
		t.Errorf("score se %g and %g, want %g and 0", r.ScoreSE["b"], r.ScoreSE["a"], want)
	}
	if _, err := NewReport(map[string][]Curves{"a": {curvesWith(0, 0)}, "b": nil}, 3, 0, nil); err == nil {
		t.Error("methods over different numbers of images were accepted")
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Methods map[string]map[string]map[string]any `json:"methods"`
		Images  int                                  `json:"images"`
	}
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"fractions", "prob", "top1", "auc_prob", "auc_top1"} {
		if _, ok := js.Methods["b"]["negative"][key]; !ok || js.Images != 2 {
			t.Errorf("report.json lacks methods.b.negative.%s or images", key)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "| 1 | b | 0.3333 | 0.6333 | 0.3000 ± 0.1000 |") {
		t.Errorf("report.md's first row is not b's:\n%s", md)
	}
	if st, err := os.Stat(filepath.Join(dir, "curves.png")); err != nil || st.Size() == 0 {
		t.Error("no curves.png")
	}
}
