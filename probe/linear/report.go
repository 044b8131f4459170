package linear

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// Report is the content of report.json.
type Report struct {
	Config     Config         `json:"config"`
	Protocol   map[string]any `json:"protocol"`
	Meta       map[string]any `json:"meta,omitempty"`
	BestColumn string         `json:"best_column"` // highest test top-1 (ties: shallower)
	Results    []*Result      `json:"results"`
}

// protocol describes, in the report, what the numbers mean.
func protocol(cfg Config) map[string]any {
	sel := "validation split"
	if cfg.Folds >= 2 {
		sel = fmt.Sprintf("stratified %d-fold cross-validation on train+val", cfg.Folds)
	}
	return map[string]any{
		"classifier":      "multinomial logistic regression, L2 on weights (intercept unpenalised), L-BFGS",
		"objective":       "sum cross-entropy + ||W||^2/(2C) (scikit-learn's lbfgs objective divided by C)",
		"standardisation": "mean / population std of the fitted rows (std 0 -> 1)",
		"C_selection":     sel + "; highest top-1, ties by lower log-loss then smaller C; refit on train+val; test scored once",
		"knn":             fmt.Sprintf("cosine on L2-normalised raw features, k=%d, weights exp(sim/T), T=%g, bank=train+val", cfg.KNN.K, cfg.KNN.Temperature),
		"log_loss":        "mean natural-log cross-entropy",
		"macro_f1":        "mean F1 over classes present as true or predicted label",
	}
}

// BestResult returns the result with the highest test top-1 (ties: the earlier one).
func BestResult(results []*Result) *Result {
	var best *Result
	for _, r := range results {
		if best == nil || r.Test.Top1 > best.Test.Top1 {
			best = r
		}
	}
	return best
}

// WriteReport writes report.json, report.md, accuracy-by-layer.png and confusion.png (for the
// best column) into dir, creating it if needed. results are plotted in the order given.
func WriteReport(dir string, results []*Result, cfg Config, meta map[string]any) error {
	if len(results) == 0 {
		return fmt.Errorf("linear: report %s: no results", dir)
	}
	cfg = cfg.WithDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("linear: report: %w", err)
	}
	best := BestResult(results)
	rep := Report{Config: cfg, Protocol: protocol(cfg), Meta: meta, BestColumn: best.Column, Results: results}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("linear: report %s: %w", dir, err)
	}
	if err := outfile.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("linear: report: %w", err)
	}
	if err := outfile.WriteFile(filepath.Join(dir, "report.md"), Markdown(results, cfg), 0o644); err != nil {
		return fmt.Errorf("linear: report: %w", err)
	}
	if err := PlotAccuracyByLayer(filepath.Join(dir, "accuracy-by-layer.png"), results); err != nil {
		return err
	}
	return PlotConfusion(filepath.Join(dir, "confusion.png"), best)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return strconv.FormatFloat(100*v, 'f', 2, 64)
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// Markdown renders the tables of report.md.
func Markdown(results []*Result, cfg Config) []byte {
	cfg = cfg.WithDefaults()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Linear probe report\n\n")
	for _, k := range []string{"classifier", "C_selection", "knn"} {
		fmt.Fprintf(&b, "- %s: %v\n", strings.ReplaceAll(k, "_", " "), protocol(cfg)[k])
	}
	fmt.Fprintf(&b, "- seed %d, Cs %v, max_iter %d, tol %g\n\n", cfg.Seed, cfg.Cs, cfg.MaxIter, cfg.Tol)
	fmt.Fprintf(&b, "## Accuracy by layer (percent, test split)\n\n")
	fmt.Fprintf(&b, "| column | dim | train/val/test | best C | val top-1 | test top-1 | top-5 | macro-F1 | log-loss | kNN top-1 | kNN top-5 | iters | time |\n")
	fmt.Fprintf(&b, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		val := math.NaN()
		for _, s := range r.ByC {
			if s.C == r.BestC {
				val = s.ValTop1
			}
		}
		k1, k5 := math.NaN(), math.NaN()
		if r.KNN != nil {
			k1, k5 = r.KNN.Top1, r.KNN.Top5
		}
		fmt.Fprintf(&b, "| %s | %d | %d/%d/%d | %g | %s | **%s** | %s | %s | %s | %s | %s | %d | %.1fs |\n",
			r.Column, r.Dim, r.NTrain, r.NVal, r.NTest, r.BestC, pct(val), pct(r.Test.Top1), pct(r.Test.Top5),
			pct(r.Test.MacroF1), num(r.Test.LogLoss, 4), pct(k1), pct(k5), r.Refit.Iterations, r.Durations.Total.Seconds())
	}
	var unconverged []string
	for _, r := range results {
		for _, f := range append([]FitInfo{r.Refit}, fitsOf(r)...) {
			if f.Status != "GradientThreshold" && f.Status != "FunctionConvergence" {
				unconverged = append(unconverged, fmt.Sprintf("%s C=%g: %s after %d iterations (max |grad| %.2g)", r.Column, f.C, f.Status, f.Iterations, f.GradInf))
			}
		}
	}
	if len(unconverged) > 0 {
		fmt.Fprintf(&b, "\nFits that stopped before the gradient tolerance:\n\n")
		for _, u := range unconverged {
			fmt.Fprintf(&b, "- %s\n", u)
		}
	}
	fmt.Fprintf(&b, "\n## Validation top-1 by C (percent)\n\n| column |")
	cs := results[0].ByC
	for _, s := range cs {
		fmt.Fprintf(&b, " C=%g |", s.C)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---:|", len(cs)))
	for _, r := range results {
		fmt.Fprintf(&b, "| %s |", r.Column)
		for _, s := range r.ByC {
			fmt.Fprintf(&b, " %s |", pct(s.ValTop1))
		}
		b.WriteString("\n")
	}
	best := BestResult(results)
	fmt.Fprintf(&b, "\n## Best column: %s\n\nPer-class test accuracy (recall):\n\n| class | n | accuracy |\n|---|---:|---:|\n", best.Column)
	for c, acc := range best.Test.PerClassAcc {
		n := 0
		for _, v := range best.Test.Confusion[c] {
			n += v
		}
		fmt.Fprintf(&b, "| %s | %d | %s |\n", className(best, c), n, pct(acc))
	}
	if k := len(best.Test.Confusion); k <= 20 {
		fmt.Fprintf(&b, "\nConfusion matrix (rows true, columns predicted):\n\n| |")
		for c := range k {
			fmt.Fprintf(&b, " %s |", className(best, c))
		}
		fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---:|", k))
		for c, row := range best.Test.Confusion {
			fmt.Fprintf(&b, "| %s |", className(best, c))
			for _, v := range row {
				fmt.Fprintf(&b, " %d |", v)
			}
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

func className(r *Result, c int) string {
	if c < len(r.Classes) {
		return r.Classes[c]
	}
	return strconv.Itoa(c)
}

func fitsOf(r *Result) []FitInfo {
	var out []FitInfo
	for _, s := range r.ByC {
		out = append(out, s.Fits...)
	}
	return out
}
