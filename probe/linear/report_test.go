package linear

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The report folder holds the four files; report.json reads back to the same numbers; the PNGs
// decode. (The plots' look was checked by eye; see the package report.)
func TestWriteReport(t *testing.T) {
	var results []*Result
	for i, col := range []string{"cross_mean", "block1_mean", "block2_mean", "decoder"} {
		means := []float64{0, 0.5 + float64(i), 1 + 2*float64(i), 3, -2, 1.5}
		ds := blobs(1200, 4, means, []float64{0.2, 0.2, 0.2, 0.2, 0.1, 0.1}, uint64(10+i))
		r, err := Evaluate(col, ds, Config{Seed: 5, Cs: []float64{0.01, 1}})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	dir := t.TempDir()
	if err := WriteReport(dir, results, Config{Seed: 5, Cs: []float64{0.01, 1}}, map[string]any{"features": "synthetic"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"accuracy-by-layer.png", "confusion.png"} {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil || img.Bounds().Dx() < 300 {
			t.Fatalf("%s: %v (%v)", f, err, img)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 || rep.BestColumn != BestResult(results).Column || rep.Meta["features"] != "synthetic" {
		t.Fatalf("report.json: %d results, best %q", len(rep.Results), rep.BestColumn)
	}
	for i, r := range rep.Results {
		if r.Test.Top1 != results[i].Test.Top1 || r.BestC != results[i].BestC || r.KNN.Top1 != results[i].KNN.Top1 {
			t.Errorf("%s: numbers changed through JSON", r.Column)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| block2_mean |") || !strings.Contains(string(md), "Confusion matrix") {
		t.Errorf("report.md lacks the tables:\n%s", md)
	}
	if os.Getenv("LINEAR_KEEP_REPORT") != "" {
		// For looking at the plots: LINEAR_KEEP_REPORT=/tmp/r go test -run WriteReport
		os.CopyFS(os.Getenv("LINEAR_KEEP_REPORT"), os.DirFS(dir))
	}
}

// A fit stopped by the iteration limit is flagged in report.md.
func TestMarkdownFlagsUnconvergedFits(t *testing.T) {
	ds := blobs(600, 5, []float64{-1, 0, 1}, []float64{0.3, 0.3, 0.4}, 8)
	r, err := Evaluate("block1_mean", ds, Config{Seed: 1, MaxIter: 2, Cs: []float64{1}, NoKNN: true})
	if err != nil {
		t.Fatal(err)
	}
	md := string(Markdown([]*Result{r}, Config{}))
	if !strings.Contains(md, "block1_mean C=1: IterationLimit after 2 iterations") {
		t.Fatalf("report.md does not flag the unconverged fit:\n%s", md)
	}
}

// Each report file refuses a symlink in its place and leaves what it points to alone (issue 19
// item 4: outputs never write through or rename over non-regular files).
func TestWriteReportRefusesSymlinks(t *testing.T) {
	ds := blobs(200, 4, []float64{0, 1, 2, 3}, []float64{0.2, 0.2, 0.2, 0.2}, 3)
	r, err := Evaluate("decoder", ds, Config{Seed: 5, Cs: []float64{1}, NoKNN: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"report.json", "report.md", "accuracy-by-layer.png", "confusion.png"} {
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "precious")
		os.WriteFile(target, []byte("keep"), 0o644)
		link := filepath.Join(dir, name)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		err := WriteReport(dir, []*Result{r}, Config{Seed: 5, Cs: []float64{1}}, nil)
		if err == nil || !strings.Contains(err.Error(), link) {
			t.Errorf("%s as a symlink: %v, want an error naming it", name, err)
		}
		if b, _ := os.ReadFile(target); string(b) != "keep" {
			t.Errorf("%s: wrote %d bytes through the symlink", name, len(b))
		}
	}
}
